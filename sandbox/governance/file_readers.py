"""Reading the files Jinan's bureaus hold into an Arrow table (issue 13, "Real files in").

CSV in UTF-8 (with or without a byte-order mark), GBK or GB18030 — declared, or detected
(a BOM, else strict UTF-8, else GBK, else GB18030, which decodes any GBK text too); Excel
``.xlsx`` (the first sheet, first row the headers); Parquet.

CSV and Excel cells are read as text first and converted per column: to the type the policy
declares (``types``), or, without a policy, to the type :func:`infer_type` finds. So a phone
number, an 18-digit resident ID or a 统一社会信用代码 declared ``text`` stays exactly as
written (leading zeros and all), and a column is never half-converted.

Headers are kept, Chinese included, and normalised by :func:`column_name` (trimmed, ASCII
letters lower-cased, anything that is not a letter, digit, Han character or ``_`` becomes
``_``: ``金额（元）`` → ``金额_元``) so that they are valid policy column names and usable in SQL.

Every refusal names the file and, where there is one, the row (the header is row 1, as in a
spreadsheet) and the column: :class:`FileReadError`.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from sandbox.errors import BadRequest
from sandbox.governance.policy import HAN_CHARACTERS

ENCODINGS: Final = ("utf-8", "utf-8-sig", "gbk", "gb18030")
FORMATS: Final = (".csv", ".xlsx", ".parquet")
#: Values looked at when inferring a column's type (every value is still converted).
INFER_ROWS: Final = 50_000
_HAN = HAN_CHARACTERS

_INT_RE = re.compile(r"^[+-]?\d{1,18}$")
_FLOAT_RE = re.compile(r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][+-]?\d+)?$")
_TIME = r"(?:[ T]+(\d{1,2})[:时](\d{1,2})(?:分|:)?(?:(\d{1,2})(?:\.\d+)?秒?)?)?"
_DATE_FORMS: Final = (
    re.compile(r"^(\d{4})([-/.])(\d{1,2})\2(\d{1,2})" + _TIME + "$"),   # 2024-1-5, 2024/01/05, 2024.01.05
    re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日" + _TIME.replace("[ T]+", "[ T]*") + "$"),  # 2024年1月5日
    re.compile(r"^(\d{4})(\d{2})(\d{2})$"),                               # 20240105
)
_TRUE: Final = frozenset({"true", "是", "y", "yes"})
_FALSE: Final = frozenset({"false", "否", "n", "no"})


class FileReadError(BadRequest):
    """A data file that cannot be read as it is; the message names file, row and column."""

    code = "file_unreadable"

    def __init__(self, file: str, message: str, *, row: int | None = None, column: str | None = None):
        where = file + (f", row {row}" if row is not None else "") + (f", column {column!r}" if column else "")
        super().__init__(f"{where}: {message}")
        self.file, self.row, self.column = file, row, column


# -- column names ---------------------------------------------------------------------------------
def column_name(header: str) -> str:
    """A header as a policy column name (Chinese kept).

    >>> column_name(" 统一社会信用代码 ")
    '统一社会信用代码'
    >>> column_name("金额（元）")
    '金额_元'
    >>> column_name("Visit Date")
    'visit_date'
    >>> column_name("2024年")
    'c_2024年'
    """
    name = re.sub(rf"[^a-z0-9_{_HAN}]+", "_", header.strip().lower()).strip("_")
    if not name or not re.match(rf"[a-z{_HAN}]", name):
        name = "c_" + name
    return name[:63]


def _names(file: str, headers: Sequence[Any]) -> list[str]:
    names: list[str] = []
    for i, header in enumerate(headers):
        text = "" if header is None else str(header)
        if not text.strip():
            raise FileReadError(file, f"the header of column {i + 1} is empty; give every column a name", row=1)
        name = column_name(text)
        if name in names:
            raise FileReadError(file, f"headers {headers[names.index(name)]!r} and {text!r} both become "
                                f"column {name!r}; rename one", row=1)
        names.append(name)
    return names


# -- encodings ------------------------------------------------------------------------------------
def detect_encoding(data: bytes) -> str:
    """``utf-8-sig`` (a BOM), ``utf-8``, ``gbk`` or ``gb18030``: the first that decodes strictly.

    >>> detect_encoding("区县".encode("gbk"))
    'gbk'
    >>> detect_encoding(codecs.BOM_UTF8 + "区县".encode())
    'utf-8-sig'
    """
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    for encoding in ("utf-8", "gbk", "gb18030"):
        try:
            data.decode(encoding)
        except UnicodeDecodeError:
            continue
        return encoding
    raise UnicodeDecodeError("gb18030", data, 0, 1, "not UTF-8, GBK or GB18030")


def _decode(file: str, data: bytes, encoding: str | None) -> tuple[str, str]:
    if encoding is not None:
        encoding = encoding.lower().replace("_", "-")
        if encoding not in ENCODINGS:
            raise FileReadError(file, f"unknown encoding {encoding!r}; use one of {', '.join(ENCODINGS)}")
        if encoding == "utf-8" and data.startswith(codecs.BOM_UTF8):
            encoding = "utf-8-sig"
    else:
        try:
            encoding = detect_encoding(data)
        except UnicodeDecodeError:
            raise FileReadError(file, "the text is not UTF-8, GBK or GB18030; save it in one of these") from None
    try:
        return data.decode(encoding), encoding
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FileReadError(file, f"byte {exc.start} is not valid {encoding}; declare the file's real "
                            "encoding or save it as UTF-8", row=line) from None


# -- raw cells ------------------------------------------------------------------------------------
def _csv_cells(file: str, text: str) -> tuple[list[str], list[list[str | None]]]:
    rows = csv.reader(io.StringIO(text, newline=""))
    try:
        headers = next(rows)
    except StopIteration:
        raise FileReadError(file, "the file is empty") from None
    names = _names(file, headers)
    columns: list[list[str | None]] = [[] for _ in names]
    try:
        for line_no, row in enumerate(rows, start=2):
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if len(row) != len(names):
                raise FileReadError(file, f"has {len(row)} fields but the header has {len(names)}", row=line_no)
            for col, cell in zip(columns, row, strict=True):
                col.append(cell if cell.strip() else None)
    except csv.Error as exc:
        raise FileReadError(file, f"not valid CSV: {exc}", row=rows.line_num) from None
    return names, columns


def _excel_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ") if value.time() != dt.time() else value.date().isoformat()
    text = str(value)
    return text if text.strip() else None


def _xlsx_cells(file: str, data: bytes) -> tuple[list[str], list[list[str | None]]]:
    import openpyxl  # only needed for Excel files
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, OSError, KeyError, ValueError) as exc:
        raise FileReadError(file, f"not a readable .xlsx workbook ({exc})") from None
    try:
        rows = book.worksheets[0].iter_rows(values_only=True)
        headers = list(next(rows, ()))
        while headers and headers[-1] is None:
            headers.pop()
        if not headers:
            raise FileReadError(file, "the first sheet has no header row")
        names = _names(file, headers)
        columns: list[list[str | None]] = [[] for _ in names]
        for row_no, row in enumerate(rows, start=2):
            cells = [_excel_text(v) for v in row]
            if all(c is None for c in cells):
                continue
            if any(c is not None for c in cells[len(names):]):
                raise FileReadError(file, "has values right of the last headed column", row=row_no)
            cells += [None] * (len(names) - len(cells))
            for col, cell in zip(columns, cells[: len(names)], strict=True):
                col.append(cell)
    finally:
        book.close()
    return names, columns


# -- values ---------------------------------------------------------------------------------------
def parse_date(text: str) -> dt.date | dt.datetime | None:
    """A Chinese-office date or date-time, or None when ``text`` is not one.

    >>> parse_date("2024/01/05"), parse_date("2024-1-5"), parse_date("2024.01.05")
    (datetime.date(2024, 1, 5), datetime.date(2024, 1, 5), datetime.date(2024, 1, 5))
    >>> parse_date("2024年1月5日"), parse_date("20240105")
    (datetime.date(2024, 1, 5), datetime.date(2024, 1, 5))
    >>> parse_date("2024年1月5日 14时30分"), parse_date("2024/1/5 8:05:09")
    (datetime.datetime(2024, 1, 5, 14, 30), datetime.datetime(2024, 1, 5, 8, 5, 9))
    >>> parse_date("2024/02/30") is None
    True
    """
    text = text.strip()
    for form in _DATE_FORMS:
        m = form.match(text)
        if not m:
            continue
        parts = [g for g in m.groups() if g is not None and g not in "-/."]
        try:
            numbers = [int(p) for p in parts]
            if len(numbers) == 3:
                return dt.date(*numbers)
            return dt.datetime(*numbers)  # type: ignore[arg-type]
        except ValueError:
            return None
    return None


def _number(text: str) -> str:
    return text.strip().replace(",", "").replace("，", "")


def _convert_one(text: str, ctype: str) -> Any:
    """``text`` as a value of ``ctype``; raises ValueError when it is not one."""
    if ctype == "text":
        return text
    if ctype == "int":
        raw = _number(text)
        if _INT_RE.match(raw):
            return int(raw)
        value = float(raw)
        if value.is_integer() and abs(value) < 2**63:
            return int(value)
        raise ValueError
    if ctype == "float":
        value = float(_number(text))
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError
        return value
    if ctype == "date":
        parsed = parse_date(text)
        if parsed is None:
            raise ValueError
        return parsed
    if ctype == "bool":
        low = text.strip().lower()
        if low in _TRUE or low == "1":
            return True
        if low in _FALSE or low == "0":
            return False
        raise ValueError
    raise ValueError(ctype)


_ARROW: Final = {"int": pa.int64(), "float": pa.float64(), "text": pa.string(), "bool": pa.bool_()}
_EXPECT: Final = {"int": "a whole number", "float": "a number", "date": "a date such as 2024-01-05, "
                  "2024/01/05 or 2024年1月5日", "bool": "是/否 or true/false", "text": "text"}


def convert_column(file: str, column: str, cells: Sequence[str | None], ctype: str) -> pa.Array:
    """Cells of one column as an Arrow array of ``ctype``; the first bad cell is named."""
    if ctype == "text":
        return pa.array(cells, pa.string())
    values = []
    for i, cell in enumerate(cells):
        if cell is None:
            values.append(None)
            continue
        try:
            values.append(_convert_one(cell, ctype))
        except (ValueError, OverflowError):
            shown = cell if len(cell) <= 40 else cell[:40] + "…"
            raise FileReadError(file, f"{shown!r} is not {_EXPECT[ctype]} (the column is {ctype})",
                                row=i + 2, column=column) from None
    if ctype == "date":
        if any(isinstance(v, dt.datetime) for v in values):
            return pa.array([v if v is None or isinstance(v, dt.datetime) else dt.datetime.combine(v, dt.time())
                             for v in values], pa.timestamp("s"))
        return pa.array(values, pa.date32())
    return pa.array(values, _ARROW[ctype])


def _identifier_like(samples: Sequence[str]) -> bool:
    """Digit strings that are codes, not quantities: leading zeros, 11+ digits, or an ID's X."""
    return any((len(s) > 1 and s[0] == "0" and s.isdigit()) or len(s) >= 11 for s in samples)


