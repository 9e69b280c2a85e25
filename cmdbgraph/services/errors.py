"""Upstream's error codes and messages (zh by default, en on request), and the errors we raise.

The texts are BlueKing CMDB's, byte for byte, including their odd spacing: callers compare them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

ZH = "zh"
EN = "en"


class ErrorCode(enum.Enum):
    """Stable names for upstream's numeric codes. The value is the numeric code."""

    SUCCESS = 0
    JSON_INVALID = 1199000
    HTTP_REQUEST_FAILED = 1199002
    INPUT_INVALID = 1199003
    PARAMETER_CHECK_FAILED = 1199006
    PARAMETER_NOT_INTEGER = 1199009
    PARAMETER_UNASSIGNED = 1199010
    PARAMETER_INVALID = 1199011
    DUPLICATED = 1199014
    DATABASE_UNAVAILABLE = 1199022
    AUTHORIZATION_QUERY_FAILED = 1199027
    BODY_PARSE_FAILED = 1199030
    EXCEEDS_LIMIT = 1199035
    EMPTY = 1199038
    NO_PERMISSION_LEGACY = 1199047
    PAGE_LIMIT_EXCEEDED = 1199059
    EXCEEDS_MAXIMUM = 1199073
    INNER_MODEL_FORBIDDEN = 1199084
    TOO_MANY_REQUESTS = 1199997
    UNKNOWN = 1199998
    INTERNAL_SERVER_ERROR = 1199999
    CALL_SOURCE_AUTHENTICATION_FAILED = 1100004
    ASSOCIATION_ALREADY_EXISTS = 1101038
    MODEL_ASSOCIATION_ID_INVALID = 1101041
    MODEL_ASSOCIATION_INSTANTIATED = 1101043
    MODEL_ASSOCIATION_MISSING_PARAMETERS = 1101045
    MODEL_ASSOCIATION_NOT_FOUND = 1101046
    FORBIDDEN_FIELDS_UPDATED = 1101047
    PRESET_KIND_NOT_DELETABLE = 1101051
    ONE_TO_ONE_VIOLATION = 1101052
    PRESET_ASSOCIATION_NOT_UPDATABLE = 1101054
    PRESET_ASSOCIATION_NOT_DELETABLE = 1101055
    KIND_IN_USE = 1101060
    ONE_TO_MANY_VIOLATION = 1101061
    MODEL_ASSOCIATION_NOT_UNIQUE = 1101062
    SOURCE_INSTANCE_NOT_FOUND = 1101073
    TARGET_INSTANCE_NOT_FOUND = 1101074
    MAINLINE_NOT_ALLOWED = 1101082
    OBJECT_DB_FAILED = 1102020
    EVENT_NODE_NOT_FOUND = 1103007
    AUDIT_SAVE_FAILED = 1109001
    PERMISSION_DENIED = 9900403
    API_NOT_FOUND = 1640401
    REQUEST_TIMEOUT = 1650401


