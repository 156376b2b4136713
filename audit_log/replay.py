"""Replay: rebuild the regulator's view from the log alone (no database, no server).

From entries it derives, per approval, the privacy budget over time: the charge of a
query is in its ``query.started`` entry (``details.approval_id``, ``epsilon``, ``delta``,
``budget_after``), written before the engine read any data; the ``query.released`` or
``query.failed`` entry that follows names it by ``start_seq`` and charges nothing (logs
written before charge-first carry the charge on those outcome entries instead);
releases and refusals (``query.refused``) per researcher; suspensions
(``suspension.created`` / ``suspension.lifted``); tier changes (``dataset.tier_changed``);
key changes (``key.*``). It recomputes the spent budget by summing the logged charges and
flags every entry whose reported ``budget_after`` disagrees, and (with a workspace)
compares the sums with the live ledger (``compare_with_ledger``).

``budget_after`` may be an object with any of ``epsilon_spent``, ``epsilon_remaining``,
``delta_spent``, ``delta_remaining`` (preferred), or a number, read as ε spent if it
equals the running sum, else as ε remaining if it equals the grant minus the sum.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from audit_log.actions import Action

REPLAY_FORMAT = "sandbox-replay/v1"


def agree(a: float, b: float) -> bool:
    """Whether a reported figure equals a recomputed one, up to float summation order."""
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def as_number(value: Any) -> float | None:
    """A logged JSON number as a float; None for anything else (booleans included)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def is_outcome_of_start(details: Any) -> bool:
    """Whether a ``query.released``/``query.failed`` entry follows a ``query.started`` one
    (and so charges nothing itself)."""
    return isinstance(details, Mapping) and "start_seq" in details


def _event(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "seq": entry.get("seq"),
        "time": entry.get("time"),
        "actor": entry.get("actor"),
        "role": entry.get("role"),
        "action": entry.get("action"),
        "subject": entry.get("subject"),
        "details": entry.get("details", {}),
    }


def _approval(approvals: dict[str, dict[str, Any]], approval_id: Any) -> dict[str, Any]:
    key = str(approval_id)
    if key not in approvals:
        approvals[key] = {
            "approval_id": approval_id,
            "researcher": None,
            "granted": None,
            "releases": 0,
            "refusals": 0,
            "epsilon_spent": 0.0,
            "delta_spent": 0.0,
            "timeline": [],
            "inconsistencies": [],
        }
    return approvals[key]


def _check_budget_after(rec: dict[str, Any], seq: Any, reported: Any) -> None:
    spent_e, spent_d = rec["epsilon_spent"], rec["delta_spent"]
    granted = rec["granted"] or {}
    total_e, total_d = (
        as_number(granted.get("epsilon_total")),
        as_number(granted.get("delta_total")),
    )
    problems = []
    if isinstance(reported, Mapping) and "epsilon_spent_basic" in reported:
        # The accountant runs one filter per approval on a fixed route (decision 0007): the
        # log's own sums must equal the basic total and the ρ total; on the basic route the
        # reported ε may not exceed Σε (the zCDP route's figure is recomputed with OpenDP's
        # conversion by ``sandbox.governance.accounting_replay``, outside this OpenDP-free module).
        checks = [
            ("epsilon_spent_basic", spent_e),
            ("rho_spent", rec.get("rho_spent")),
        ]
        reported_e = as_number(reported.get("epsilon_spent"))
        if (
            reported.get("route", "basic") == "basic"
            and reported_e is not None
            and reported_e > spent_e * (1 + 1e-9) + 1e-12
        ):
            problems.append(
                f"epsilon_spent reported {reported_e:g} exceeds basic composition {spent_e:g}"
            )
        for name, expected in checks:
            value = as_number(reported.get(name))
            if value is not None and expected is not None and not agree(value, expected):
                problems.append(f"{name} reported {value:g}, the log's charges give {expected:g}")
    elif isinstance(reported, Mapping):
        checks = [
            ("epsilon_spent", spent_e),
            ("delta_spent", spent_d),
            ("epsilon_remaining", None if total_e is None else total_e - spent_e),
            ("delta_remaining", None if total_d is None else total_d - spent_d),
        ]
        for name, expected in checks:
            value = as_number(reported.get(name))
            if value is not None and expected is not None and not agree(value, expected):
                problems.append(f"{name} reported {value:g}, the log's charges give {expected:g}")
    elif as_number(reported) is not None:
        value = float(reported)
        remaining = None if total_e is None else total_e - spent_e
        if not (agree(value, spent_e) or (remaining is not None and agree(value, remaining))):
            problems.append(
                f"budget_after {value:g} is neither the ε spent ({spent_e:g})"
                + ("" if remaining is None else f" nor the ε remaining ({remaining:g})")
            )
    for message in problems:
        rec["inconsistencies"].append({"seq": seq, "message": message})


