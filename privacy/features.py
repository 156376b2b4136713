"""The one place that enables OpenDP features.

``contrib``: the vector Laplace/Gaussian measurements over pre-aggregated statistics and
the threshold (partition selection) measurements are OpenDP "contrib" components: vetted
by OpenDP's proofs but not yet through its full review process. We use nothing under
``floating-point`` or ``honest-but-curious``: sums are computed in exact fixed-point
integers, so no floating-point caveat applies (see docs/decisions/0001).
"""

from __future__ import annotations

import opendp.prelude as dp

dp.enable_features("contrib")

__all__ = ["dp"]
