"""The security risk assessment run when a dataset is registered (第十二条).

Pure functions over an Arrow table and its policy; no I/O. Two questions:

1. **Does any column hold direct identifiers?** Values that look like 18-digit resident
   ID numbers (GB 11643-1999: area code, birth date, sequence, and an ISO 7064 MOD 11-2
   check digit that must be right), mainland mobile numbers (``1[3-9]`` + 9 digits) or
   Chinese personal names (a common surname followed by one or two Han characters); and, for
   the enterprise data most bureaus hold (issue 13), 统一社会信用代码 (GB 32100-2015 check
   character), 组织机构代码 (GB 11714-1997 check character), company names (a legal form such
   as 有限公司 or 专业合作社; shop-like suffixes only in a column full of them), legal
   representatives (a header such as 法定代表人 over personal names, or 法定代表人张三 in
   text), bank card numbers (16–19 digits, Luhn), licence plates (GA 36-2018, new-energy
   included), detailed addresses (a road and a house number, or an estate and a building),
   e-mail and IPv4/IPv6 addresses. Text and integer columns are scanned, whole values and
   values embedded in free text alike. A column already declared ``identifier`` is reported
   as ``declared`` (the guard never lets it into a query); anywhere else it is a ``high``
   finding. Check-digit kinds are reported when more of a column's same-shaped values validate
   than chance explains (:func:`beyond_chance`), so serials and amounts that pass a check by
   chance do not, while real codes mixed with other numbers still do. Values are normalised
   before matching (:func:`normalise`: NFKC full-width → half-width, spaces and hyphens inside
   digit runs and between digits and Han characters removed, upper case), integral float
   columns are scanned as integers, first-generation 15-digit ID numbers count when they fill
   a column, a resident ID number split over two or three adjacent columns is found, and
   names are also found with a title (张伟先生), after a role in text (户主张伟), with a
   surname beyond the top 100 (``SURNAMES_MORE``) or in pinyin (ZHANG WEI).
2. **How unique are people on their quasi-identifiers?** Over the policy's
   ``quasi_identifier`` columns: the smallest number of persons sharing one combination (the
   dataset's *k* in k-anonymity, Sweeney 2002), the number and share of persons who are
   alone in their combination, and how many fall below ``K_MIN``.

The report is stored with the dataset version; the owner must acknowledge it before the
version is published (``sandbox.governance.open_catalog.acknowledge_risk``). Examples in the report are
masked: the report itself must not become a copy of the identifiers.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

REPORT_FORMAT: Final = "data-sandbox/risk-report/v1"
#: Values per column scanned for identifier patterns at registration (evenly spaced rows,
#: deterministic); ``sample_rows=None`` scans every value (what the unconditional derivative does).
SAMPLE_ROWS: Final = 200_000
#: The k-anonymity level below which a combination of quasi-identifiers is a finding
#: (the common threshold of k = 5, e.g. El Emam & Dankar, JAMIA 2008).
K_MIN: Final = 5
#: Share of scanned values that must look like names before a column is called a name column,
#: and how many distinct such values it needs (a category like 高中 is not a name column).
NAME_SHARE: Final = 0.5
NAME_DISTINCT: Final = 10

ID_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK: Final = "10X98765432"
_ID_BODY = r"[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx]"
_MOBILE_BODY = r"1[3-9]\d{9}"
ID_PATTERN: Final = r"(?:^|[^0-9])(?P<v>" + _ID_BODY + r")(?:[^0-9]|$)"
# GB 11643-1989 first-generation numbers: 15 digits (area, YYMMDD, sequence), no check digit;
# counted only when they fill a column (``ID15_SHARE``), as whole values.
_ID15_BODY = r"[1-9]\d{5}\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}"
ID15_PATTERN: Final = r"^\s*(?P<v>" + _ID15_BODY + r")\s*$"
ID15_SHARE: Final = 0.5
MOBILE_PATTERN: Final = r"(?:^|[^0-9])(?:\+?86[- ]?)?(?P<v>" + _MOBILE_BODY + r")(?:[^0-9]|$)"
# The 100 most common surnames (公安部 2020 户籍统计) and common compound surnames.
SURNAMES: Final = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林高罗郑梁谢宋唐许韩冯邓曹彭曾肖田董潘袁蔡蒋余于杜叶程魏"
    "苏吕丁任卢姚沈钟姜崔谭陆范汪廖石金韦贾夏付方邹熊白孟秦邱侯江尹薛闫段雷龙黎史陶贺毛郝顾龚邵"
    "万覃武钱戴严莫孔向常汤"
)
# Common surnames outside the top 100, among them those frequent in Shandong (逄 鞠 隋 栾 宫 …).
SURNAMES_MORE: Final = "逄鞠隋栾宫庞翟甄蔺仇邴鹿隽郇綦亓单牟毕娄柏邢葛谷车祁乔岳温柳殷聂尚辛康伍施童牛樊兰喻关纪左焦鲍房滕井臧颜霍凌安"
COMPOUND_SURNAMES: Final = ("欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容",
                            "长孙", "宇文", "司徒", "夏侯", "令狐", "轩辕", "西门", "南宫")
#: Titles written after a name (张伟先生, 王芳女士).
NAME_TITLES: Final = "先生|女士|小姐|同志|老师|师傅|医生|大夫|经理"
NAME_PATTERN: Final = (
    "^(?:" + "|".join(COMPOUND_SURNAMES) + "|[" + SURNAMES + SURNAMES_MORE + r"])\p{Han}{1,2}?(?:"
    + NAME_TITLES + ")?$"
)
# Names in pinyin (ZHANG WEI, as exported by foreign-language systems; values are upper-cased
# before matching): a common surname, a space, one or two syllables.
PINYIN_SURNAMES: Final = (
    "ZHANG|WANG|LI|LIU|CHEN|YANG|HUANG|ZHAO|WU|ZHOU|XU|SUN|MA|ZHU|HU|GUO|HE|LIN|GAO|LUO|ZHENG|LIANG|XIE|"
    "SONG|TANG|HAN|FENG|DENG|CAO|PENG|ZENG|XIAO|TIAN|DONG|PAN|YUAN|CAI|JIANG|YU|DU|YE|CHENG|WEI|SU|LV|LU|"
    "DING|REN|YAO|SHEN|ZHONG|CUI|TAN|FAN|LIAO|SHI|JIN|JIA|XIA|FU|FANG|ZOU|XIONG|BAI|MENG|QIN|QIU|HOU|YIN|"
    "XUE|YAN|DUAN|LEI|LONG|TAO|MAO|HAO|GU|GONG|SHAO|WAN|QIAN|DAI|KONG|CHANG|JU|SUI|LUAN|PANG"
)
_SYLLABLE = (r"(?:ZH|CH|SH|[BPMFDTNLGKHJQXRZCSYW])?(?:IANG|IONG|UANG|ANG|ENG|ING|ONG|IAN|IAO|UAI|UAN|AI|EI|AO|"
             r"OU|AN|EN|IN|UN|IA|IE|IU|UA|UO|UI|UE|ER|A|O|E|I|U|V)")
PINYIN_NAME_PATTERN: Final = rf"^(?:{PINYIN_SURNAMES}) {_SYLLABLE}(?:[ -]?{_SYLLABLE})?$"
#: Values that say "nobody" (a column of agents mostly 无 is still a column of names).
PLACEHOLDERS: Final = frozenset({"", "无", "空", "暂无", "不详", "未知", "-", "/", "N/A", "NA", "NULL", "NONE"})


# -- enterprise and other identifiers (issue 13) --------------------------------------------------
#: GB 32100-2015 统一社会信用代码: 31 code characters (no I O S V Z) and the weights of §4.3.
CREDIT_CHARS: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CREDIT_WEIGHTS: Final = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
#: GB 11714-1997 组织机构代码: weights of the eight body characters.
ORG_WEIGHTS: Final = (3, 7, 9, 10, 5, 8, 4, 2)
#: Share of a column's candidates (right shape) whose check digit must validate before the
#: column is reported: a check passes by chance for 1 in 10 (Luhn), 11 or 31 random values, so
#: a column of order numbers or amounts stays below it while a column of real codes is near 100 %.
CHECKSUM_SHARE: Final = 0.5
_C = "0-9A-HJ-NPQRTUWXY"
_CREDIT_BODY = rf"[1-9ANY][{_C}]\d{{6}}[{_C}]{{10}}"
CREDIT_CODE_PATTERN: Final = rf"(?:^|[^0-9A-Za-z])(?P<v>{_CREDIT_BODY})(?:[^0-9A-Za-z]|$)"
# Whole values may omit the hyphen; inside text only the printed form XXXXXXXX-X counts (a bare
# 9-digit number in a note is far more often an amount or a serial).
ORG_CODE_PATTERN: Final = (r"^\s*(?P<v>[0-9A-Z]{8}-?[0-9X])\s*$"
                           r"|(?:^|[^0-9A-Za-z-])(?P<w>[0-9A-Z]{8}-[0-9X])(?:[^0-9A-Za-z-]|$)")
# 16–19 digits, optionally grouped by 4 with spaces or hyphens; issuer digits 3–6 or 9 (UnionPay 62,
# Visa 4, Mastercard 5, JCB 35, domestic 9).
BANK_CARD_PATTERN: Final = r"(?:^|[^0-9A-Za-z])(?P<v>[3-69]\d{3}(?:[ -]?\d{4}){3}(?:[ -]?\d{1,3})?)(?:[^0-9A-Za-z]|$)"
#: Licence-plate province abbreviations (GA 36-2018).
PROVINCES: Final = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_PL = "A-HJ-NP-Z"
PLATE_PATTERN: Final = (  # new-energy (8 characters, D/F) first, then ordinary and 挂/学/警/港/澳
    rf"(?P<v>[{PROVINCES}][{_PL}][·•\s]?(?:[DF][{_PL}0-9]\d{{4}}|\d{{5}}[DF]|[{_PL}0-9]{{4}}[{_PL}0-9挂学警港澳]))"
    r"(?:[^A-Za-z0-9]|$)"
)
EMAIL_PATTERN: Final = (r"(?:^|[^A-Za-z0-9._%+\-])(?P<v>[A-Za-z0-9][A-Za-z0-9._%+\-]*@[A-Za-z0-9\-]+"
                        r"(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24})(?:[^A-Za-z0-9]|$)")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
IPV4_PATTERN: Final = rf"(?:^|[^0-9.])(?P<v>{_OCTET}(?:\.{_OCTET}){{3}})(?:[^0-9.]|$)"
_H = "[0-9A-Fa-f]{1,4}"
IPV6_PATTERN: Final = (rf"(?:^|[^0-9A-Za-z:])(?P<v>(?:{_H}:){{7}}{_H}|(?:{_H}:){{1,6}}:(?:{_H}:){{0,5}}{_H})"
                       r"(?:[^0-9A-Za-z:]|$)")
_NUM = "[0-9０-９一二三四五六七八九十百零〇]+"
# A detailed address: a road and a house number (路/街/巷 … N号), optionally building, unit, room;
# or an estate with a building number; or a building with a unit or room. A district or street
# name alone is not detailed.
ADDRESS_PATTERN: Final = (
    rf"(?P<v>\p{{Han}}*?(?:路|街|大街|大道|巷|胡同|弄|村|组|屯|庄){_NUM}号(?:院|楼)?"
    rf"(?:[0-9０-９A-Za-z\-]+(?:号楼|栋|幢|座|单元|层|楼|室|户))*"
    rf"|\p{{Han}}*?(?:小区|花园|家园|公寓|大厦|新村|苑){_NUM}(?:号楼|栋|幢|座)(?:[0-9０-９\-]+(?:单元|层|楼|室|户|号))*"
    # a building with a unit or room, whatever names the estate (和平社区1号楼1单元101室): one household
    rf"|\p{{Han}}*?{_NUM}(?:号楼|栋|幢|座){_NUM}(?:单元|室|户)(?:[0-9０-９\-]+(?:层|楼|室|户|号))*)"
)
_LEGAL_FORM = "(?:股份有限公司|有限责任公司|有限公司|专业合作社|股份合作社|经济合作社|集团公司)"
#: A company name anywhere: a name part and a legal form that only companies carry.
COMPANY_PATTERN: Final = rf"(?P<v>[\p{{Han}}A-Za-z0-9·]{{2,40}}?{_LEGAL_FORM}(?:[（(]\p{{Han}}{{1,12}}[）)])?)"
#: A whole value ending in a weaker suffix (厂, 店, 集团 …): a name only if the column is full of them.
COMPANY_WHOLE_PATTERN: Final = (r"^\s*[\p{Han}A-Za-z0-9·（）()]{2,40}?(?:公司|集团|合作社|个体工商户|厂|店|商行|经营部|门市部"
                                r"|事务所|工作室|超市)(?:[（(][^）)]{1,20}[）)])?\s*$")
# An enterprise *type* (企业类型), not a name: 有限责任公司, 股份有限公司, 类型为有限公司 ...
COMPANY_TYPE_PATTERN: Final = (rf"(?:^|为|是|属|型|：|:|、|或|和|及)(?:一人|国有独资|自然人独资|自然人投资或控股|法人独资|外商独资"
                               rf"|中外合资|中外合作|私营|集体|农民|股份|有限|责任)*{_LEGAL_FORM}(?:[（(][^）)]*[）)])?$")
_PERSON = "(?:" + "|".join(COMPOUND_SURNAMES) + "|[" + SURNAMES + SURNAMES_MORE + r"])\p{Han}{1,2}"
LEGAL_REP_PATTERN: Final = rf"(?:法定代表人|法人代表|法人|负责人|经营者)(?:姓名)?[\s:：为是]*(?P<v>{_PERSON})"
#: A person named inside text by their role (户主张伟，已核实; 联系人：王芳).
EMBEDDED_NAME_PATTERN: Final = (rf"(?:户主|联系人|申请人|代理人|委托人|监护人|姓名|患者|经办人|担保人|收件人)"
                                rf"[\s:：为是]*(?P<v>{_PERSON})")
#: Column headers that say the column holds legal representatives (or operators) of enterprises.
LEGAL_REP_HEADER: Final = re.compile(r"法定代表人|法人代表|^法人$|法人姓名|负责人|经营者|legal.?(?:rep|person)|representative",
                                     re.IGNORECASE)
# One cheap pass decides whether a column needs the enterprise/contact detectors at all:
# a superset of what any of them can match.
TRIGGER_PATTERN: Final = "|".join((
    r"[0-9A-Z]{8}", r"\d{4}[ -]\d{4}[ -]\d{4}", "@", r"\d\.\d{1,3}\.\d", r"[0-9A-Fa-f]:[0-9A-Fa-f]{0,4}:",
    rf"[{PROVINCES}][{_PL}]", rf"(?:路|街|巷|弄|胡同|大道|村|组|屯|庄){_NUM}号", rf"{_NUM}(?:号楼|栋|幢|座)",
    "户主|联系人|申请人|代理人|委托人|监护人|姓名|患者|经办人|担保人|收件人",
    "公司|合作社|集团|工商户|法定代表人|法人|负责人|经营者",
    r"(?:厂|店|商行|经营部|门市部|事务所|工作室|超市)(?:[（(][^）)]{1,20}[）)])?\s*$",
))
#: How each kind reads in the report's problems (and in the console).
KIND_LABELS: Final = {
    "resident_id": "resident ID numbers", "mobile": "mobile numbers", "chinese_name": "personal names",
    "credit_code": "unified social credit codes (统一社会信用代码)",
    "organization_code": "organization codes (组织机构代码)", "company_name": "company names",
    "legal_representative": "legal representatives' names", "bank_card": "bank card numbers",
    "licence_plate": "licence plates", "address": "detailed addresses", "email": "e-mail addresses",
    "ip_address": "IP addresses",
}


def resident_id_valid(value: str) -> bool:
    """Whether an 18-character resident ID number has the right ISO 7064 MOD 11-2 check digit.

    >>> resident_id_valid("11010519491231002X")   # GB 11643-1999's own example
    True
    >>> resident_id_valid("110105194912310021")
    False
    """
    if len(value) != 18 or not value[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(value[:17], ID_WEIGHTS, strict=True))
    return ID_CHECK[total % 11] == value[17].upper()


def _valid_ids(values: list[str]) -> np.ndarray:
    """Vectorised :func:`resident_id_valid` for values already matching ``_ID_BODY``."""
    if not values:
        return np.zeros(0, dtype=bool)
    raw = np.array([v.upper() for v in values], dtype="S18").view(np.uint8).reshape(-1, 18)
    digits = raw[:, :17].astype(np.int64) - ord("0")
    check = np.frombuffer(ID_CHECK.encode(), dtype=np.uint8)[(digits * np.array(ID_WEIGHTS)).sum(axis=1) % 11]
    return check == raw[:, 17]


def credit_code_valid(value: str) -> bool:
    """Whether an 18-character 统一社会信用代码 has the right check character (GB 32100-2015 §4.3).

    C18 = 31 − (Σ Ci·Wi mod 31), over the 31 code characters 0–9 A–Y without I O S V Z.

    >>> credit_code_valid("91350100M000100Y43")   # the example printed in GB 32100-2015
    True
    >>> credit_code_valid("91350100M000100Y44")
    False
    """
    if len(value) != 18 or any(c not in CREDIT_CHARS for c in value.upper()):
        return False
    value = value.upper()
    total = sum(CREDIT_CHARS.index(c) * w for c, w in zip(value[:17], CREDIT_WEIGHTS, strict=True))
    return CREDIT_CHARS[(31 - total % 31) % 31] == value[17]


def organization_code_valid(value: str) -> bool:
    """Whether a 9-character 组织机构代码 (``XXXXXXXX-X`` or without the hyphen) checks (GB 11714-1997).

    C9 = 11 − (Σ Ci·Wi mod 11), 10 written ``X`` and 11 written ``0``; letters count A = 10 … Z = 35.

    >>> organization_code_valid("M000100Y-4")
    True
    >>> organization_code_valid("600037341")
    True
    >>> organization_code_valid("600037342")
    False
    """
    value = value.replace("-", "").upper()
    if len(value) != 9 or not value[:8].isalnum() or not value.isascii():
        return False
    total = sum(int(c, 36) * w for c, w in zip(value[:8], ORG_WEIGHTS, strict=True))
    return "0123456789X0"[11 - total % 11] == value[8]


def luhn_valid(value: str) -> bool:
    """Whether a card number passes the Luhn check (ISO/IEC 7812-1 Annex B).

    >>> luhn_valid("6222021234567890128")
    True
    >>> luhn_valid("6222021234567890127")
    False
    """
    digits = [int(c) for c in value if c.isdigit()]
    if len(digits) != len(value.replace(" ", "").replace("-", "")):
        return False
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(digits)))
    return total % 10 == 0


def _char_matrix(values: pa.Array, width: int) -> np.ndarray:
    """ASCII strings of one length → an (n, width) uint8 matrix, read from Arrow's buffers."""
    values = pc.cast(values, pa.string())
    if len(values) == 0:
        return np.zeros((0, width), dtype=np.uint8)
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)[values.offset: values.offset + len(values) + 1]
    if values.null_count or (np.diff(offsets) != width).any():  # not expected from our patterns; be safe
        return np.array([(v or "").encode()[:width].ljust(width, b"\0") for v in values.to_pylist()],
                        dtype=f"S{width}").view(np.uint8).reshape(-1, width)
    data = np.frombuffer(values.buffers()[2], dtype=np.uint8)
    return data[offsets[0]: offsets[0] + len(values) * width].reshape(-1, width)


