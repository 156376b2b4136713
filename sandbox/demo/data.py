"""Deterministic synthetic stand-ins for two conditional-tier datasets of Jinan.

Nothing here is real: names, resident ID numbers (valid check digits, GB 11643-1999),
phone numbers and incomes are drawn from a seeded generator so that every ``sandbox demo``
with the same ``--rows`` produces byte-identical files. Generated in chunks so that
``--rows 10000000`` fits in memory and shows progress.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# (district, GB/T 2260 area code, population weight)
DISTRICTS = [
    ("历下区", "370102", 0.085),
    ("市中区", "370103", 0.080),
    ("槐荫区", "370104", 0.065),
    ("天桥区", "370105", 0.075),
    ("历城区", "370112", 0.130),
    ("长清区", "370113", 0.065),
    ("章丘区", "370114", 0.115),
    ("济阳区", "370115", 0.060),
    ("莱芜区", "370116", 0.110),
    ("钢城区", "370117", 0.035),
    ("平阴县", "370124", 0.040),
    ("商河县", "370126", 0.140),
]
EDUCATION = ["小学", "初中", "高中", "大专", "本科", "研究生"]
EMPLOYMENT = ["在职", "个体", "失业", "退休", "学生"]
DEPARTMENTS = ["内科", "外科", "儿科", "妇产科", "眼科", "口腔科", "急诊科", "中医科"]
SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘")
GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍建国文斌宇浩凯鹏飞鑫晨欣怡子涵梓轩一诺")
ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
CHECK_CHARS = np.frombuffer(b"10X98765432", dtype=np.uint8)
VISIT_START = dt.date(2023, 1, 1)
VISIT_DAYS = (dt.date(2024, 12, 31) - VISIT_START).days + 1
CHUNK = 1_000_000
SEED = 20241101  # the measures took effect on 2024-11-01

Progress = Callable[[int], None]


def _digits_to_strings(digits: np.ndarray) -> pa.Array:
    """(n, k) array of ASCII codes → Arrow string array, without Python loops."""
    n, k = digits.shape
    fixed = np.ascontiguousarray(digits.astype(np.uint8)).view(f"S{k}").reshape(n)
    return pc.cast(pa.array(fixed, type=pa.binary(k)), pa.string())


def resident_id_numbers(area_codes: np.ndarray, birth: np.ndarray, rng: np.random.Generator) -> pa.Array:
    """18-digit resident ID numbers: area code, birth date, sequence, ISO 7064 check digit."""
    n = len(area_codes)
    digits = np.zeros((n, 18), dtype=np.int64)
    codes = np.array([int(c) for c in area_codes], dtype=np.int64) if area_codes.dtype.kind != "i" else area_codes
    for i in range(6):
        digits[:, i] = codes // 10 ** (5 - i) % 10
    days = birth.astype("datetime64[D]")
    years = days.astype("datetime64[Y]").astype(np.int64) + 1970
    months = days.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dom = (days - days.astype("datetime64[M]")).astype(np.int64) + 1
    stamp = years * 10000 + months * 100 + dom
    for i in range(8):
        digits[:, 6 + i] = stamp // 10 ** (7 - i) % 10
    seq = rng.integers(0, 1000, size=n)
    for i in range(3):
        digits[:, 14 + i] = seq // 10 ** (2 - i) % 10
    check = CHECK_CHARS[(digits[:, :17] * ID_WEIGHTS).sum(axis=1) % 11]
    ascii_codes = digits + ord("0")
    ascii_codes[:, 17] = check
    return _digits_to_strings(ascii_codes)


def _phones(rng: np.random.Generator, n: int) -> pa.Array:
    digits = rng.integers(0, 10, size=(n, 11))
    digits[:, 0] = 1
    digits[:, 1] = rng.choice([3, 5, 7, 8, 9], size=n)
    return _digits_to_strings(digits + ord("0"))


def _names(rng: np.random.Generator, n: int) -> pa.Array:
    surnames = pc.take(pa.array(SURNAMES), pa.array(rng.integers(0, len(SURNAMES), n)))
    first = pc.take(pa.array(GIVEN), pa.array(rng.integers(0, len(GIVEN), n)))
    second = pc.take(pa.array(GIVEN + [""] * (len(GIVEN) // 2)), pa.array(rng.integers(0, len(GIVEN) * 3 // 2, n)))
    return pc.binary_join_element_wise(surnames, first, second, "")


def residents_chunk(start: int, n: int, rng: np.random.Generator) -> pa.Table:
    weights = np.array([w for _, _, w in DISTRICTS])
    district_idx = rng.choice(len(DISTRICTS), size=n, p=weights / weights.sum())
    age = np.clip(rng.normal(41, 21, size=n), 0, 100).astype(np.int64)
    sex = rng.integers(0, 2, size=n)
    edu_bias = np.where(district_idx < 4, 1.0, 0.0)  # urban districts: more schooling
    edu_score = rng.normal(2.2 + edu_bias, 1.3, size=n)
    edu_score = np.where(age < 16, np.minimum(edu_score, age / 6.0), edu_score)
    education = np.clip(np.round(edu_score), 0, 5).astype(np.int64)
    employment = np.where(
        age < 22, 4, np.where(age >= 60, 3, rng.choice([0, 1, 2], size=n, p=[0.78, 0.14, 0.08]))
    )
    working = (employment == 0) | (employment == 1)
    base = np.exp(rng.normal(10.6 + 0.25 * education + 0.2 * edu_bias, 0.55, size=n))
    income = np.where(working, base, np.where(employment == 3, base * 0.35, 0.0))
    income = np.round(np.minimum(income, 2_000_000), 2)
    birth_days = (np.datetime64("2024-11-01") - (age * 365.25).astype("timedelta64[D]")
                  - rng.integers(0, 365, size=n).astype("timedelta64[D]"))
    area_codes = np.array([int(c) for _, c, _ in DISTRICTS], dtype=np.int64)[district_idx]
    return pa.table(
        {
            "person_id": pa.array(np.arange(start + 1, start + n + 1, dtype=np.int64)),
            "name": _names(rng, n),
            "id_number": resident_id_numbers(area_codes, birth_days, rng),
            "phone": _phones(rng, n),
            "district": pc.take(pa.array([d for d, _, _ in DISTRICTS]), pa.array(district_idx)),
            "age": pa.array(age),
            "sex": pc.take(pa.array(["男", "女"]), pa.array(sex)),
            "education": pc.take(pa.array(EDUCATION), pa.array(education)),
            "employment": pc.take(pa.array(EMPLOYMENT), pa.array(employment)),
            "income": pa.array(income),
        }
    )


def visits_chunk(start: int, n: int, ages: np.ndarray, rng: np.random.Generator) -> pa.Table:
    """0–20 visits per person; older people and small children visit more often."""
    rate = 1.2 + 3.0 * (ages >= 60) + 1.5 * (ages < 6)
    counts = np.minimum(rng.poisson(rate), 20)
    persons = np.repeat(np.arange(start + 1, start + n + 1, dtype=np.int64), counts)
    m = len(persons)
    dept = rng.choice(len(DEPARTMENTS), size=m, p=[0.30, 0.12, 0.10, 0.08, 0.07, 0.08, 0.10, 0.15])
    days = rng.integers(0, VISIT_DAYS, size=m)
    cost = np.round(np.minimum(np.exp(rng.normal(5.3, 0.9, size=m)), 20_000), 2)
    return pa.table(
        {
            "person_id": pa.array(persons),
            "visit_date": pa.array(
                (np.datetime64(VISIT_START.isoformat()) + days.astype("timedelta64[D]")).astype("datetime64[D]")
            ),
            "department": pc.take(pa.array(DEPARTMENTS), pa.array(dept)),
            "cost": pa.array(cost),
        }
    )


def _chunks(rows: int) -> Iterator[tuple[int, int]]:
    for start in range(0, rows, CHUNK):
        yield start, min(CHUNK, rows - start)


def write_demo_files(rows: int, residents_path: Path, visits_path: Path, progress: Progress | None = None) -> tuple[int, int]:
    """Write both Parquet files chunk by chunk; returns (resident rows, visit rows)."""
    visit_rows = 0
    res_writer = vis_writer = None
    try:
        for index, (start, n) in enumerate(_chunks(rows)):
            rng = np.random.default_rng([SEED, index])
            residents = residents_chunk(start, n, rng)
            visits = visits_chunk(start, n, residents.column("age").to_numpy(), rng)
            if res_writer is None:
                res_writer = pq.ParquetWriter(residents_path, residents.schema, compression="zstd")
                vis_writer = pq.ParquetWriter(visits_path, visits.schema, compression="zstd")
            res_writer.write_table(residents, row_group_size=CHUNK)
            vis_writer.write_table(visits, row_group_size=CHUNK)
            visit_rows += visits.num_rows
            if progress:
                progress(n)
    finally:
        if res_writer is not None:
            res_writer.close()
        if vis_writer is not None:
            vis_writer.close()
    return rows, visit_rows
