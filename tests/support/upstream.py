"""Upstream's codes and their texts, as callers see them: what the tests expect.

They are BlueKing CMDB's (behaviour spec), written out here byte for byte, odd spacing
included, and never taken from ``cmdbgraph``: a test must not agree with the code it checks
by construction. Each is an ``Upstream`` (code, Chinese text, English text), a tuple, so
``code, zh, en = DENIED`` works; texts with ``{src}``/``{dest}`` (or a name, a limit) are
filled by ``fill`` or by the functions below.
"""

from __future__ import annotations

from typing import NamedTuple

ZH, EN = "zh", "en"
LANGUAGES = [ZH, EN]


class Upstream(NamedTuple):
    """One of upstream's codes and its texts in both languages."""

    code: int
    zh: str
    en: str

    def text(self, language: str) -> str:
        """The text in ``language`` (Chinese unless it is English, as upstream answers)."""
        return self.en if language == EN else self.zh

    def fill(self, **values: object) -> Upstream:
        """The same code, with ``{name}`` fields of both texts replaced by ``values``."""
        return Upstream(self.code, self.zh.format(**values), self.en.format(**values))


SUCCESS = Upstream(0, "success", "success")

# --- Per item of a batch ----------------------------------------------------------------------

DUPLICATE = Upstream(
    1101038, "关联关系 {src}->{dest} 重复", "the associations {src}->{dest} already exist"
)
SOURCE_MISSING = Upstream(1101073, "关联实例不存在", "the association inst is not exist")
TARGET_MISSING = Upstream(1101074, "被关联实例不存在", "the  inst to asst  is not exist")
ONE_TO_ONE = Upstream(
    1101052,
    "关联关系为1:1的，不能同时关联多个实例",
    "can not create multiple instance association for a 1:1 association.",
)
ONE_TO_MANY = Upstream(
    1101061,
    "关联关系为1:n的，不能同时关联多个源模型实例",
    "The relationship is 1:n, and multiple source model instances cannot be associated "
    "at the same time.",
)
# The per-item failures by code; DUPLICATE's texts name the two models ({src}, {dest}).
ITEM_ERRORS = {
    error.code: error
    for error in (DUPLICATE, SOURCE_MISSING, TARGET_MISSING, ONE_TO_ONE, ONE_TO_MANY)
}


def item_error(code: int, src: str, dest: str) -> Upstream:
    """The per-item failure ``code`` of a batch between the models ``src`` and ``dest``."""
    return ITEM_ERRORS[code].fill(src=src, dest=dest)


# --- A whole request --------------------------------------------------------------------------

BAD_JSON = Upstream(1199000, "反序列化JSON数据失败", "Deserializing JSON data failed")
UNKNOWN_ASSOCIATION = Upstream(
    1101046, "模型的关联关系不存在", "object association does not exist."
)
MAINLINE_REFUSED = Upstream(
    1101082,
    "bk_mainline 为内置关联类型，不能用于当前场景",
    "bk_mainline association type can't use in this scene",
)
PAGE_LIMIT = Upstream(
    1199059,
    "分页查询数量超过限制的最大值, 建议值200",
    "page limit is exceeded. suggestion 200",
)
APP_FAILED = Upstream(1100004, "调用来源认证失败", "call source authentication failed.")
USER_FAILED = Upstream(
    1199027, "[user]授权信息查询失败", "'user' authorization information query failed"
)
DENIED = Upstream(9900403, "没有操作的权限", "Do not have access permission.")


def invalid(name: str) -> Upstream:
    """The parameter ``name`` is missing or invalid."""
    return Upstream(
        1199011,
        f"'{name}' 参数无效或不存在",
        f"'{name}' the parameter is invalid or does not exist",
    )


def unassigned(name: str) -> Upstream:
    """The parameter ``name`` is missing or empty where upstream requires it."""
    return Upstream(1199010, f"'{name}' 未赋值", f"'{name}' unassigned")


def mongodb(text: str) -> Upstream:
    """1199998 with words upstream passes on verbatim (MongoDB's, its storage layer's)."""
    return Upstream(1199998, text, text)


# Upstream's decoder's words under 1199006 (find_instance_association, add_instance_association,
# delete_related_inst_asso).
BAD_JSON_CHECK = Upstream(1199006, "反序列化JSON数据失败", "Deserializing JSON data failed")


def check_failed(name: str) -> Upstream:
    """The parameter ``name`` is present but refused."""
    return Upstream(
        1199006,
        f"'{name}' 数据参数校验不通过",
        f"'{name}' data parameter verification does not pass",
    )


def too_many(name: str, limit: int) -> Upstream:
    """More than ``limit`` of ``name``."""
    return Upstream(1199035, f" {name} 超过限制 {limit}", f" {name} exceed the limit {limit}")


def empty(name: str) -> Upstream:
    """No ``name`` at all."""
    return Upstream(1199038, f"数据 {name} 不能为空", f"need data {name} is null")


# GraphQL's stable names for upstream's numeric codes (``code`` beside ``bkErrorCode``).
CODE_NAMES = {
    0: "SUCCESS",
    1199000: "JSON_INVALID",
    1199003: "INPUT_INVALID",
    1199006: "PARAMETER_CHECK_FAILED",
    1199010: "PARAMETER_UNASSIGNED",
    1199011: "PARAMETER_INVALID",
    1199014: "DUPLICATED",
    1199022: "DATABASE_UNAVAILABLE",
    1199027: "AUTHORIZATION_QUERY_FAILED",
    1199035: "EXCEEDS_LIMIT",
    1199038: "EMPTY",
    1199047: "NO_PERMISSION_LEGACY",
    1199059: "PAGE_LIMIT_EXCEEDED",
    1199997: "TOO_MANY_REQUESTS",
    1199999: "INTERNAL_SERVER_ERROR",
    1100004: "CALL_SOURCE_AUTHENTICATION_FAILED",
    1101038: "ASSOCIATION_ALREADY_EXISTS",
    1101046: "MODEL_ASSOCIATION_NOT_FOUND",
    1101052: "ONE_TO_ONE_VIOLATION",
    1101061: "ONE_TO_MANY_VIOLATION",
    1101062: "MODEL_ASSOCIATION_NOT_UNIQUE",
    1101073: "SOURCE_INSTANCE_NOT_FOUND",
    1101074: "TARGET_INSTANCE_NOT_FOUND",
    1101082: "MAINLINE_NOT_ALLOWED",
    1109001: "AUDIT_SAVE_FAILED",
    9900403: "PERMISSION_DENIED",
    1640401: "API_NOT_FOUND",
}
