"""What identifiers look like: the regular expressions and thresholds the scanner matches with.

Declarative data (issue 13, 14): resident ID and mobile numbers, personal names (Han and
pinyin), 统一社会信用代码 and 组织机构代码, bank cards, licence plates, detailed addresses,
company names, legal representatives, e-mail and IP addresses. The check digits are in
:mod:`sandbox.governance.identifiers.check_digits`; the matching in
:mod:`sandbox.governance.identifiers.matching`.
"""

from __future__ import annotations

import re
from typing import Final

#: Share of scanned values that must look like names before a column is called a name column,
#: and how many distinct such values it needs (a category like 高中 is not a name column).
NAME_SHARE: Final = 0.5
NAME_DISTINCT: Final = 10

ID_BODY: Final = r"[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx]"
MOBILE_BODY: Final = r"1[3-9]\d{9}"
ID_PATTERN: Final = r"(?:^|[^0-9])(?P<v>" + ID_BODY + r")(?:[^0-9]|$)"
# GB 11643-1989 first-generation numbers: 15 digits (area, YYMMDD, sequence), no check digit;
# counted only when they fill a column (``ID15_SHARE``), as whole values.
_ID15_BODY = r"[1-9]\d{5}\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}"
ID15_PATTERN: Final = r"^\s*(?P<v>" + _ID15_BODY + r")\s*$"
ID15_SHARE: Final = 0.5
MOBILE_PATTERN: Final = r"(?:^|[^0-9])(?:\+?86[- ]?)?(?P<v>" + MOBILE_BODY + r")(?:[^0-9]|$)"
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
