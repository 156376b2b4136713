"""The files a release downloads as: CSV and Excel with the released cells only, and the receipt.

SECURITY: text that would start a spreadsheet formula is written as text.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from sandbox.web.console import queries as console_queries


def csv_cell(value: Any) -> Any:
    """SECURITY: a text cell starting like a formula is prefixed so spreadsheets show it as text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def xlsx_cell(value: Any) -> Any:
    """SECURITY: as in the CSV, text that would start a formula is written as text."""
    cell = csv_cell(value)
    return None if cell == "" else cell


def release_csv(record) -> str:
    """The released values and their intervals, as CSV text."""
    header, rows = console_queries.released_csv_rows(record)
    sink = io.StringIO()
    writer = csv.writer(sink)
    writer.writerow([csv_cell(h) for h in header])
    for row in rows:
        writer.writerow([csv_cell(v) for v in row])
    return "\ufeff" + sink.getvalue()  # BOM: spreadsheet programs then read the Chinese keys right


def release_xlsx(record) -> bytes:
    """The same cells as the CSV (released values and their intervals, nothing else), as an
    Excel workbook, with a second sheet naming the release: its SQL, ε, receipt."""
    from openpyxl import Workbook  # optional dependency: only the Excel download loads it

    header, rows = console_queries.released_csv_rows(record)
    book = Workbook()
    sheet = book.active
    sheet.title = "release"
    sheet.append([xlsx_cell(h) for h in header])
    for row in rows:
        sheet.append([xlsx_cell(v) for v in row])
    sheet.freeze_panes = "A2"
    about = book.create_sheet("about")
    receipt = record.receipt or {}
    for key, value in (("query_id", record.id), ("created_at", record.created_at), ("epsilon", record.epsilon),
                       ("sql", record.sql), ("log_index", receipt.get("log_index")),
                       ("leaf_hash", receipt.get("leaf_hash"))):
        about.append([key, xlsx_cell(value)])
    sink = io.BytesIO()
    book.save(sink)
    return sink.getvalue()


def receipt_json(record) -> str:
    return json.dumps(record.receipt, indent=2)