# code -> (zh, en); %s / %d are filled with the error's arguments.
MESSAGES: dict[ErrorCode, tuple[str, str]] = {
    ErrorCode.SUCCESS: ("success", "success"),
    ErrorCode.JSON_INVALID: ("反序列化JSON数据失败", "Deserializing JSON data failed"),
    ErrorCode.HTTP_REQUEST_FAILED: ("HTTP请求失败", "HTTP request failed"),
    ErrorCode.INPUT_INVALID: ("输入参数无效", "invalid input parameter"),
    ErrorCode.PARAMETER_CHECK_FAILED: (
        "'%s' 数据参数校验不通过",
        "'%s' data parameter verification does not pass",
    ),
    ErrorCode.PARAMETER_NOT_INTEGER: ("'%s' 参数必须是整型", "'%s' parameters must be integral"),
    ErrorCode.PARAMETER_UNASSIGNED: ("'%s' 未赋值", "'%s' unassigned"),
    ErrorCode.PARAMETER_INVALID: (
        "'%s' 参数无效或不存在",
        "'%s' the parameter is invalid or does not exist",
    ),
    ErrorCode.DUPLICATED: (
        "数据唯一性校验失败， %s 重复",
        "duplicated instances exist, fields [%s] duplicated",
    ),
    # Upstream's "dependent service did not start", naming the database.
    ErrorCode.DATABASE_UNAVAILABLE: ("依赖服务[%s]未启动", "Dependent service [%s] did not start"),
    ErrorCode.AUTHORIZATION_QUERY_FAILED: (
        "[%s]授权信息查询失败",
        "'%s' authorization information query failed",
    ),
    ErrorCode.BODY_PARSE_FAILED: (
        "请求参数格式错误，解析 HTTP body 数据失败",
        "request parameter invalid, parse HTTP body failed",
    ),
    ErrorCode.EXCEEDS_LIMIT: (" %s 超过限制 %d", " %s exceed the limit %d"),
    ErrorCode.EMPTY: ("数据 %s 不能为空", "need data %s is null"),
    ErrorCode.NO_PERMISSION_LEGACY: ("没有操作的权限", "Do not have access permission."),
    ErrorCode.PAGE_LIMIT_EXCEEDED: (
        "分页查询数量超过限制的最大值, 建议值200",
        "page limit is exceeded. suggestion 200",
    ),
    ErrorCode.EXCEEDS_MAXIMUM: ("字段%s超过最大值%d", "%s field exceeds maximum value %s"),
    ErrorCode.INNER_MODEL_FORBIDDEN: (
        "禁止使用通用实例接口操作内置模型实例",
        "forbidden operate inner model instance with common instance API",
    ),
    ErrorCode.TOO_MANY_REQUESTS: ("too many requests", "too many requests"),
    ErrorCode.UNKNOWN: ("未知或未能识别的异常", "Unknown or unrecognized error"),
    ErrorCode.INTERNAL_SERVER_ERROR: ("'%s' 服务器内部错误", "'%s' Internal Server Error"),
    ErrorCode.CALL_SOURCE_AUTHENTICATION_FAILED: (
        "调用来源认证失败",
        "call source authentication failed.",
    ),
    ErrorCode.ASSOCIATION_ALREADY_EXISTS: (
        "关联关系 %s->%s 重复",
        "the associations %s->%s already exist",
    ),
    ErrorCode.MODEL_ASSOCIATION_ID_INVALID: (
        "无效的关联关系ID，应该为正整数",
        "invalid object association id, should be a int64 value",
    ),
    ErrorCode.MODEL_ASSOCIATION_INSTANTIATED: (
        "模型的关联关系已经被实例化，不能被删除",
        "object association has already been instantiated, can not be deleted.",
    ),
    ErrorCode.MODEL_ASSOCIATION_MISSING_PARAMETERS: (
        "模型关联关系缺少相关参数",
        "object association missing parameters.",
    ),
    ErrorCode.FORBIDDEN_FIELDS_UPDATED: ("包含了不允许更新的字段", "updated the forbidden fields."),
    ErrorCode.PRESET_KIND_NOT_DELETABLE: (
        "预置的关联类型不能被删除",
        "can not delete a pre-defined association kind.",
    ),
    ErrorCode.PRESET_ASSOCIATION_NOT_UPDATABLE: (
        "禁止更新预定义的关联关系",
        "can not update a predefined association.",
    ),
    ErrorCode.PRESET_ASSOCIATION_NOT_DELETABLE: (
        "禁止删除预定义的关联关系",
        "can not delete a predefined association.",
    ),
    ErrorCode.KIND_IN_USE: ("关联类型已经被使用", "association kind has already been used."),
    ErrorCode.MODEL_ASSOCIATION_NOT_FOUND: (
        "模型的关联关系不存在",
        "object association does not exist.",
    ),
    ErrorCode.ONE_TO_ONE_VIOLATION: (
        "关联关系为1:1的，不能同时关联多个实例",
        "can not create multiple instance association for a 1:1 association.",
    ),
    ErrorCode.ONE_TO_MANY_VIOLATION: (
        "关联关系为1:n的，不能同时关联多个源模型实例",
        "The relationship is 1:n, and multiple source model instances cannot be associated "
        "at the same time.",
    ),
    ErrorCode.MODEL_ASSOCIATION_NOT_UNIQUE: ("关联关系不唯一", "object association do not unique."),
    ErrorCode.SOURCE_INSTANCE_NOT_FOUND: ("关联实例不存在", "the association inst is not exist"),
    ErrorCode.TARGET_INSTANCE_NOT_FOUND: ("被关联实例不存在", "the  inst to asst  is not exist"),
    ErrorCode.MAINLINE_NOT_ALLOWED: (
        "bk_mainline 为内置关联类型，不能用于当前场景",
        "bk_mainline association type can't use in this scene",
    ),
    ErrorCode.OBJECT_DB_FAILED: ("模型DB操作失败", "object DB operation failed"),
    ErrorCode.EVENT_NODE_NOT_FOUND: ("事件节点不存在", "Event chain node not exist"),
    ErrorCode.AUDIT_SAVE_FAILED: ("保存操作审计日志失败", "save audit log failed"),
    ErrorCode.PERMISSION_DENIED: ("没有操作的权限", "Do not have access permission."),
    # The BlueKing API gateway's answer for a method and path it does not serve (English only).
    ErrorCode.API_NOT_FOUND: (
        'API not found [method="%s" path="%s"]',
        'API not found [method="%s" path="%s"]',
    ),
    # The API gateway's answer when the service behind it takes too long (English only).
    ErrorCode.REQUEST_TIMEOUT: (
        "Request backend service timeout [timeout=%s s]",
        "Request backend service timeout [timeout=%s s]",
    ),
}


