"""A REST call, declared once: its ESB name, native method and path, a typed request model, the
type of its ``data``, a summary. From the declaration come its routes (ESB and native), the
strict parsing of its body, and its part of the OpenAPI document.

Bodies are read as upstream's Go decoder reads them: a field of the wrong type (``"11"`` for an
integer, a float, an integer beyond int64, ``true`` for a string) answers 1199000; a missing or
``null`` field is its zero value; unknown fields are ignored. The field types below say so once.
Checks on values (an empty id, a page too large) are the handlers', with upstream's codes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeVar, get_type_hints

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from cmdbgraph.db.tables import INT64_MAX, INT64_MIN
from cmdbgraph.services.errors import CmdbError, ErrorCode, under_code, verbatim

Body = TypeVar("Body", bound="RequestModel")


def _zero(value: object) -> Callable[[object], object]:
    """Go's decoding of ``null``: the field keeps its zero value."""

    def convert(given: object) -> object:
        return value if given is None else given

    return convert


class LimitRef:
    """A number of the OpenAPI document that comes from the limits in force (``Limits``)."""

    def __init__(self, name: str) -> None:
        self.name = name


# Field types, as Go decodes them.
GoStr = Annotated[str, BeforeValidator(_zero(""))]
GoBool = Annotated[bool, BeforeValidator(_zero(False))]
Int64 = Annotated[
    int,
    Field(ge=INT64_MIN, le=INT64_MAX, json_schema_extra={"format": "int64"}),
    BeforeValidator(_zero(0)),
]
GoStrList = Annotated[list[str], BeforeValidator(_zero([]))]
Int64List = Annotated[list[Int64], BeforeValidator(_zero([]))]
GoObject = Annotated[dict[str, Any], BeforeValidator(_zero({}))]


class RequestModel(BaseModel):
    """A request body: strict types, unknown fields ignored, ``null`` as the zero value."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


# Marks a nested object field: ``null`` is an empty object (``Annotated[Model, NullIsEmpty]``).
NullIsEmpty = BeforeValidator(_zero({}))
NullIsEmptyList = BeforeValidator(_zero([]))


class BadBody(Exception):
    """The body does not have the declared types: upstream answers 1199000."""


def decoder_words() -> CmdbError:
    """What several calls answer a body upstream cannot decode (``RestCall.bad_body``):
    1199006 with the decoder's words."""
    return under_code(ErrorCode.PARAMETER_CHECK_FAILED, ErrorCode.JSON_INVALID)


def decoder_words_formatted() -> CmdbError:
    """search_related_inst_asso's: the decoder's words inside 1199006's template."""
    return CmdbError(
        ErrorCode.PARAMETER_CHECK_FAILED,
        texts=(
            "'反序列化JSON数据失败' 数据参数校验不通过",
            "'Deserializing JSON data failed' data parameter verification does not pass",
        ),
    )


def go_quote(text: str) -> str:
    """Go's strconv.Quote."""
    named = dict(zip("\a\b\f\n\r\t\v", ("\\" + c for c in "abfnrtv"), strict=True))
    quoted = []
    for char in text:
        if char in ('"', "\\"):
            quoted.append("\\" + char)
        elif char.isprintable():
            quoted.append(char)
        elif char in named:
            quoted.append(named[char])
        elif ord(char) < 0x80:
            quoted.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            quoted.append(f"\\u{ord(char):04x}")
        else:
            quoted.append(f"\\U{ord(char):08x}")
    return '"' + "".join(quoted) + '"'


def go_parse_int(text: str, failure: ErrorCode) -> int:
    """Go's strconv.ParseInt(text, 10, 64), as upstream reads an id in a path; what it
    refuses answers ``failure`` with Go's words (upstream passes them on)."""

    def refused(reason: str) -> CmdbError:
        return verbatim(failure, f"strconv.ParseInt: parsing {go_quote(text)}: {reason}")

    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits:
        raise refused("invalid syntax")
    value = 0
    for char in digits:
        if not "0" <= char <= "9":
            raise refused("invalid syntax")
        value = value * 10 + ord(char) - ord("0")
        if value >= 2**64:
            raise refused("value out of range")  # Go stops at the first digit too many
    value = -value if text.startswith("-") else value
    if not INT64_MIN <= value <= INT64_MAX:
        raise refused("value out of range")
    return value


def parse(model: type[Body], body: dict) -> Body:
    """``body`` (a decoded JSON object) as ``model``; raises ``BadBody``."""
    try:
        return model.model_validate(body)
    except ValidationError:
        raise BadBody from None


@dataclass(frozen=True)
class RestCall(Generic[Body]):
    """One call of the shim."""

    name: str  # the ESB name: POST /api/c/compapi/v2/cc/<name>/
    method: str  # the native route's method and path
    path: str
    request: type[Body]
    data: Any  # the type of ``data`` on success (for the document)
    handler: Callable[[Any, Body], Awaitable[Any]]
    summary: str
    description: str
    tag: str = "instance associations"
    aliases: tuple[str, ...] = ()  # older ESB names answered by the same call
    idempotency_header: bool = False
    # Request schema keywords the types cannot carry: property -> keywords (LimitRef allowed).
    documented: dict[str, dict[str, Any]] = field(default_factory=dict)
    required: tuple[str, ...] = ()  # what the document calls required (Go requires nothing)
    # What a body of the wrong types answers, when not upstream's usual 1199000.
    bad_body: Callable[[], Any] | None = None
    # More native routes of the call (same method): (path, operationId suffix).
    more_paths: tuple[tuple[str, str], ...] = ()
    # Upstream's checks before it reads the body: (path arguments, decoded body) -> None.
    precheck: Callable[[dict, dict], None] | None = None


CALLS: list[RestCall] = []
Handler = Callable[[Any, Any], Awaitable[Any]]


def rest_call(
    name: str,
    method: str,
    path: str,
    *,
    data: Any,
    summary: str,
    description: str,
    **options: Any,
) -> Callable[[Handler], Handler]:
    """Declare the decorated handler as the call ``name``; its body model is the type of its
    second parameter."""

    def declare(handler: Handler) -> Handler:
        request = get_type_hints(handler)["body"]
        CALLS.append(
            RestCall(
                name=name,
                method=method,
                path=path,
                request=request,
                data=data,
                handler=handler,
                summary=summary,
                description=description,
                **options,
            )
        )
        return handler

    return declare