def infer_type(cells: Sequence[str | None]) -> str:
    """The narrowest policy type every value reads as (text when in doubt).

    >>> infer_type(["13812345678", "15900001111"]), infer_type(["0531", "0532"])
    ('text', 'text')
    >>> infer_type(["12", "-3"]), infer_type(["1.5", "2"]), infer_type(["2024/1/5", None])
    ('int', 'float', 'date')
    """
    samples = [c.strip() for c in cells[:INFER_ROWS] if c is not None]
    if not samples:
        return "text"
    if all(_INT_RE.match(s) for s in samples):
        if all(len(s) == 8 and 1900 <= int(s[:4]) <= 2100 and parse_date(s) for s in samples):
            return "date"  # 20240105
        return "text" if _identifier_like(samples) else "int"
    if all(_FLOAT_RE.match(s) and any(ch.isdigit() for ch in s) for s in samples):
        return "text" if _identifier_like([s for s in samples if s.isdigit()]) else "float"
    if all(parse_date(s) is not None for s in samples):
        return "date"
    if all(s.lower() in _TRUE | _FALSE for s in samples):
        return "bool"
    return "text"


# -- tables ---------------------------------------------------------------------------------------
def _typed(file: str, names: list[str], columns: list[list[str | None]],
           types: Mapping[str, str] | None) -> pa.Table:
    arrays = []
    for name, cells in zip(names, columns, strict=True):
        ctype = (types or {}).get(name) or infer_type(cells)
        arrays.append(convert_column(file, name, cells, ctype))
    return pa.table(arrays, names=names)