def _code_values(chars: str) -> np.ndarray:
    table = np.full(256, -1, dtype=np.int64)
    for i, c in enumerate(chars):
        table[ord(c)] = i
    return table


_CREDIT_TABLE = _code_values("0123456789ABCDEFGHJKLMNPQRTUWXY")
_BASE36_TABLE = _code_values("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _valid_credit_codes(values: pa.Array) -> np.ndarray:
    """Vectorised :func:`credit_code_valid` for upper-case values matching ``_CREDIT_BODY``."""
    m = _CREDIT_TABLE[_char_matrix(values, 18)]
    if m.size == 0:
        return np.zeros(0, dtype=bool)
    check = (31 - (m[:, :17] * np.array(CREDIT_WEIGHTS)).sum(axis=1) % 31) % 31
    return np.asarray((m.min(axis=1) >= 0) & (check == m[:, 17]), dtype=bool)


def _valid_org_codes(values: pa.Array) -> np.ndarray:
    """Vectorised :func:`organization_code_valid` for 9 upper-case characters (hyphen removed)."""
    raw = _char_matrix(values, 9)
    m = _BASE36_TABLE[raw]
    if m.size == 0:
        return np.zeros(0, dtype=bool)
    expected = np.frombuffer(b"0123456789X0", dtype=np.uint8)[11 - (m[:, :8] * np.array(ORG_WEIGHTS)).sum(axis=1) % 11]
    return np.asarray((m[:, :8].min(axis=1) >= 0) & (expected == raw[:, 8]), dtype=bool)


def _luhn(values: pa.Array) -> np.ndarray:
    """Vectorised :func:`luhn_valid` for 16–19 digit strings (left-padded with zeros to 19)."""
    digits = _char_matrix(pc.utf8_lpad(values, 19, "0"), 19).astype(np.int64) - ord("0")
    doubled = digits[:, -2::-2] * 2
    total = digits[:, ::-2].sum(axis=1) + (doubled - 9 * (doubled > 9)).sum(axis=1)
    return np.asarray(total % 10 == 0, dtype=bool)

def mask(value: str) -> str:
    """Keep the first and last characters, hide the rest (examples in a report).

    >>> mask("13812345678")
    '1*********8'
    >>> mask("王伟")
    '王*'
    """
    if len(value) <= 2:
        return value[:1] + "*" * (len(value) - 1)
    return value[0] + "*" * (len(value) - 2) + value[-1]


@dataclass(frozen=True)
class Finding:
    column: str
    kind: str  # a key of KIND_LABELS
    matches: int
    scanned: int
    embedded: bool  # found inside longer text rather than as whole values
    declared: str  # the column's declared sensitivity
    example: str

    @property
    def severity(self) -> str:
        return "declared" if self.declared == "identifier" else "high"

    @property
    def share(self) -> float:
        return self.matches / self.scanned if self.scanned else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "column": self.column, "kind": self.kind, "matches": self.matches, "scanned": self.scanned,
            "share": round(self.share, 6), "embedded": self.embedded, "declared": self.declared,
            "severity": self.severity, "example": self.example,
        }