AUTHENTICATION_CODES = frozenset(
    {ErrorCode.CALL_SOURCE_AUTHENTICATION_FAILED, ErrorCode.AUTHORIZATION_QUERY_FAILED}
)


def normalize_language(value: str | None) -> str | None:
    """``en``, ``zh`` or None for a header value such as ``en-US,en;q=0.9`` or ``zh-cn``."""
    if not value:
        return None
    first = value.split(",", 1)[0].split(";", 1)[0].strip().lower()
    if first.startswith("en"):
        return EN
    if first.startswith("zh"):
        return ZH
    return None


def render(code: ErrorCode, args: tuple[Any, ...] = (), language: str = ZH) -> str:
    zh, en = MESSAGES[code]
    template = en if language == EN else zh
    return template % args if args else template


@dataclass
class CmdbError(Exception):
    """A request-level failure with upstream's code; rendered in the caller's language."""

    code: ErrorCode
    args_: tuple[Any, ...] = ()
    permission: dict | None = field(default=None)
    # Upstream's texts keep their odd spacing (" details 超过限制 200"); a check of our own
    # that reuses one of its codes need not.
    trim: bool = False
    # What the caller can do about it, beside upstream's message (which stays as it is): a
    # GraphQL error's ``extensions.hint``, a REST reply's X-Cmdbgraph-Hint header.
    hint: str = ""
    # Upstream's words where they are not its code's own text (zh, en): a MongoDB error it
    # passes on verbatim, or another code's text it answers under this code.
    texts: tuple[str, str] | None = None

    def message(self, language: str = ZH) -> str:
        if self.texts is not None:
            return self.texts[1] if language == EN else self.texts[0]
        text = render(self.code, self.args_, language)
        return text.strip() if self.trim else text

    @property
    def is_authentication(self) -> bool:
        """The caller is not proven (no app, no user): a failure of the whole request on every
        interface, never a domain result."""
        return self.code in AUTHENTICATION_CODES

    def __str__(self) -> str:
        return f"{self.code.value} {self.message(EN)}"


def verbatim(code: ErrorCode, text: str) -> CmdbError:
    """``code`` with ``text`` as its message in every language (upstream passes some errors'
    own words on, such as MongoDB's)."""
    return CmdbError(code, texts=(text, text))


def under_code(code: ErrorCode, words: ErrorCode) -> CmdbError:
    """``code`` with the message of ``words`` (upstream answers a few of its errors so)."""
    return CmdbError(code, texts=MESSAGES[words])


def parameter_unassigned(name: str) -> CmdbError:
    return CmdbError(ErrorCode.PARAMETER_UNASSIGNED, (name,))


def parameter_invalid(name: str) -> CmdbError:
    return CmdbError(ErrorCode.PARAMETER_INVALID, (name,))


def exceeds_limit(name: str, limit: int) -> CmdbError:
    """1199035 for a limit of this service's own (upstream's text, without its leading space)."""
    return CmdbError(ErrorCode.EXCEEDS_LIMIT, (name, limit), trim=True)


def database_unavailable() -> CmdbError:
    return CmdbError(ErrorCode.DATABASE_UNAVAILABLE, ("database",))


def parameter_check_failed(name: str) -> CmdbError:
    return CmdbError(ErrorCode.PARAMETER_CHECK_FAILED, (name,))