def _parquet(file: str, data: bytes, types: Mapping[str, str] | None) -> pa.Table:
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowInvalid, OSError) as exc:
        raise FileReadError(file, f"not a readable Parquet file ({exc})") from None
    table = table.rename_columns(_names(file, table.column_names))
    for i, name in enumerate(table.column_names):
        arrow_type = table.schema.field(i).type
        if (types or {}).get(name) == "text" and pa.types.is_integer(arrow_type):
            table = table.set_column(i, name, table.column(i).cast(pa.string()))  # a code, not a number
    return table


def read_bytes(data: bytes, filename: str, *, types: Mapping[str, str] | None = None,
               encoding: str | None = None) -> pa.Table:
    """A data file held in memory (the console's upload) as a table."""
    return read_bytes_with_encoding(data, filename, types=types, encoding=encoding)[0]


def read_bytes_with_encoding(data: bytes, filename: str, *, types: Mapping[str, str] | None = None,
                             encoding: str | None = None) -> tuple[pa.Table, str | None]:
    """:func:`read_bytes` and the text encoding used (None for binary formats)."""
    file = Path(filename).name
    suffix = Path(filename).suffix.lower()
    if data[:4] == b"PAR1" or suffix == ".parquet":
        return _parquet(file, data, types), None
    if data[:2] == b"PK" or suffix == ".xlsx":
        names, columns = _xlsx_cells(file, data)
        return _typed(file, names, columns, types), None
    if suffix in (".csv", ".txt"):
        text, used = _decode(file, data, encoding)
        names, columns = _csv_cells(file, text)
        return _typed(file, names, columns, types), used
    raise FileReadError(file, f"unsupported file type {suffix or '(none)'!r}: use .csv, .xlsx or .parquet")


def read_file(path: str | Path, *, types: Mapping[str, str] | None = None,
              encoding: str | None = None) -> pa.Table:
    """A data file on disk as a table (``sandbox datasets add`` and ``draft``)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FileReadError(path.name, f"cannot read the file ({exc.strerror})") from None
    return read_bytes(data, path.name, types=types, encoding=encoding)
