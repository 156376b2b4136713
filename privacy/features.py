"""The one place that enables OpenDP features.

``contrib``: the vector Laplace/Gaussian measurements over pre-aggregated statistics, the
threshold (partition selection) measurements, the pureDP → zCDP and zCDP → approxDP
combinators and ``make_quantiles_from_counts`` are OpenDP "contrib" components: vetted
by OpenDP's proofs but not yet through its full review process. We use nothing under
``floating-point`` or ``honest-but-curious``: sums are computed in exact fixed-point
integers and all noise is added to integers (discrete Laplace, discrete Gaussian), so no
floating-point caveat applies (see docs/decisions/0001). The one float-domain Gaussian in
``privacy.mechanisms`` is a proxy whose privacy *map* converts ρ to ε; it is never run
on data.
"""

from __future__ import annotations

import opendp.prelude as dp

dp.enable_features("contrib")

__all__ = ["dp"]