def _sample(column: pa.ChunkedArray | pa.Array, cap: int | None) -> pa.Array:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    arr = arr.drop_null()
    if cap is not None and len(arr) > cap:
        arr = arr.take(pa.array(np.linspace(0, len(arr) - 1, cap).astype(np.int64)))
    return arr


def _as_text(arr: pa.Array) -> pa.Array | None:
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return arr
    if pa.types.is_integer(arr.type):
        return pc.cast(arr, pa.string())
    if pa.types.is_floating(arr.type) and len(arr):
        # phone or ID numbers typed as numbers: scan the integral values as integers
        finite = arr.filter(pc.and_(pc.is_finite(arr), pc.less(pc.abs(arr), 2.0 ** 63)))
        integral = finite.filter(pc.equal(pc.floor(finite), finite))
        return pc.cast(pc.cast(integral, pa.int64()), pa.string()) if len(integral) else None
    return None


def normalise(value: str) -> str:
    """A value as the scanner reads it: NFKC (full-width → half-width), spaces and hyphens inside
    digit runs and between digits and Han characters removed, upper case.

    >>> normalise("３７０１０２ 19900307-123x"), normalise("经十路 17 号"), normalise("zhang＠example.com")
    ('37010219900307123X', '经十路17号', 'ZHANG@EXAMPLE.COM')
    """
    return _normalise(pa.array([value], pa.string()))[0].as_py()


