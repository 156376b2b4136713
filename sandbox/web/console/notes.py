"""Notes from the service in the reader's language (issue 15: "no English left in the Chinese UI").

Three places show the service's notes: the workbench preview (the planner's and the
preview's notes), the owner's policy page drafted from the data (:mod:`sandbox.service.policy_draft`)
and the regulator's log verification (``audit_log``'s damage). Each is worded here as a
translated sentence, and the service's own words stay under a disclosure, ``lang="en"
translate="no"``, as :mod:`sandbox.web.console.errors` does for refusals.

The verification is worded from its structured result (``kind``, ``seq``). Preview and draft
notes are plain sentences of this code base (``query_guard.planner``, ``sandbox.service.preview``,
``sandbox.service.policy_draft``); each kind is recognised by an anchored pattern whose groups are
its figures, and a note of a kind not listed here is worded as "another note", never shown as
English in a Chinese page. ``tests/test_console_notes.py`` checks every pattern against the
sentences those modules actually write, so a changed sentence fails a test, not a page.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape

from audit_log.errors import DAMAGE_KINDS
from sandbox.web.console.labels import finding_kind
from sandbox.web.console.numbers import fmt

#: What each kind of damage means (``audit_log.errors.DamageKind``; "error": the log could
#: not be read at all).
DAMAGE: Final = {
    "edited": (_l("an entry was edited"),
               _l("An entry's content no longer matches the hash chain: it was changed after it was written.")),
    "deleted": (_l("an entry was deleted"),
                _l("An entry is missing from the chain: the sequence numbers or hashes skip it.")),
    "inserted": (_l("an entry was inserted"),
                 _l("An entry that was never written in this place appears in the chain.")),
    "reordered": (_l("entries were reordered"),
                  _l("Entries are out of their written order.")),
    "truncated": (_l("the log was truncated"),
                  _l("The log is shorter than a signed checkpoint says it was: entries at its end are gone.")),
    "forked": (_l("the log was forked"),
               _l("Two signed checkpoints describe different histories: the log was rewritten after one "
                  "of them.")),
    "bad_signature": (_l("a signature does not verify"),
                      _l("A checkpoint's signature does not verify with the log's public key.")),
    "bad_encoding": (_l("an entry is not readable"),
                     _l("An entry is not valid canonical JSON, so its hash cannot be checked.")),
    "error": (_l("the log could not be read"),
              _l("The log could not be read for verification.")),
}
assert set(DAMAGE_KINDS) <= set(DAMAGE), "every damage kind of audit_log needs its words"


#: How the preview computes a column's interval (``privacy.preview``'s ``method``), in words.
METHODS: Final = {
    "public or selected key": _l("public or selected key"),
    "OpenDP accuracy function": _l("OpenDP accuracy function"),
    "worst case over means": _l("worst case over means"),
    "first-order worst case": _l("first-order worst case"),
    "Doob–Chernoff bound on the histogram's cumulative noise":
        _l("Doob–Chernoff bound on the histogram's cumulative noise"),
}


def method(text: str | None) -> str:
    """A preview column's method in the reader's language (a new method: as the service wrote it)."""
    label = METHODS.get(text or "")
    return str(label) if label is not None else (text or "")


def damage(kind: str | None) -> dict[str, str]:
    """The title and the sentence for a verification failure of this kind."""
    title, text = DAMAGE.get(kind or "", (_l("damage of an unknown kind"),
                                          _l("The verification failed; the service's own words say how.")))
    return {"title": str(title), "text": str(text)}


def _num(text: str) -> str:
    """A figure of the service's sentence (``8.99e-05``) written without an exponent."""

    try:
        return str(fmt(float(text)))
    except ValueError:
        return text


def _list(items: Iterable[str]) -> str:
    return ("、" if str(get_locale() or "").startswith("zh") else ", ").join(items)


def clamp_name(candidate: str) -> str:
    """A clamp candidate of :mod:`sandbox.service.bounding_report` (``declared``, ``p90`` … ``max``) in words."""
    if candidate == "declared":
        return _("of the declared bounds")
    if candidate == "max":
        return _("up to the largest value")
    if re.fullmatch(r"p\d+(\.\d+)?", candidate):
        return _("up to the %(p)sth percentile", p=candidate[1:])
    return candidate


