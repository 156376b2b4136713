"""Noise (OpenDP only), sensitivity, accounting, accuracy and budget arithmetic."""

from privacy.accounting import Charge, Spent, Totals, fits, per_query_delta, spent
from privacy.allocation import NoisePlan, NoiseSpec, calibrate
from privacy.constraints import NOT_INFORMATIVE_SHARE, not_informative, public_range
from privacy.errors import AccuracyError, BudgetError, PrivacyError
from privacy.preview import ColumnAccuracy, Preview, epsilon_for_accuracy, preview
from privacy.release import (
    MechanismRecord,
    Release,
    check_plan,
    planned_components,
    reinterval,
    release,
)

__all__ = [
    "AccuracyError",
    "BudgetError",
    "Charge",
    "ColumnAccuracy",
    "MechanismRecord",
    "NOT_INFORMATIVE_SHARE",
    "NoisePlan",
    "NoiseSpec",
    "Preview",
    "PrivacyError",
    "Release",
    "Spent",
    "Totals",
    "calibrate",
    "check_plan",
    "epsilon_for_accuracy",
    "fits",
    "not_informative",
    "per_query_delta",
    "planned_components",
    "preview",
    "public_range",
    "reinterval",
    "release",
    "spent",
]
