"""Classification and grading of each dataset (第六条 分类分级; issue 14).

第六条 has the city bureau set the rules for classifying and grading public data (制定公共数据
分类分级规则); the grade then bounds how open a dataset may be. The rules here follow the grades
of the Data Security Law (数据安全法 第二十一条: 一般数据, 重要数据, 国家核心数据), with the most
open tier each grade allows:

| grade | 中文 | most open tier |
|---|---|---|
| ``general`` | 一般数据 | ``unconditional`` |
| ``important`` | 重要数据 | ``conditional`` (only through the sandbox) |
| ``core`` | 核心数据 | ``not_open`` |

A classification is a category (分类: the subject, e.g. 卫生健康, 市场监管; free text), a grade
and the basis for it. The owner records it (``PUT /api/v1/datasets/<name>/classification``) or
declares it in the policy (``[dataset] classification = {category = "…", grade = "…"}``); a
regulator within its jurisdiction may re-grade (the bureau supervises, 第六条). A grade stricter
than the dataset's tier is refused until the tier is lowered (``409 grade_forbids_tier``), and
no publication or tier raise may pass the grade's ceiling — checked at submission and again at
the co-signature. The classification is shown to owners and regulators, and the grade in the
public catalog; every change is logged (``dataset.classified``, old and new).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Final

from audit_log.actions import Action
from sandbox.errors import BadRequest, NotFound, SandboxError
from sandbox.governance import dataset_access, datasets, organisations
from sandbox.store import fields
from sandbox.store.context import Context
from sandbox.store.users import User
from sandbox.store.workspace import transaction

GRADES: Final = {"general": "unconditional", "important": "conditional", "core": "not_open"}
GRADE_NAMES_ZH: Final = {"general": "一般数据", "important": "重要数据", "core": "核心数据"}
RANK: Final = {"not_open": 0, "conditional": 1, "unconditional": 2}


class GradeForbidsTier(SandboxError):
    code = "grade_forbids_tier"
    http_status = 409


def allows(grade: str | None, tier: str) -> bool:
    """>>> allows("important", "unconditional"), allows("important", "conditional"), allows(None, "unconditional")
    (False, True, True)
    """
    return grade is None or RANK[tier] <= RANK[GRADES[grade]]


def of(conn: sqlite3.Connection, dataset_id: int, v: datasets.DatasetVersion | None = None) -> dict[str, Any] | None:
    """The recorded classification, else the policy's declaration, else None (unclassified)."""
    row = conn.execute("SELECT classification FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
    if row and row["classification"]:
        return json.loads(row["classification"])
    if v is None:
        versions = datasets.all_versions(conn, dataset_id)
        v = versions[-1] if versions else None
    declared = v.policy.classification if v is not None else None
    return {**declared, "basis": "declared in the policy", "source": "policy"} if declared else None


def require(conn: sqlite3.Connection, dataset_id: int, name: str, tier: str,
            v: datasets.DatasetVersion | None = None) -> dict[str, Any] | None:
    """Refuse opening ``name`` as ``tier`` when its grade does not allow it (第六条)."""
    c = of(conn, dataset_id, v)
    if c is not None and not allows(c["grade"], tier):
        raise GradeForbidsTier(
            f"{name} is graded {c['grade']} ({GRADE_NAMES_ZH[c['grade']]}); the grading rules (第六条 分类分级) "
            f"open such data at most as {GRADES[c['grade']]}, not {tier}. Re-grade it with its basis first, "
            "or keep the tier")
    return c


def set_classification(sb: Context, user: User | None, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """``PUT /api/v1/datasets/<name>/classification`` ``{"category", "grade", "basis"}`` (the owner; a
    regulator within its jurisdiction)."""

    row = dataset_access.visible_row(sb, user, "dataset.classify", name)
    assert user is not None
    conn = sb.conn()
    if not organisations.in_jurisdiction(conn, user, [row["name"]]):
        raise NotFound(f"no dataset named {name!r}")
    grade = body.get("grade")
    if grade not in GRADES:
        raise BadRequest(f"grade must be one of {', '.join(GRADES)} (第六条 分级)", code="bad_grade")
    new = {"category": fields.text(body, "category", limit=100), "grade": grade,
           "basis": fields.text(body, "basis", limit=1000), "by": user.username}
    with transaction(conn):
        tier = conn.execute("SELECT tier FROM datasets WHERE id = ?", (row["id"],)).fetchone()["tier"]
        if not allows(grade, tier):
            raise GradeForbidsTier(f"{row['name']} is {tier}; a {grade} dataset ({GRADE_NAMES_ZH[grade]}) opens at "
                                   f"most as {GRADES[grade]} (第六条): lower its tier first")
        old = of(conn, row["id"])
        conn.execute("UPDATE datasets SET classification = ? WHERE id = ?",
                     (json.dumps(new, ensure_ascii=False), row["id"]))
        sb.audit(conn, user, Action.DATASET_CLASSIFIED, f"dataset/{row['name']}",
                 {"dataset": row["name"], "old": old, "new": new})
    return {"dataset": row["name"], "classification": new}