class _Replay:
    """The running state of one replay: what ``replay`` has read so far, per approval and
    per researcher. One method per kind of entry, so each rule reads on its own."""

    def __init__(self) -> None:
        self.approvals: dict[str, dict[str, Any]] = {}
        self.researchers: dict[str, dict[str, Any]] = {}
        self.suspensions: list[dict[str, Any]] = []
        self.tier_changes: list[dict[str, Any]] = []
        self.key_changes: list[dict[str, Any]] = []
        self.actions: Counter[str] = Counter()
        self.count = 0
        self.first_time: Any = None
        self.last_time: Any = None
        self.started: dict[Any, Any] = {}  # seq of each query.started → its approval
        self.outcomes: dict[Any, str] = {}  # start_seq → the outcome logged against it

    def researcher(self, name: str) -> dict[str, Any]:
        return self.researchers.setdefault(
            name, {"releases": 0, "refusals": 0, "refusal_codes": {}, "epsilon_spent": 0.0}
        )

    def add(self, entry: Mapping[str, Any]) -> None:
        """Read one entry (in log order)."""
        self.count += 1
        action = str(entry.get("action", ""))
        self.actions[action] += 1
        self.first_time = self.first_time or entry.get("time")
        self.last_time = entry.get("time")
        details = entry.get("details") or {}
        actor = str(entry.get("actor", ""))
        approval_id = details.get("approval_id") if isinstance(details, Mapping) else None
        if action in (Action.QUERY_RELEASED, Action.QUERY_FAILED) and is_outcome_of_start(details):
            self.outcome(action, details, actor, approval_id)
        elif action in (Action.QUERY_STARTED, Action.QUERY_RELEASED, Action.QUERY_FAILED):
            self.charge(entry, action, details, actor, approval_id)
        elif action == Action.QUERY_REFUSED:
            self.refusal(details, actor, approval_id)
        elif action in (Action.SUSPENSION_CREATED, Action.SUSPENSION_LIFTED):
            self.suspensions.append(_event(entry))
        elif action == Action.DATASET_TIER_CHANGED:
            self.tier_changes.append(_event(entry))
        elif action.startswith("key."):
            self.key_changes.append(_event(entry))
        if (
            approval_id is not None
            and action != Action.QUERY_RELEASED
            and isinstance(details, Mapping)
            and "epsilon_total" in details
        ):
            self.grant(entry, details, approval_id)

    def outcome(self, action: str, details: Any, actor: str, approval_id: Any) -> None:
        """A release or failure after a ``query.started`` entry: counted, charges nothing."""
        self.outcomes[details.get("start_seq")] = action
        self.researcher(actor)["releases"] += action == Action.QUERY_RELEASED
        if approval_id is not None:
            _approval(self.approvals, approval_id)["releases"] += action == Action.QUERY_RELEASED

    def charge(
        self, entry: Mapping[str, Any], action: str, details: Any, actor: str, approval_id: Any
    ) -> None:
        """An entry that carries a charge: ``query.started`` (or, in logs written before
        charge-first, the outcome entry itself)."""
        eps = as_number(details.get("epsilon")) or 0.0
        delta = as_number(details.get("delta")) or 0.0
        self.researcher(actor)["releases"] += action == Action.QUERY_RELEASED
        self.researcher(actor)["epsilon_spent"] += eps
        if action == Action.QUERY_STARTED:
            self.started[entry.get("seq")] = approval_id
        if approval_id is None:
            return
        rec = _approval(self.approvals, approval_id)
        rec["researcher"] = rec["researcher"] or actor
        rec["releases"] += action == Action.QUERY_RELEASED
        rec["epsilon_spent"] += eps
        rec["delta_spent"] += delta
        rho = as_number(details.get("rho"))
        if rho is not None:
            rec["rho_spent"] = rec.get("rho_spent", 0.0) + rho
        rec["timeline"].append(
            {
                "seq": entry.get("seq"),
                "time": entry.get("time"),
                "epsilon": eps,
                "delta": delta,
                "epsilon_spent": rec["epsilon_spent"],
                "delta_spent": rec["delta_spent"],
                "budget_after": details.get("budget_after"),
            }
        )
        if "budget_after" in details:
            _check_budget_after(rec, entry.get("seq"), details["budget_after"])

    def refusal(self, details: Any, actor: str, approval_id: Any) -> None:
        rec_r = self.researcher(actor)
        rec_r["refusals"] += 1
        code = str(details.get("code") or details.get("error_code") or "unspecified")
        rec_r["refusal_codes"][code] = rec_r["refusal_codes"].get(code, 0) + 1
        if approval_id is not None:
            _approval(self.approvals, approval_id)["refusals"] += 1

    def grant(self, entry: Mapping[str, Any], details: Any, approval_id: Any) -> None:
        """An entry that sets an approval's budget (``epsilon_total``)."""
        rec = _approval(self.approvals, approval_id)
        rec["granted"] = {
            "epsilon_total": details.get("epsilon_total"),
            "delta_total": details.get("delta_total"),
            "epsilon_per_query": details.get("epsilon_per_query"),
            "seq": entry.get("seq"),
            "time": entry.get("time"),
        }
        if details.get("researcher"):
            rec["researcher"] = details.get("researcher")

    def report(self) -> dict[str, Any]:
        unmatched = [seq for seq in self.outcomes if seq not in self.started]
        return {
            "format": REPLAY_FORMAT,
            "entries": self.count,
            "first_time": self.first_time,
            "last_time": self.last_time,
            "actions": dict(sorted(self.actions.items())),
            "approvals": self.approvals,
            "researchers": dict(sorted(self.researchers.items())),
            "suspensions": self.suspensions,
            "tier_changes": self.tier_changes,
            "key_changes": self.key_changes,
            # started but not (yet) finished: charged, nothing released (a crash, or in flight)
            "open_starts": [seq for seq in self.started if seq not in self.outcomes],
            "inconsistencies": [
                {"approval_id": rec["approval_id"], **item}
                for rec in self.approvals.values()
                for item in rec["inconsistencies"]
            ]
            + [
                {
                    "approval_id": None,
                    "seq": seq,
                    "message": f"an outcome names start entry {seq}, "
                    "which is not a query.started entry earlier in the log",
                }
                for seq in unmatched
            ],
            "ledger_differences": [],
        }