#: A run of this many digits in a column name is an ID number, phone or card, not a label.
HEADER_DIGITS: Final = 11


def identifiers_in_headers(names: Iterable[str]) -> list[str]:
    """Column names that carry what looks like a personal identifier, masked: a run of
    :data:`HEADER_DIGITS` or more digits (after :func:`normalise`: spaces, dashes and
    full-width digits do not hide one) or an e-mail address. Column names are public
    metadata (the catalog, the recipe), so such a name is refused at registration.

    >>> identifiers_in_headers(["district", "2023年1月至2024年12月", "王秀英370102199003071234复核",
    ...                          "联系 138 1234 5678", "x@example.com"])
    ['王秀英******************复核', '联系 *** **** ****', '*@*']
    """
    out = []
    for name in names:
        text = normalise(str(name)) or ""
        if re.search(rf"\d{{{HEADER_DIGITS},}}", text) or re.search(EMAIL_PATTERN, text):
            # masked for the error message: every digit, and an address's parts
            shown = re.sub(r"[０-９\d]", "*", str(name))
            out.append(re.sub(r"[^\s@]+@[^\s@]+", "*@*", shown))
    return out


def normalise_array(text: pa.Array) -> pa.Array:
    """:func:`normalise` over an Arrow string array."""
    return _normalise(text)


def _normalise(text: pa.Array) -> pa.Array:
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    if len(text) > 1000 and pc.count_distinct(text.slice(0, 1000)).as_py() < 500:
        # PERF: normalise each distinct value once (a column of districts or 无 has a handful)
        enc = pc.dictionary_encode(text)
        return pc.take(_normalise_values(enc.dictionary), enc.indices)
    return _normalise_values(text)


def _normalise_values(text: pa.Array) -> pa.Array:
    ascii_only = pc.all(pc.string_is_ascii(text)).as_py() is not False
    if not ascii_only:
        text = pc.utf8_normalize(text, "NFKC")
    digit_run = r"(\d)[\s\-\x{2010}-\x{2015}\x{2212}]+(\d)"
    if pc.any(pc.match_substring_regex(text, digit_run)).as_py():
        for _ in range(2):  # twice: "1 2 3" overlaps
            text = pc.replace_substring_regex(text, digit_run, r"\1\2")
    if not ascii_only:  # PERF: only non-ASCII text can hold Han characters
        text = pc.replace_substring_regex(text, r"(\p{Han})\s+(\d)", r"\1\2")
        text = pc.replace_substring_regex(text, r"(\d)\s+(\p{Han})", r"\1\2")
    return pc.ascii_upper(text) if ascii_only else pc.utf8_upper(text)


