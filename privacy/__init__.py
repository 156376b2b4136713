"""Noise (OpenDP only), sensitivity, accounting, accuracy and budget arithmetic."""

from privacy.errors import BudgetError, PrivacyError
from privacy.release import MechanismRecord, Release, planned_components, release

__all__ = ["BudgetError", "MechanismRecord", "PrivacyError", "Release", "planned_components", "release"]
