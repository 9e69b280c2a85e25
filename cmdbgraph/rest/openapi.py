"""The OpenAPI 3.1 document of the REST shim, generated from the calls' declarations
(``rest/declarations.py``) and the limits in force, served at ``GET /api/openapi.json`` and
committed as ``openapi.json`` (the defaults' version; a test fails when it drifts).

Each call appears on its ESB paths in the ESB envelope and on its native route in the native
envelope; its request body and its ``data`` come from its declared types. What is written here
by hand is shared by every call: the envelopes, the permission object, the credentials, the
headers and the HTTP statuses.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from pydantic import TypeAdapter

from cmdbgraph import __version__
from cmdbgraph.db.tables import INT64_MAX, INT64_MIN
from cmdbgraph.rest.declarations import CALLS, LimitRef, RestCall
from cmdbgraph.rest.routes import ESB_PREFIX, ESB_PREFIXES, esb_names
from cmdbgraph.services.errors import MESSAGES, ErrorCode
from cmdbgraph.services.limits import MAX_IDEMPOTENCY_KEY, Limits

DOCUMENT_PATH = Path(__file__).resolve().parents[2] / "openapi.json"

JSON = "application/json"

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: Schema, required: tuple[str, ...] = (), **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    schema.update(extra)
    return schema


INT64: Schema = {
    "type": "integer",
    "format": "int64",
    "minimum": INT64_MIN,
    "maximum": INT64_MAX,
}
ID: Schema = {**INT64, "minimum": 1}
TEXT: Schema = {"type": "string"}
NAME: Schema = {"type": "string", "minLength": 1}
TIME: Schema = {"type": "string", "format": "date-time"}
FIELDS: Schema = {
    "type": "array",
    "items": {"type": "string"},
    "description": "Keys to return for each item; all of them when empty or missing.",
}


# ---------------------------------------------------------------------------------------------
# Shared schemas


def _error_code_description() -> str:
    lines = ["Upstream's numeric code (0 on success). Messages, zh / en:", ""]
    for code in ErrorCode:
        zh, en = MESSAGES[code]
        lines.append(f"- `{code.value}` ({code.name}): {zh!r} / {en!r}")
    return "\n".join(lines)


_PERMISSION_CODES = [ErrorCode.PERMISSION_DENIED.value, ErrorCode.NO_PERMISSION_LEGACY.value]


_ENVELOPE_DESCRIPTIONS = {
    "esb": "BlueKing's ESB envelope (paths under /api/c/compapi/).",
    "native": "cmdb api-server's native envelope (paths under /api/v3/).",
    "gateway": "The envelope of a native route called through the BlueKing API gateway (a "
    "verified X-Bkapi-JWT): upstream's apiserver renames the native keys, the renamed ones "
    "first.",
}


def _codes(kind: str) -> tuple[str, str]:
    return ("bk_error_code", "bk_error_msg") if kind == "native" else ("code", "message")


def _envelope(kind: str) -> Schema:
    """The envelope of a family of routes: ``esb``, ``native`` or ``gateway``."""
    code_field, message_field = _codes(kind)
    result: Schema = {
        "result": {"type": "boolean", "description": "true exactly when the code is 0."}
    }
    codes: Schema = {
        code_field: ref("ErrorCode"),
        message_field: {
            "type": "string",
            "description": "'success', or the error message in the caller's language.",
        },
    }
    properties: Schema = {**codes, **result} if kind == "gateway" else {**result, **codes}
    properties["permission"] = {
        "anyOf": [ref("Permission"), {"type": "null"}],
        "description": "What to apply for when the call was refused for lack of permission "
        "(code 9900403); null otherwise.",
    }
    esb = kind == "esb"
    if esb:
        properties["request_id"] = {
            "type": "string",
            "description": "The request id, also in the X-Request-ID header.",
        }
    properties["data"] = {
        "description": "The call's answer; null on every failure"
        + ("." if esb else ", absent from a permission denial (9900403), as upstream writes it.")
    }
    required = tuple(properties) if esb else tuple(p for p in properties if p != "data")
    data_rule: list[Schema] = (
        []
        if esb
        else [{"if": _obj({code_field: {"const": 9900403}}), "else": {"required": ["data"]}}]
    )
    return {
        **_obj(properties, required, additionalProperties=False),
        "allOf": [
            *data_rule,
            {
                "if": _obj({"result": {"const": True}}),
                "then": _obj({code_field: {"const": 0}, "permission": {"type": "null"}}),
                "else": _obj({code_field: {"not": {"const": 0}}, "data": {"type": "null"}}),
            },
            {
                "if": _obj({code_field: {"enum": _PERMISSION_CODES}}),
                "else": _obj({"permission": {"type": "null"}}),
            },
        ],
        "description": _ENVELOPE_DESCRIPTIONS[kind],
    }


def _failure(kind: str) -> Schema:
    code_field, _ = _codes(kind)
    return {
        "allOf": [ref(f"{kind.capitalize()}Envelope")],
        **_obj({"result": {"const": False}, code_field: {"not": {"const": 0}}}),
        "description": "A failed call: result false, data null.",
    }


_PERMISSION_INSTANCE = _obj(
    {
        "type": {"type": "string", "examples": ["comobj_7"]},
        "type_name": {"type": "string", "examples": ["交换机"]},
        "id": {
            "type": "string",
            "description": "The instance id, as a string.",
            "examples": ["11"],
        },
        "name": {"type": "string", "examples": ["sw-01"]},
    },
    ("type", "type_name", "id", "name"),
)

_RELATED_RESOURCE_TYPE = _obj(
    {
        "system_id": {"type": "string", "const": "bk_cmdb"},
        "system_name": {"type": "string", "examples": ["配置平台"]},
        "type": {"type": "string", "examples": ["comobj_7"]},
        "type_name": {"type": "string", "examples": ["交换机"]},
        "instances": {
            "type": "array",
            "description": "One resource path per instance (none for a model-wide permission).",
            "items": {"type": "array", "items": ref("PermissionInstance")},
        },
    },
    ("system_id", "system_name", "type", "type_name", "instances"),
)

_PERMISSION_ACTION = _obj(
    {
        "id": {"type": "string", "examples": ["edit_comobj_7"]},
        "name": {"type": "string", "examples": ["交换机实例编辑"]},
        "related_resource_types": {"type": "array", "items": ref("RelatedResourceType")},
    },
    ("id", "name", "related_resource_types"),
)

_PERMISSION = {
    **_obj(
        {
            "system_id": {"type": "string", "const": "bk_cmdb"},
            "system_name": {"type": "string", "examples": ["配置平台", "CMDB"]},
            "actions": {"type": "array", "items": ref("PermissionAction"), "minItems": 1},
        },
        ("system_id", "system_name", "actions"),
    ),
    "description": "What the caller must apply for (BlueKing IAM), one action per model.",
}

_CREDENTIALS = _obj(
    {
        "bk_app_code": {"type": "string", "description": "The calling app (ESB callers)."},
        "bk_app_secret": {"type": "string", "description": "The app's secret."},
        "bk_username": {
            "type": "string",
            "description": "The user the app acts for (the app vouches for the name).",
        },
        "bk_token": {
            "type": "string",
            "description": "A token this service issued; names the user (must match "
            "bk_username when both are given).",
        },
        "bk_supplier_account": {"type": "string", "default": "0"},
    },
    description=(
        "ESB credentials in the body. They win over the X-Bkapi-Authorization header, which "
        "takes the same fields as a JSON object (the BlueKing API-gateway SDK's way)."
    ),
)


def _shared_schemas() -> dict[str, Schema]:
    return {
        "ErrorCode": {
            "type": "integer",
            "enum": [code.value for code in ErrorCode],
            "description": _error_code_description(),
        },
        **{f"{kind.capitalize()}Envelope": _envelope(kind) for kind in _ENVELOPE_DESCRIPTIONS},
        **{f"{kind.capitalize()}Failure": _failure(kind) for kind in _ENVELOPE_DESCRIPTIONS},
        "Permission": _PERMISSION,
        "PermissionAction": _PERMISSION_ACTION,
        "RelatedResourceType": _RELATED_RESOURCE_TYPE,
        "PermissionInstance": _PERMISSION_INSTANCE,
        "Credentials": _CREDENTIALS,
    }


# ---------------------------------------------------------------------------------------------
# Parameters, headers, security


_LANGUAGE = (
    "The language of messages: `en…` for English, `zh…` (the default) for Chinese. Read from "
    "Blueking-Language, then X-Bkcmdb-Language, then Accept-Language."
)

PARAMETERS: dict[str, Schema] = {
    "BluekingLanguage": {
        "name": "Blueking-Language",
        "in": "header",
        "required": False,
        "description": _LANGUAGE,
        "schema": {"type": "string", "examples": ["en", "zh-cn"]},
    },
    "BkcmdbLanguage": {
        "name": "X-Bkcmdb-Language",
        "in": "header",
        "required": False,
        "description": "cmdb's native language header. " + _LANGUAGE,
        "schema": {"type": "string", "examples": ["en", "zh-cn"]},
    },
    "AcceptLanguage": {
        "name": "Accept-Language",
        "in": "header",
        "required": False,
        "description": _LANGUAGE,
        "schema": {"type": "string", "examples": ["en-US,en;q=0.9"]},
    },
    "BkapiJwt": {
        "name": "X-Bkapi-JWT",
        "in": "header",
        "required": False,
        "description": "The BlueKing API gateway's signed token (RS256/384/512), honoured when "
        "CMDBGRAPH_APIGW_PUBLIC_KEY is set: the caller is the token's app and user, and the "
        "reply is in the gateway's envelope `{code, message, result, permission, data}`; a "
        "token that does not verify answers 1199998 with the reason. Ignored otherwise.",
        "schema": {"type": "string"},
    },
    "RequestId": {
        "name": "X-Request-ID",
        "in": "header",
        "required": False,
        "description": "A request id to use (printable, at most 64 characters); one is made "
        "otherwise. Echoed in the reply's X-Request-ID header (and the ESB `request_id`).",
        "schema": {"type": "string", "maxLength": 64},
    },
    "IdempotencyKey": {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "A retry with the same key, by the same caller, with the same body, "
        "returns the first reply instead of running again; the same key with another body "
        "is refused with 1199006 (HTTP 200, as every domain failure). The body's "
        "`idempotency_key` wins over this header.",
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_IDEMPOTENCY_KEY,
        },
    },
}

SECURITY_SCHEMES: dict[str, Schema] = {
    "BkapiAuthorization": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Bkapi-Authorization",
        "description": (
            "The BlueKing API-gateway way: a JSON object with `bk_app_code`, `bk_app_secret` "
            'and `bk_username` or `bk_token`, e.g. `{"bk_app_code": "esb_test", '
            '"bk_app_secret": "xxx", "bk_username": "admin"}`. The same fields in the body '
            "(ESB callers) win over it."
        ),
    },
    "BkcmdbUser": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Bkcmdb-User",
        "description": "cmdb's native user header (with X-Bkcmdb-App-Code and "
        "X-Bkcmdb-Supplier-Account); honoured only from a configured trusted proxy.",
    },
}

# Any of these; the empty requirement stands for credentials in the ESB body fields.
SECURITY: list[Schema] = [{"BkapiAuthorization": []}, {"BkcmdbUser": []}, {}]

_STATUSES = {
    "401": "The caller could not be authenticated: 1100004 (app code or secret) or 1199027 "
    "(user or token).",
    "413": "The body is larger than the server accepts (1199035).",
    "500": "An unexpected error (1199999); nothing was written.",
    "503": "The database is unavailable (1199022); nothing was written: retry later.",
    "504": "The call took longer than the server allows (1650401, the API gateway's code).",
}


# ---------------------------------------------------------------------------------------------
# The calls, from their declarations

_ALIAS_NOTE = "Older ESB name of `{name}`, answered by the same call."


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _clean(schema: Any) -> Any:
    """Drop pydantic's generated titles (a property may still be named ``title``)."""
    if isinstance(schema, list):
        return [_clean(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    cleaned = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in ("properties", "$defs"):
            cleaned[key] = {name: _clean(item) for name, item in value.items()}
        else:
            cleaned[key] = _clean(value)
    return cleaned


def _inline(schema: Any, definitions: dict[str, Schema]) -> Any:
    """``schema`` with its local ``$ref``s replaced by copies of what they name, so each call
    can carry its own keywords on its nested objects."""
    if isinstance(schema, list):
        return [_inline(item, definitions) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if set(schema) == {"$ref"} or ("$ref" in schema and schema["$ref"].startswith("#/$defs/")):
        name = schema["$ref"].rsplit("/", 1)[1]
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return {**_inline(definitions[name], definitions), **_inline(rest, definitions)}
    if "allOf" in schema and len(schema["allOf"]) == 1 and "$ref" in schema["allOf"][0]:
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        return {**_inline(schema["allOf"][0], definitions), **_inline(merged, definitions)}
    return {key: _inline(value, definitions) for key, value in schema.items()}


def _limited(value: Any, limits: Limits) -> Any:
    """``value`` with every ``LimitRef`` replaced by the limit in force."""
    if isinstance(value, LimitRef):
        return getattr(limits, value.name)
    if isinstance(value, dict):
        return {key: _limited(item, limits) for key, item in value.items()}
    if isinstance(value, list):
        return [_limited(item, limits) for item in value]
    return value


def _body_schema(call: RestCall, limits: Limits) -> Schema:
    """The call's body fields: its request model, inlined, with the keywords it documents."""
    generated = call.request.model_json_schema(mode="validation")
    definitions = generated.pop("$defs", {})
    schema = _clean(_inline(generated, definitions))
    for dotted, keywords in call.documented.items():
        target = schema
        for part in dotted.split("."):
            target = target["properties"][part]
        target.update(_limited(keywords, limits))
    return schema


def _data_schema(call: RestCall, components: dict[str, Schema]) -> Schema:
    generated = TypeAdapter(call.data).json_schema(
        mode="serialization", ref_template="#/components/schemas/{model}"
    )
    for name, definition in generated.pop("$defs", {}).items():
        components[name] = _clean(definition)
    return _clean(generated)


def _request_body(body: Schema, required: tuple[str, ...], path_params: list[str]) -> Schema:
    properties = {k: v for k, v in body["properties"].items() if k not in path_params}
    needed = [k for k in required if k not in path_params]
    schema: Schema = {"allOf": [ref("Credentials")], "type": "object"}
    if properties:
        schema["properties"] = properties
    if needed:
        schema["required"] = needed
    schema["description"] = "Unknown fields are ignored."
    return {"required": bool(needed), "content": {JSON: {"schema": schema}}}


_HINT_HEADER: Schema = {
    "description": "When an app code was given but could not be authenticated (1100004): "
    'what to do, e.g. "app esb_test could not be authenticated: check its code and secret; to '
    'create it: `cmdbgraph apps create esb_test`" (the same words for an unknown app, a '
    "revoked one and a wrong secret). The body stays upstream's.",
    "required": False,
    "schema": {"type": "string"},
}


def _response(description: str, schema: Schema, *, hint: bool = False) -> Schema:
    headers: Schema = {
        "X-Request-ID": {
            "description": "The request id.",
            "required": True,
            "schema": {"type": "string"},
        }
    }
    if hint:
        headers["X-Cmdbgraph-Hint"] = _HINT_HEADER
    return {
        "description": description,
        "headers": headers,
        "content": {JSON: {"schema": schema}},
    }


def _operation(call: RestCall, name: str, esb: bool, path: str, body: Schema) -> Schema:
    path_params = re.findall(r"{(\w+)}", path)
    data_name = f"{_camel(call.name)}Data"

    def success_in(kind: str) -> Schema:
        return {
            "allOf": [ref(f"{kind.capitalize()}Envelope")],
            "if": _obj({"result": {"const": True}}),
            "then": _obj({"data": ref(data_name)}),
            "description": f"The {kind} envelope; `data` is {data_name} on success, null on "
            "failure.",
        }

    if esb:
        success, failure = success_in("esb"), ref("EsbFailure")
    else:
        # A native route answers in the gateway's envelope when the gateway calls it.
        success = {"oneOf": [success_in("native"), success_in("gateway")]}
        failure = {"oneOf": [ref("NativeFailure"), ref("GatewayFailure")]}
    parameters: list[Schema] = []
    for param in path_params:
        field = body["properties"][param]
        parameters.append(
            {
                "name": param,
                "in": "path",
                "required": True,
                "description": field.get("description", ""),
                "schema": {k: v for k, v in field.items() if k not in ("description", "default")},
            }
        )
    parameters += [
        {"$ref": f"#/components/parameters/{p}"}
        for p in ("BluekingLanguage", "BkcmdbLanguage", "AcceptLanguage", "RequestId")
    ]
    if not esb:
        parameters.append({"$ref": "#/components/parameters/BkapiJwt"})
    if call.idempotency_header:
        parameters.append({"$ref": "#/components/parameters/IdempotencyKey"})
    responses = {
        "200": _response(
            "Success (result true, code 0), or a request-level failure (result false, "
            "data null) with upstream's code and message.",
            success,
        )
    }
    for status, description in sorted(_STATUSES.items()):
        responses[status] = _response(description, failure, hint=status == "401")
    description = call.description
    if name != call.name:
        description = _ALIAS_NOTE.format(name=call.name) + "\n\n" + description
    return {
        "summary": call.summary,
        "description": description,
        "tags": [call.tag],
        "parameters": parameters,
        "requestBody": _request_body(body, call.required, path_params),
        "responses": responses,
    }


@cache
def document(limits: Limits = Limits()) -> dict:
    """The OpenAPI 3.1 document of the REST shim under ``limits``."""
    schemas = _shared_schemas()
    paths: dict[str, dict] = {}
    for call in CALLS:
        body = _body_schema(call, limits)
        schemas[f"{_camel(call.name)}Data"] = _data_schema(call, schemas)
        for name in esb_names(call):
            for prefix in ESB_PREFIXES:
                suffix = "" if prefix == ESB_PREFIX else "_unversioned"
                path = f"{prefix}/{name}/"
                paths.setdefault(path, {})["post"] = {
                    "operationId": f"{name}_esb{suffix}",
                    **_operation(call, name, True, path, body),
                }
        for path, suffix in ((call.path, "native"), *call.more_paths):
            paths.setdefault(path, {})[call.method.lower()] = {
                "operationId": f"{call.name}_{suffix}",
                **_operation(call, call.name, False, path, body),
            }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cmdbgraph REST shim (BlueKing CMDB compatible)",
            "version": __version__,
            "description": (
                "BlueKing CMDB's instance-association calls, answered exactly like upstream. "
                "Every call is on its ESB path (`POST /api/c/compapi/v2/cc/<name>/`, envelope "
                "`{result, code, message, permission, request_id, data}`) and on cmdb's native "
                "route (under `/api/v3/`, envelope `{result, bk_error_code, bk_error_msg, "
                "permission, data}`). Request-level failures answer HTTP 200 with `result: "
                "false`, a code and a message (Chinese by default, English with an `en` "
                "language header). A body that is not a JSON object, or a field of the wrong "
                "type, answers 1199000."
            ),
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "instance associations"},
            {"name": "models"},
            {"name": "instances"},
        ],
        "security": SECURITY,
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas,
            "parameters": PARAMETERS,
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


@cache
def document_bytes(limits: Limits = Limits()) -> bytes:
    return orjson.dumps(document(limits))


def export() -> str:
    """The committed ``openapi.json``: the document under the default limits."""
    return orjson.dumps(document(), option=orjson.OPT_INDENT_2).decode() + "\n"