def replay(entries: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Derive the replay report (a JSON-ready dict) from decoded entries in log order."""
    state = _Replay()
    for entry in entries:
        state.add(entry)
    return state.report()


def compare_with_ledger(
    report: dict[str, Any], ledger: Mapping[Any, tuple[float, float]]
) -> list[dict[str, Any]]:
    """Compare the log's per-approval sums with a live ledger ``{approval_id: (ε, δ)}``.

    Returns (and stores in ``report["ledger_differences"]``) one item per disagreement,
    including approvals that appear on only one side.
    """
    differences = []
    log_sums = {k: (v["epsilon_spent"], v["delta_spent"]) for k, v in report["approvals"].items()}
    live = {str(k): (float(v[0]), float(v[1])) for k, v in ledger.items()}
    for key in sorted(set(log_sums) | set(live)):
        log_e, log_d = log_sums.get(key, (0.0, 0.0))
        live_e, live_d = live.get(key, (0.0, 0.0))
        if not (agree(log_e, live_e) and agree(log_d, live_d)):
            differences.append(
                {
                    "approval_id": key,
                    "log_epsilon": log_e,
                    "ledger_epsilon": live_e,
                    "log_delta": log_d,
                    "ledger_delta": live_d,
                }
            )
    report["ledger_differences"] = differences
    return differences


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Decoded entries of an export (no verification: run ``verify`` first)."""
    with open(path, "rb") as fh:
        return [json.loads(line) for line in fh if line.strip()]