@dataclass(frozen=True)
class Kind:
    pattern: re.Pattern[str]
    words: Callable[[re.Match[str]], str]


def _k(pattern: str, words: Callable[[re.Match[str]], str]) -> Kind:
    return Kind(re.compile(pattern + r"$", re.S), words)


def _t(msgid: str, names: dict[str, str], **figures: str) -> Markup:
    """A translated sentence whose ``names`` (datasets, columns) are set as code."""
    return Markup(escape(_(msgid))) % {**figures, **{k: Markup("<code>{}</code>").format(v)
                                                      for k, v in names.items()}}


#: The workbench preview's notes (query_guard.planner, sandbox.service.preview).
PREVIEW: Final = (
    _k(r"contributions bounded on (?P<ds>\S+): at most (?P<l0>\d+) groups and (?P<linf>\d+) rows per group "
       r"per person",
       lambda m: _t("Each person's rows in %(ds)s are bounded: at most %(l0)s groups, and %(linf)s rows in "
                    "each group.", {"ds": m["ds"]}, l0=m["l0"], linf=m["linf"])),
    _k(r"group key (?P<key>.+): no public domain, DP partition selection",
       lambda m: _t("The groups of %(key)s have no published list of values: groups are chosen with "
                    "differential privacy, and small groups are left out.", {"key": m["key"]})),
    _k(r"the target needs only ε = (?P<need>\S+); a query uses at least ε = (?P<min>\S+), so that is previewed",
       lambda m: _("Your accuracy target needs only ε %(need)s; a query uses at least ε %(min)s, so that is "
                   "what the preview shows.", need=_num(m["need"]), min=_num(m["min"]))),
    _k(r"the target needs ε = (?P<need>\S+), above this approval's per-query cap (?P<cap>\S+)",
       lambda m: _("Your accuracy target needs ε %(need)s, above this approval's limit of ε %(cap)s per query.",
                   need=_num(m["need"]), cap=_num(m["cap"]))),
)

#: The notes under a query's result: the plan's (as in the preview), the release's
#: (privacy.release), the post-processing's (sandbox.service.postprocess) and a cached release's
#: at another confidence (sandbox.service.accuracy).
RESULT: Final = PREVIEW + (
    _k(r"(?P<n>[\d,]+) groups passed partition selection; the (?P<cap>[\d,]+) with the largest noisy counts "
       r"are released",
       lambda m: _("%(n)s groups passed the differentially private selection; the %(cap)s with the largest "
                   "noisy counts are shown.", n=m["n"], cap=m["cap"])),
    _k(r"HAVING was NULL or could not be evaluated on (?P<n>\d+) row\(s\) of the noisy result; those rows "
       r"are left out",
       lambda m: _("HAVING could not be decided on %(n)s row(s) of the noisy result; those rows are left out.",
                   n=m["n"])),
    _k(r"(?P<col>.+): (?P<n>\d+) value\(s\) were not finite numbers and are shown as NULL",
       lambda m: _t("%(col)s: %(n)s value(s) were not finite numbers and are shown as NULL.", {"col": m["col"]},
                    n=m["n"])),
    _k(r"the intervals are at (?P<at>[\d.]+)% confidence, the level this release was made at; it cannot be "
       r"recomputed at (?P<asked>[\d.]+)% .*",
       lambda m: _("The intervals are at %(at)s%% confidence, the level this release was made at; they cannot "
                   "be recomputed at %(asked)s%%.", at=m["at"], asked=m["asked"])),
    _k(r"dummy run: synthetic data generated from the policy's public schema only; the figures mean nothing "
       r"and no budget was spent",
       lambda m: _("Dummy run: synthetic data made from the public schema only; the figures mean nothing and "
                   "no budget was spent.")),
)

