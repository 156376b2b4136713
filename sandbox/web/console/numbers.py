"""Numbers written the reader's way (Babel/CLDR, issue 15), for templates and notes alike."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from babel.numbers import format_decimal, format_scientific

from sandbox.web import i18n


def number_locale() -> str:
    return "zh_Hans_CN" if i18n.current() == "zh_CN" else "en"


def fmt(value: Any, digits: int = 4) -> Any:
    """A count, ε, δ or budget written the reader's way (Babel/CLDR, issue 15): whole numbers
    with the locale's grouping (``1,234,568``), others to ``digits`` significant digits without
    an exponent (``0.000001``, never ``1e-06``), the locale's decimal sign; NaN and ±inf as —.

    zh-CN and English share CLDR's symbols (``,`` and ``.``); another display locale would
    bring its own. Non-numbers pass through unchanged."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return "—"
    locale = number_locale()
    if isinstance(value, int) or abs(value) >= 1000:
        return format_decimal(round(value), locale=locale)
    if value != 0 and abs(value) < 1e-9:
        return format_scientific(value, format="0.###E0", locale=locale)
    return format_decimal(Decimal(f"{value:.{digits}g}"), locale=locale, decimal_quantization=False)
