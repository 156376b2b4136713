"""The dataset policy form: drafted from the uploaded file, and written back as a TOML policy.

The draft is :mod:`sandbox.service.policy_draft`'s, as ``sandbox datasets draft`` makes it
(types, bounds, public values, identifier guesses from the risk scan, 第十二条); the owner
reviews it in the form, and the form becomes the TOML that ``SandboxAdmin.add_dataset``
validates, exactly as ``sandbox datasets add`` does.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

import pyarrow as pa

from sandbox.governance import file_readers, risk_scan
from sandbox.governance.policy import COLUMN_NAME_RE
from sandbox.service import policy_draft

FREQUENCIES: Final = ("daily", "weekly", "monthly", "quarterly", "yearly", "irregular")
#: The path refusals name for a policy written from the form (not a file the owner has).
POLICY_PATH: Final = "policy form"
SCAN_ROWS: Final = 20_000


def read_table(data: bytes, filename: str, types: dict[str, str] | None = None) -> pa.Table:
    """A data file from memory (CSV in UTF-8/GBK/GB18030, .xlsx, Parquet), like
    ``datasets.read_data_file`` but never touching disk; cells read as the policy's ``types``."""
    return file_readers.read_bytes(data, filename, types=types)


def describe(table: pa.Table, name: str, owner: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Each column with its drafted type, sensitivity, bounds and public values
    (:mod:`sandbox.service.policy_draft`, the same draft as ``sandbox datasets draft``), and the draft."""
    draft = policy_draft.draft_policy(table, name=name, owner=owner)
    out = []
    for col in draft.columns:
        findings = risk_scan.scan_column(col.name, table.column(col.name), "sensitive", sample_rows=SCAN_ROWS)
        out.append({
            "name": col.name, "arrow_type": str(table.schema.field(col.name).type), "type": col.type,
            "sensitivity": col.sensitivity, "findings": sorted({f.kind for f in findings}),
            "valid_name": bool(COLUMN_NAME_RE.match(col.name)),
            "low": "" if col.bounds is None else str(col.bounds[0]),
            "high": "" if col.bounds is None else str(col.bounds[1]),
            "public_values": "\n".join(str(v) for v in col.public_values or ()), "notes": list(col.notes),
        })
    summary = {"privacy_unit": draft.privacy_unit, "one_row_per_unit": draft.one_row_per_unit,
               "max_partitions": draft.max_partitions, "max_rows_per_partition": draft.max_rows_per_partition,
               "toml": draft.toml()}
    return out, summary


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _toml_scalar(raw: str, ctype: str) -> str:
    text = raw.strip()
    if ctype in ("int", "float"):
        try:
            number = int(text) if ctype == "int" and re.fullmatch(r"[-+]?\d+", text) else float(text)
        except ValueError:
            return _toml_str(text)  # parse_policy then names the field: "is not a number"
        return repr(number) if isinstance(number, float) else str(number)
    return _toml_str(text)


def split_values(raw: str) -> list[str]:
    """Public values: one per line, or separated by commas (also ， and 、)."""
    return [v.strip() for v in re.split(r"[\n,，、]", raw or "") if v.strip()]


def policy_toml(form, columns: list[str], *, name: str, owner: str) -> str:
    lines = ["[dataset]", f"name = {_toml_str(name)}"]
    for key in ("title", "title_zh", "description"):
        if form.get(key, "").strip() or key == "title":
            lines.append(f"{key} = {_toml_str(form.get(key, '').strip())}")
    lines += [f"owner = {_toml_str(owner)}", f"tier = {_toml_str(form.get('tier', ''))}",
              f"privacy_unit = {_toml_str(form.get('privacy_unit', ''))}",
              f"update_frequency = {_toml_str(form.get('update_frequency', 'irregular'))}",
              f"one_row_per_unit = {'true' if form.get('one_row_per_unit') else 'false'}"]
    for key in ("max_partitions", "max_rows_per_partition"):
        lines.append(f"{key} = {_toml_scalar(form.get(key, '1') or '1', 'int')}")
    for col in columns:
        ctype = form.get(f"col:{col}:type", "text")
        key = col if re.fullmatch(r"[A-Za-z0-9_-]+", col) else _toml_str(col)  # 区县 is quoted in TOML
        lines += ["", f"[columns.{key}]", f"type = {_toml_str(ctype)}",
                  f"sensitivity = {_toml_str(form.get(f'col:{col}:sensitivity', 'sensitive'))}"]
        lo, hi = form.get(f"col:{col}:low", "").strip(), form.get(f"col:{col}:high", "").strip()
        if lo or hi:
            lines.append(f"bounds = [{_toml_scalar(lo, ctype)}, {_toml_scalar(hi, ctype)}]")
        values = split_values(form.get(f"col:{col}:public_values", ""))
        if values:
            lines.append("public_values = [" + ", ".join(_toml_scalar(v, ctype) for v in values) + "]")
        if form.get(f"col:{col}:unit", "").strip():  # "元", "岁"; the policy checks it
            lines.append(f"unit = {_toml_str(form.get(f'col:{col}:unit', '').strip())}")
        if form.get(f"col:{col}:description", "").strip():
            lines.append(f"description = {_toml_str(form.get(f'col:{col}:description', '').strip())}")
    return "\n".join(lines) + "\n"


FIELD_RE: Final = re.compile(r"\b(dataset\.(\w+)|columns\.(\w+)(?:\.(\w+))?)\b")


def error_field(message: str) -> str | None:
    """The form field a policy refusal names (``columns.age.bounds`` → ``col:age:low``)."""
    m = FIELD_RE.search(message)
    if not m:
        return None
    if m.group(2):
        return m.group(2)
    col, key = m.group(3), m.group(4) or "type"
    return f"col:{col}:{'low' if key == 'bounds' else key}"


def initial_form(meta: dict[str, Any]) -> dict[str, Any]:
    """The form's first values: the draft's suggestions for the owner to review."""
    unit = next((c["name"] for c in meta["columns"] if c["name"] in ("person_id", "unit_id")
                 or c["name"].endswith("_id")), meta["columns"][0]["name"] if meta["columns"] else "")
    form: dict[str, Any] = {"title": "", "title_zh": "", "description": "", "tier": "conditional", "privacy_unit": unit,
                            "update_frequency": "monthly", "one_row_per_unit": "", "max_partitions": "1",
                            "max_rows_per_partition": "1", "policy_text": ""}
    draft = meta.get("draft") or {}
    if draft:  # the draft's suggestions (policy_draft), for the owner to review
        form.update(privacy_unit=draft["privacy_unit"], one_row_per_unit="1" if draft["one_row_per_unit"] else "",
                    max_partitions=str(draft["max_partitions"]),
                    max_rows_per_partition=str(draft["max_rows_per_partition"]))
    for c in meta["columns"]:
        for key in ("type", "sensitivity", "low", "high", "public_values"):
            form[f"col:{c['name']}:{key}"] = c.get(key, "")
    return form