#: The notes ``sandbox.service.policy_draft`` writes beside each column's suggestions.
DRAFT: Final = (
    _k(r"the privacy unit: bounding is per unit; never queryable",
       lambda m: _("The privacy unit: contributions are bounded per unit; it is never queryable.")),
    _k(r"the risk scan finds (?P<kinds>.+) values: identifier \(never queryable\)",
       lambda m: _("The risk scan finds values that look like %(kinds)s: suggested as an identifier (never "
                   "queryable).", kinds=_list(finding_kind(k) for k in m["kinds"].split(", ")))),
    _k(r"(?P<distinct>[\d,]+) distinct values for (?P<units>[\d,]+) units: it names or codes the unit",
       lambda m: _("%(distinct)s distinct values for %(units)s units: it names or codes the unit, so it is "
                   "suggested as an identifier.", distinct=m["distinct"], units=m["units"])),
    _k(r"the name suggests a quasi-identifier \(place, age, sex, birth, occupation…\)",
       lambda m: _("The column's name suggests a quasi-identifier (place, age, sex, birth, occupation…).")),
    _k(r"no values: declare bounds by hand",
       lambda m: _("The column has no values: declare its bounds by hand.")),
    _k(r"observed (?P<lo>\d{4}-\d\d-\d\d) to (?P<hi>\d{4}-\d\d-\d\d); suggested: whole years around them",
       lambda m: _("Dates from %(lo)s to %(hi)s; the suggested bounds are the whole years around them.",
                   lo=m["lo"], hi=m["hi"])),
    _k(r"(?P<n>\d+) values, (?P<rare>\d+) of them held by fewer than (?P<k>\d+) units: not listed as public "
       r"\(listing would disclose them\); groups are kept by DP selection",
       lambda m: _("%(n)s values, %(rare)s of them held by fewer than %(k)s units: not suggested as public "
                   "values (listing them would disclose them); groups are chosen with differential privacy.",
                   n=m["n"], rare=m["rare"], k=m["k"])),
    _k(r"(?P<n>\d+) values, each held by at least (?P<k>\d+) units: suggested as public \(every one is "
       r"released, empty groups included\)",
       lambda m: _("%(n)s values, each held by at least %(k)s units: suggested as public values (every one "
                   "is released, empty groups included).", n=m["n"], k=m["k"])),
    _k(r"longest value (?P<n>[\d,]+) characters \(default limit (?P<limit>[\d,]+)\)",
       lambda m: _("The longest value has %(n)s characters (the default limit is %(limit)s).",
                   n=m["n"], limit=m["limit"])),
    _k(r"holds times of day: the policy's date type keeps the day only",
       lambda m: _("The column holds times of day; the policy's date type keeps the day only.")),
    _k(r"observed (?P<lo>\S+) to (?P<hi>\S+); the bounding report suggests the clamp of (?P<rule>.+?): it changes "
       r"(?P<rows>[\d.]+%) of the values and removes (?P<mass>[\d.]+%) of the value mass \(the interval covers "
       r"the noise, not this\)",
       lambda m: _("Values from %(lo)s to %(hi)s. The bounding report suggests the clamp %(rule)s: it "
                   "changes %(rows)s of the values and removes %(mass)s of the value mass (an interval covers "
                   "the noise, not this).", lo=m["lo"], hi=m["hi"], rule=clamp_name(m["rule"]), rows=m["rows"],
                   mass=m["mass"])),
)


def word(note: str, kinds: Iterable[Kind]) -> str:
    """One note in the reader's language."""
    for kind in kinds:
        m = kind.pattern.match(note)
        if m:
            return kind.words(m)
    return _("Another note from the service: its own words are below.")


def worded(notes: Iterable[str] | None, kinds: Iterable[Kind]) -> list[dict[str, Any]]:
    kinds = tuple(kinds)
    return [{"text": word(n, kinds), "own": n} for n in (notes or [])]


def preview_notes(notes: Iterable[str] | None) -> list[dict[str, Any]]:
    return worded(notes, PREVIEW)


def result_notes(notes: Iterable[str] | None) -> list[dict[str, Any]]:
    return worded(notes, RESULT)


def draft_notes(notes: Iterable[str] | None) -> list[dict[str, Any]]:
    return worded(notes, DRAFT)


def own_words(notes: Iterable[str], element_id: str | None = None) -> Markup:
    """The service's words under the disclosure (English, not translated)."""
    items = Markup("").join(Markup("<li>{}</li>").format(n) for n in notes)
    ident = Markup(' id="{}"').format(element_id) if element_id else Markup("")
    return Markup('<details class="small service-words"><summary>{}</summary><ul lang="en" translate="no"{}>{}'
                  "</ul></details>").format(_("The service's own words"), ident, items)


__all__ = ["DAMAGE", "DRAFT", "PREVIEW", "RESULT", "damage", "draft_notes", "own_words", "preview_notes",
           "result_notes", "word"]