def _extract(text: pa.Array, pattern: str, fields: tuple[str, ...] = ("v",)) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """Row-aligned: which rows match, whether the match is the whole value, the matched value (or null)."""
    found = pc.extract_regex(text, pattern)
    values = pc.struct_field(found, fields[0])
    for extra in fields[1:]:
        # a group outside the matching alternative comes back as "", not null
        values = pc.if_else(pc.greater(pc.utf8_length(values), 0), values, pc.struct_field(found, extra))
    hit = pc.fill_null(pc.is_valid(values), False).to_numpy(zero_copy_only=False)
    whole = pc.fill_null(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(text)), pc.utf8_length(values)), False)
    return np.asarray(hit, dtype=bool), np.asarray(whole.to_numpy(zero_copy_only=False), dtype=bool), values


def _scatter(hit: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Row mask of the hits whose (compacted) check result is True."""
    out = np.zeros(len(hit), dtype=bool)
    out[np.flatnonzero(hit)] = valid
    return out


def _first(values: pa.Array, rows: np.ndarray) -> str:
    return mask(str(values[int(np.flatnonzero(rows)[0])].as_py()).strip())


def beyond_chance(valid: int, candidates: int, chance: float) -> bool:
    """Whether ``valid`` of ``candidates`` same-shaped values passing a check digit is more than
    chance explains (a check passes by chance with probability ``chance``): at least
    ``CHECKSUM_SHARE`` of them, or at least 3 and four standard deviations above the binomial
    mean — so 20 real bank cards among 40 account numbers of the same shape are found, while
    1,000 serials (about 100 Luhn-valid by chance) are not.

    >>> beyond_chance(20, 60, 0.1), beyond_chance(100, 1000, 0.1), beyond_chance(1, 1, 0.1)
    (True, False, True)
    """
    if valid == 0:
        return False
    if valid >= CHECKSUM_SHARE * candidates:
        return True
    mean = chance * candidates
    return valid >= 3 and valid >= mean + 4 * math.sqrt(mean * (1 - chance)) + 3


def _checked(text: pa.Array, pattern: str, check: Any, fields: tuple[str, ...] = ("v",),
             clean: str = "", chance: float = 0.1) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """Rows whose match has a valid check digit, if more validate than chance explains."""
    hit, whole, values = _extract(text, pattern, fields)
    candidates = values.filter(pa.array(hit))
    if clean:
        candidates = pc.replace_substring_regex(candidates, clean, "")
    good = _scatter(hit, check(pc.utf8_upper(candidates)) if len(candidates) else np.zeros(0, dtype=bool))
    if not beyond_chance(int(good.sum()), int(hit.sum()), chance):
        good[:] = False  # no more valid checks than chance: serials or amounts of the same shape, not codes
    return good, whole, values


def _resident_ids(values: pa.Array) -> np.ndarray:
    """Which values are whole, valid resident ID numbers (so they are not also cards or credit codes)."""
    shaped = np.asarray(pc.match_substring_regex(values, "^" + _ID_BODY + "$").to_numpy(zero_copy_only=False),
                        dtype=bool)
    raw = _char_matrix(pc.utf8_upper(values.filter(pa.array(shaped))), 18)
    digits = raw[:, :17].astype(np.int64) - ord("0")
    check = np.frombuffer(ID_CHECK.encode(), dtype=np.uint8)[(digits * np.array(ID_WEIGHTS)).sum(axis=1) % 11]
    return _scatter(shaped, check == raw[:, 17])


def _credit_codes(values: pa.Array) -> np.ndarray:
    return _valid_credit_codes(values) & ~_resident_ids(values)


def _bank_cards(values: pa.Array) -> np.ndarray:
    """Luhn-valid, and not an 18-digit resident ID or credit code that happens to pass Luhn too."""
    ok = _luhn(values)
    eighteen = np.asarray(pc.equal(pc.utf8_length(values), 18).to_numpy(zero_copy_only=False), dtype=bool)
    if eighteen.any():
        codes = values.filter(pa.array(eighteen))
        ok[eighteen] &= ~(_resident_ids(codes) | _valid_credit_codes(codes))
    return ok


def _digit_findings(text: pa.Array) -> dict[str, tuple[np.ndarray, np.ndarray, pa.Array]]:
    return {
        "credit_code": _checked(text, CREDIT_CODE_PATTERN, _credit_codes, chance=1 / 31),
        "organization_code": _checked(text, ORG_CODE_PATTERN, _valid_org_codes, ("v", "w"), clean="-",
                                      chance=1 / 11),
        "bank_card": _checked(text, BANK_CARD_PATTERN, _bank_cards, clean="[ -]", chance=1 / 10),
    }


def _valid_ips(values: pa.Array) -> np.ndarray:
    """IPv6 candidates that parse (checked once per distinct value) and are not loopback/unspecified."""
    distinct = pc.unique(values).to_pylist()
    ok = []
    for v in distinct:
        try:
            ok.append(not ipaddress.ip_address(v).is_loopback and not ipaddress.ip_address(v).is_unspecified)
        except ValueError:
            ok.append(False)
    return np.asarray(pc.is_in(values, pa.array([v for v, good in zip(distinct, ok, strict=True) if good],
                                               pa.string())).to_numpy(zero_copy_only=False), dtype=bool)


def _text_findings(text: pa.Array, scanned: int) -> dict[str, tuple[np.ndarray, np.ndarray, pa.Array]]:
    out = {}
    for kind, pattern in (("licence_plate", PLATE_PATTERN), ("email", EMAIL_PATTERN), ("address", ADDRESS_PATTERN)):
        out[kind] = _extract(text, pattern)
    v4, whole4, values4 = _extract(text, IPV4_PATTERN)
    v6, whole6, values6 = _extract(text, IPV6_PATTERN)
    v6 = _scatter(v6, _valid_ips(values6.filter(pa.array(v6)))) if v6.any() else v6
    out["ip_address"] = (v4 | v6, np.where(v4, whole4, whole6), pc.coalesce(values4, values6))
    hit, whole, values = _extract(text, COMPANY_PATTERN)
    if hit.any():  # an enterprise type (有限责任公司, 类型为股份有限公司) is not a name
        hit &= ~np.asarray(pc.fill_null(pc.match_substring_regex(values, COMPANY_TYPE_PATTERN), False)
                           .to_numpy(zero_copy_only=False), dtype=bool)
    weak = np.asarray(pc.match_substring_regex(text, COMPANY_WHOLE_PATTERN).to_numpy(zero_copy_only=False), dtype=bool)
    if weak.sum() >= NAME_SHARE * scanned and pc.count_distinct(text.filter(pa.array(weak))).as_py() >= NAME_DISTINCT:
        values = pc.if_else(pa.array(hit), values, pc.utf8_trim_whitespace(text))
        whole = np.where(hit, whole, weak)
        hit = hit | weak
    out["company_name"] = (hit, whole, values)
    out["legal_representative"] = _extract(text, LEGAL_REP_PATTERN)
    hit, whole, values = _extract(text, EMBEDDED_NAME_PATTERN)
    out["chinese_name"] = (hit, whole & False, values)
    return out


def scan_column(name: str, column: pa.ChunkedArray | pa.Array, declared: str,
                sample_rows: int | None = SAMPLE_ROWS) -> list[Finding]:
    """Identifier-like values in one column (empty list: nothing found); ``sample_rows=None``
    scans every value."""
    raw = _sample(column, sample_rows)
    is_text = pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type) or (
        pa.types.is_dictionary(raw.type) and pa.types.is_string(raw.type.value_type))
    text = _as_text(raw)
    if text is None or len(text) == 0:
        return []
    text = _normalise(text) if is_text else text
    scanned = len(text)
    findings = []
    id_hit, id_whole, id_values = _extract(text, ID_PATTERN)
    ids = _scatter(id_hit, _valid_ids(id_values.filter(pa.array(id_hit)).to_pylist()))
    id15, id15_whole, id15_values = _extract(text, ID15_PATTERN)
    if id15.sum() >= ID15_SHARE * scanned and not ids.any():
        ids, id_whole, id_values = id15, id15_whole, id15_values
    if ids.any():
        findings.append(Finding(name, "resident_id", int(ids.sum()), scanned, bool((ids & ~id_whole).any()),
                                declared, _first(id_values, ids)))
    phones, phone_whole, phone_values = _extract(text, MOBILE_PATTERN)
    if phones.any():
        findings.append(Finding(name, "mobile", int(phones.sum()), scanned, bool((phones & ~phone_whole).any()),
                                declared, _first(phone_values, phones)))
    hinted = bool(LEGAL_REP_HEADER.search(name))
    if is_text:
        trimmed = pc.utf8_trim_whitespace(text)
        is_name = pc.or_(pc.match_substring_regex(trimmed, NAME_PATTERN),
                         pc.match_substring_regex(trimmed, PINYIN_NAME_PATTERN))
        names = text.filter(is_name)
        distinct = pc.count_distinct(names).as_py() if len(names) else 0
        # shares over the values that name anybody (a column of agents, mostly 无, is a name column);
        # a small column of distinct names is a name column too (9 sole traders of one village)
        meaningful = scanned - int(pc.sum(pc.is_in(trimmed, pa.array(sorted(PLACEHOLDERS)))).as_py() or 0)
        if len(names) >= NAME_SHARE * max(meaningful, 1) and (
                distinct >= NAME_DISTINCT or hinted and distinct or distinct >= 2 and distinct == len(names)):
            findings.append(Finding(name, "legal_representative" if hinted else "chinese_name", len(names),
                                    scanned, False, declared, mask(str(names[0].as_py()).strip())))
    # PERF: a value that is wholly a resident ID or a mobile number holds nothing else to look for.
    findings += _enterprise_findings(name, text, declared, scanned, is_text,
                                     (ids & id_whole) | (phones & phone_whole), findings)
    return findings


def _enterprise_findings(name: str, text: pa.Array, declared: str, scanned: int,
                         is_text: bool, done: np.ndarray, already: list[Finding]) -> list[Finding]:
    """Enterprise, card, plate, address, e-mail and IP findings; only rows passing one cheap trigger."""
    trigger = np.asarray(pc.fill_null(pc.match_substring_regex(text, TRIGGER_PATTERN), False)
                         .to_numpy(zero_copy_only=False), dtype=bool) & ~done
    if not trigger.any():
        return []
    rows = pa.array(trigger)
    candidates = text.filter(rows)
    results = _digit_findings(candidates)
    if is_text and not pc.all(pc.ascii_is_alnum(candidates)).as_py():
        results.update(_text_findings(candidates, scanned))
    findings = []
    for kind, (hit, whole, values) in results.items():
        if kind == "chinese_name" and any(f.kind == "chinese_name" for f in already):
            continue
        if hit.any():
            findings.append(Finding(name, kind, int(hit.sum()), scanned, bool((hit & ~whole).any()), declared,
                                    _first(values, hit)))
    return findings


def uniqueness(table: pa.Table, quasi_identifiers: Iterable[str], unit: str) -> dict[str, Any]:
    """k-anonymity over persons: how many persons share each quasi-identifier combination.

    A person with several rows (visits) counts once per combination they appear in.
    """
    qis = list(quasi_identifiers)
    if not qis:
        return {"columns": [], "k_min": K_MIN, "note": "no quasi_identifier columns are declared"}
    per_person = table.select([*qis, unit]).group_by([*qis, unit]).aggregate([])
    classes = per_person.group_by(qis).aggregate([([], "count_all")])
    sizes = classes.column("count_all").to_numpy()
    persons = int(pc.count_distinct(table.column(unit)).as_py())
    unique = int((sizes == 1).sum())
    below = int(sizes[sizes < K_MIN].sum())
    return {
        "columns": qis,
        "k_min": K_MIN,
        "persons": persons,
        "classes": int(len(sizes)),
        "k": int(sizes.min()) if len(sizes) else 0,
        "unique_persons": unique,
        "unique_share": round(unique / persons, 6) if persons else 0.0,
        "persons_below_k_min": below,
    }


def split_id_findings(table: pa.Table, sensitivities: Mapping[str, str], *, privacy_unit: str,
                      sample_rows: int | None = SAMPLE_ROWS) -> list[Finding]:
    """Resident ID numbers split over two or three adjacent columns (area code | birth date |
    sequence and check digit): each column of a window whose concatenation is a valid ID number
    in at least ``CHECKSUM_SHARE`` of the rows (and at least 3) is reported."""
    names = [n for n in table.column_names if n != privacy_unit]
    texts: dict[str, pa.Array | None] = {}
    widths: dict[str, int] = {}
    for n in names:
        arr = table.column(n).combine_chunks()
        if sample_rows is not None and len(arr) > sample_rows:
            arr = arr.take(pa.array(np.linspace(0, len(arr) - 1, sample_rows).astype(np.int64)))
        t = _as_text(arr) if len(arr) else None
        if t is None or len(t) != len(arr):
            texts[n] = None
            continue
        is_str = pa.types.is_string(t.type)
        # PERF: only short digit strings can be a piece of an ID number (checked on the first 1,000)
        head = _normalise(t.slice(0, 1000)) if is_str else t.slice(0, 1000)
        pieces = pc.sum(pc.match_substring_regex(pc.fill_null(head, ""), r"^[0-9X]{1,16}$")).as_py() or 0
        texts[n] = pc.fill_null(_normalise(t) if is_str else t, "") if pieces >= CHECKSUM_SHARE * len(head) else None
        if texts[n] is not None:  # the usual width of a piece: a window of pieces must add up to 18
            counts = pc.value_counts(pc.utf8_length(pc.fill_null(head, "")))
            widths[n] = int(counts.field("values")[int(np.argmax(counts.field("counts").to_numpy()))].as_py())
    out: list[Finding] = []
    seen: set[str] = set()
    for width in (3, 2):
        for i in range(len(names) - width + 1):
            window = names[i:i + width]
            if any(texts[n] is None for n in window) or seen.issuperset(window) or sum(
                    widths[n] for n in window) != 18:
                continue
            joined = pc.binary_join_element_wise(*(texts[n] for n in window), "")
            hit, whole, values = _extract(joined, "^" + r"(?P<v>" + _ID_BODY + ")$")
            good = _scatter(hit, _valid_ids(values.filter(pa.array(hit)).to_pylist()))
            if good.sum() >= 3 and good.sum() >= CHECKSUM_SHARE * len(joined):
                seen.update(window)
                out += [Finding(n, "resident_id", int(good.sum()), len(joined), True,
                                sensitivities.get(n, "sensitive"), _first(values, good)) for n in window]
    return out


#: Columns with more distinct values than this get no value support (None: never listable).
SUPPORT_DISTINCT_MAX: Final = 10_000

# -- persons: rows linked through the unit and every identifier-bearing column ----------------------
#: Headers that name an identifier: such a column never leaves an open download, and links rows
#: of one person (the same ID number under two visit numbers is one person).
ID_HEADER: Final = re.compile(
    r"身份证|证件号|证号|护照|手机|电话|联系方式|邮箱|银行卡|卡号|账号|帐号|车牌|社保|医保卡|病历号|档案号|住址|地址|"
    r"(?:^|[^a-z])(?:id_?(?:number|no|card)|sfz\w*|phone|mobile|tel|email|e_?mail|passport|account\w*|card_?no|"
    r"iban|plate|address|ssn)(?:$|[^a-z])",
    re.IGNORECASE,
)
#: Headers of names: never published, but not used to link persons (two people may share 王伟).
NAME_HEADER: Final = re.compile(r"姓名|名字|户主|联系人|代理人|(?:^|[^a-z])(?:full_?)?name(?:$|[^a-z])", re.IGNORECASE)
#: Scan kinds whose values are one person's (or one enterprise's) own: they link rows into persons.
LINKING_KINDS: Final = frozenset({"resident_id", "mobile", "credit_code", "organization_code", "bank_card",
                                  "email", "licence_plate", "ip_address"})
#: Headers of record numbers that are one person's own in hospitals, schools and workplaces
#: (住院号 …): linking, like :data:`ID_HEADER`, whatever their declaration.
RECORD_HEADER: Final = re.compile(r"住院号|门诊号|病案号|就诊卡号|患者编号|病人编号|学号|工号|员工编号|职工号|会员号|"
                                  r"(?:^|[^a-z])(?:patient|student|employee|member|mrn)_?(?:id|no|number|code)?(?:$|[^a-z])",
                                  re.IGNORECASE)
#: A code in a form no pattern knows (ZY202600001, P-000123): optional letters, five or more digits.
_CODE_VALUE: Final = r"^[A-Z]{0,4}[\-_]?\d{5,}[A-Z0-9]{0,4}$"
#: Share of a text column's distinct values that must look like codes for it to link persons.
CODE_SHARE: Final = 0.9
#: Columns with more distinct values than this that only *look* like codes link persons; a
#: declared, found or named identifier links whatever its number of values.
LINK_DISTINCT_MIN: Final = 50


def _code_like(arr: pa.ChunkedArray) -> bool:
    """Whether a text column's distinct values are (almost all) record numbers in some form."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return False
    distinct = pc.unique(arr.drop_null())
    if isinstance(distinct, pa.ChunkedArray):
        distinct = distinct.combine_chunks()
    if len(distinct) <= LINK_DISTINCT_MIN:
        return False
    head = pc.utf8_trim_whitespace(_normalise(distinct.slice(0, 5000)))
    hits = pc.sum(pc.match_substring_regex(head, _CODE_VALUE)).as_py() or 0
    return hits >= CODE_SHARE * len(head)


def linking_columns(table: pa.Table, unit: str, sensitivities: Mapping[str, str],
                    findings: Iterable[Mapping[str, Any]], exclude: Iterable[str] = ()) -> list[str]:
    """The columns whose values are one person's own, which link that person's rows: those where
    the scan found an identifier of a linking kind, those declared ``identifier`` or named so by
    their header (not names: two people may share 王伟), record numbers by header (住院号, 学号 …)
    and text columns of more than ``LINK_DISTINCT_MIN`` values that are almost all codes
    (ZY202600001): linking too much only merges persons (k is then harder to reach), linking too
    little counts one person's visits as several (k is then a lie). ``exclude``: columns known
    to be something else (quasi-identifiers: a postcode is not a person's own code)."""
    kinds: dict[str, set[str]] = {}
    for f in findings:
        kinds.setdefault(f["column"], set()).add(f["kind"])
    skip = set(exclude)
    out = []
    for name in table.column_names:
        if name == unit:
            continue
        found = kinds.get(name, set())
        name_like = bool(NAME_HEADER.search(name)) or bool(found and not found & LINKING_KINDS)
        declared = sensitivities.get(name) == "identifier"
        if (found & LINKING_KINDS) or (not name_like and (declared or ID_HEADER.search(name)
                                                          or RECORD_HEADER.search(name))):
            out.append(name)
        elif not name_like and name not in skip and sensitivities.get(name) != "quasi_identifier" \
                and _code_like(table.column(name)):
            out.append(name)
    return out


def _codes(arr: pa.ChunkedArray, cap: int | None = None) -> np.ndarray:
    """Dense integer codes of a column's values, text read as the scanner reads it (normalised,
    trimmed: one ID number typed with spaces, dashes or full-width digits is one value); -1 for
    nulls, empty text and (with ``cap``) values on more than ``cap`` rows (a placeholder such as
    无 links nobody) — except valid resident ID numbers, which are one person's however often
    they recur (a dialysis patient's hundred visits)."""
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    is_text = pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)
    if is_text and len(arr):
        arr = pc.utf8_trim_whitespace(_normalise(arr.cast(pa.string())))
    enc = pc.dictionary_encode(arr)
    codes = np.asarray(pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
    if is_text and len(enc.dictionary):
        blank = np.asarray(pc.equal(enc.dictionary, "").to_numpy(zero_copy_only=False))
        codes[(codes >= 0) & blank[np.maximum(codes, 0)]] = -1
    if cap is not None and (codes >= 0).any():
        counts = np.bincount(codes[codes >= 0], minlength=len(enc.dictionary))
        placeholder = counts > cap
        if is_text and placeholder.any():
            words = enc.dictionary.to_pylist()
            for i in np.flatnonzero(placeholder):
                placeholder[i] = not resident_id_valid(words[i] or "")
        codes[(codes >= 0) & placeholder[np.maximum(codes, 0)]] = -1
    return codes


def person_labels(table: pa.Table, unit: str, linking: list[str]) -> np.ndarray:
    """One label per row: rows sharing the unit *or* any value of a ``linking`` column are one
    person (connected components, by label propagation).

    >>> t = pa.table({"visit": [1, 2, 3], "idn": ["A", "A", "B"]})
    >>> person_labels(t, "visit", ["idn"]).tolist()
    [0, 0, 2]
    """
    n = table.num_rows
    labels = np.arange(n, dtype=np.int64)
    if n == 0:
        return labels
    cap = max(20, n // 100)  # one person's rows (visits); more is a placeholder value
    columns = [_codes(table.column(unit)), *(_codes(table.column(c), cap) for c in linking)]
    for _ in range(64):
        before = labels.copy()
        for codes in columns:
            ok = codes >= 0
            if not ok.any():
                continue
            mins = np.full(int(codes.max()) + 1, n, dtype=np.int64)
            np.minimum.at(mins, codes[ok], labels[ok])
            labels[ok] = mins[codes[ok]]
        labels = labels[labels]  # path halving: each row points at its label's label
        if np.array_equal(labels, before):
            break
    return labels


def value_support(table: pa.Table, unit: str, sensitivities: Mapping[str, str] | None = None,
                  linking: list[str] | None = None) -> dict[str, int | None]:
    """Per column, the fewest *persons* holding any one of its values (None when the column has
    more than ``SUPPORT_DISTINCT_MAX`` distinct values). A column's policy ``public_values`` are
    listed on public pages only when this is at least ``K_MIN`` (``sandbox.governance.open_catalog``): a value
    held by one person, listed to anyone, is that person's. Persons are rows linked through the
    unit and the ``linking`` columns (:func:`person_labels`, as the unconditional derivative
    counts them): a patient's five visits under five visit numbers and one ID number are one
    person, not five.

    >>> t = pa.table({"visit": [1, 2, 3, 4], "idn": ["A"] * 4, "code": ["x"] * 4})
    >>> value_support(t, "visit", {"idn": "identifier"}, ["idn"])
    {'code': 1}
    """
    out: dict[str, int | None] = {}
    sensitivities = sensitivities or {}
    if unit not in table.column_names or table.num_rows == 0:
        return out
    if linking:
        person: pa.ChunkedArray | pa.Array = pa.array(person_labels(table, unit, linking))
        one_row_each = len(np.unique(person.to_numpy())) == table.num_rows
    else:
        person = table.column(unit)
        one_row_each = pc.count_distinct(person, mode="all").as_py() == table.num_rows
    for name in table.column_names:
        if name == unit or sensitivities.get(name) == "identifier":
            continue  # an identifier column has no public values (sandbox.governance.policy refuses them)
        col = table.column(name)
        if pc.count_distinct(col, mode="all").as_py() > SUPPORT_DISTINCT_MAX:
            out[name] = None
            continue
        if one_row_each:  # PERF: persons per value = rows per value
            out[name] = int(pc.min(pc.value_counts(col).field("counts")).as_py())
            continue
        per = pa.table({"v": col, "u": person}).group_by(["v", "u"]).aggregate([])
        out[name] = int(pc.min(per.group_by(["v"]).aggregate([([], "count_all")]).column("count_all")).as_py())
    return out


def scan(table: pa.Table, sensitivities: Mapping[str, str], *, privacy_unit: str,
         dataset: str = "", sample_rows: int | None = SAMPLE_ROWS) -> dict[str, Any]:
    """The full report (JSON-ready) for a table whose columns have declared sensitivities
    (``sample_rows=None``: every value is scanned, not a sample)."""
    findings: list[Finding] = []
    for name in table.column_names:
        if name == privacy_unit:
            continue  # the unit is a pseudonymous key by declaration; it is never queryable
        findings += scan_column(name, table.column(name), sensitivities.get(name, "sensitive"), sample_rows)
    findings += split_id_findings(table, sensitivities, privacy_unit=privacy_unit, sample_rows=sample_rows)
    qis = [c for c in table.column_names if sensitivities.get(c) == "quasi_identifier"]
    unique = uniqueness(table, qis, privacy_unit)
    linking = (linking_columns(table, privacy_unit, sensitivities, [f.as_dict() for f in findings])
               if privacy_unit in table.column_names else [])
    support = value_support(table, privacy_unit, sensitivities, linking)
    problems = [
        f"column {f.column!r} holds what look like {KIND_LABELS.get(f.kind, f.kind)} "
        f"({f.matches} of {f.scanned} values{' inside text' if f.embedded else ''}) but is declared "
        f"{f.declared!r}; declare it identifier or remove it"
        for f in findings if f.severity == "high"
    ]
    if qis and unique["k"] < K_MIN:
        problems.append(
            f"{unique['unique_persons']} persons ({unique['unique_share']:.1%}) are unique on "
            f"{', '.join(qis)} and the smallest group has {unique['k']} (k < {K_MIN}); only "
            "differentially private aggregates may be released, never row-level data"
        )
    return {
        "format": REPORT_FORMAT,
        "dataset": dataset,
        "rows": table.num_rows,
        "identifier_findings": [f.as_dict() for f in findings],
        "quasi_identifiers": unique,
        "value_support": support,
        "passed": not problems,
        "problems": problems,
    }


def summary(report: Mapping[str, Any]) -> dict[str, Any]:
    """A short form for audit entries: counts only, no examples."""
    qi = report.get("quasi_identifiers") or {}
    return {
        "passed": report.get("passed"),
        "findings": [
            {"column": f["column"], "kind": f["kind"], "severity": f["severity"]}
            for f in report.get("identifier_findings", [])
        ],
        "k": qi.get("k"),
        "unique_share": qi.get("unique_share"),
    }

