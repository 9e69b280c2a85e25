"""The OpenAPI 3.1 description of the REST shim, at ``GET /api/openapi.json``.

The paths come from ``routes.CALLS`` and ``routes.ESB_ALIASES``, so every route of the shim is
described: a call without a description here fails the build of the document (and its test).
Each call is described once (its request body, the schema of its ``data``) and appears twice:
on its ESB path in the ESB envelope and on its native route in the native envelope.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from cmdbgraph import __version__
from cmdbgraph.db.tables import INT64_MAX, INT64_MIN
from cmdbgraph.rest import associations, catalog
from cmdbgraph.services import associations as association_service
from cmdbgraph.services.errors import MESSAGES, ErrorCode
from cmdbgraph.services.instances import SORTABLE_FIELDS as SORTABLE

OPENAPI_PATH = "/api/openapi.json"
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


def _page(limit: int, *, sort: bool = False) -> Schema:
    properties: Schema = {
        "start": {**INT64, "minimum": 0, "default": 0, "description": "Offset of the first item."},
        "limit": {
            **INT64,
            "minimum": 1,
            "maximum": limit,
            "default": limit,
            "description": f"Page size; 0, negative or over {limit} answers 1199059.",
        },
    }
    if sort:
        names = "|".join(SORTABLE)
        part = rf"(?:-+\s*|\s*)(?:{names})\s*"
        properties["sort"] = {
            "type": "string",
            "pattern": rf"^(?:{part}(?:,{part})*)?$",
            "description": f"Comma-separated fields among {', '.join(SORTABLE)}, each "
            "ascending, or descending with a leading '-'; another field answers 1199011.",
            "examples": ["bk_inst_name", "-create_time,bk_inst_id"],
        }
    return _obj(properties)


# ---------------------------------------------------------------------------------------------
# Shared schemas


def _error_code_description() -> str:
    lines = ["Upstream's numeric code (0 on success). Messages, zh / en:", ""]
    for code in ErrorCode:
        zh, en = MESSAGES[code]
        lines.append(f"- `{code.value}` ({code.name}): {zh!r} / {en!r}")
    return "\n".join(lines)


_PERMISSION_CODES = [ErrorCode.PERMISSION_DENIED.value, ErrorCode.NO_PERMISSION_LEGACY.value]


def _envelope(esb: bool) -> Schema:
    code_field, message_field = ("code", "message") if esb else ("bk_error_code", "bk_error_msg")
    properties: Schema = {
        "result": {"type": "boolean", "description": "true exactly when the code is 0."},
        code_field: ref("ErrorCode"),
        message_field: {
            "type": "string",
            "description": "'success', or the error message in the caller's language.",
        },
        "permission": {
            "anyOf": [ref("Permission"), {"type": "null"}],
            "description": "What to apply for when the call was refused for lack of permission "
            "(code 9900403); null otherwise.",
        },
    }
    if esb:
        properties["request_id"] = {
            "type": "string",
            "description": "The request id, also in the X-Request-ID header.",
        }
    properties["data"] = {"description": "The call's answer; null on every failure."}
    return {
        **_obj(properties, tuple(properties), additionalProperties=False),
        "allOf": [
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
        "description": (
            "BlueKing's ESB envelope (paths under /api/c/compapi/)."
            if esb
            else "cmdb api-server's native envelope (paths under /api/v3/)."
        ),
    }


def _failure(esb: bool) -> Schema:
    code_field = "code" if esb else "bk_error_code"
    return {
        "allOf": [ref("EsbEnvelope" if esb else "NativeEnvelope")],
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

_INST_ASSOCIATION_PROPERTIES: Schema = {
    "id": ID,
    "bk_obj_asst_id": {**TEXT, "examples": ["bk_switch_belong_host"]},
    "bk_asst_id": {**TEXT, "examples": ["belong"]},
    "bk_obj_id": {**TEXT, "examples": ["bk_switch"]},
    "bk_inst_id": ID,
    "bk_asst_obj_id": {**TEXT, "examples": ["host"]},
    "bk_asst_inst_id": ID,
    "bk_supplier_account": TEXT,
    "bk_biz_id": INT64,
}

_MAPPINGS = ["1:1", "1:n", "n:n"]

_MODEL_ASSOCIATION_PROPERTIES: Schema = {
    "id": ID,
    "bk_obj_asst_id": TEXT,
    "bk_obj_asst_name": TEXT,
    "bk_obj_id": TEXT,
    "bk_asst_obj_id": TEXT,
    "bk_asst_id": TEXT,
    "mapping": {"type": "string", "enum": _MAPPINGS},
    "on_delete": {"type": "string", "enum": ["none", "delete_src", "delete_dest"]},
    "ispre": {"type": "boolean"},
    "bk_supplier_account": TEXT,
}

_MODEL_PROPERTIES: Schema = {
    "bk_obj_id": TEXT,
    "bk_obj_name": TEXT,
    "bk_classification_id": TEXT,
    "bk_obj_icon": TEXT,
    "ispre": {"type": "boolean"},
    "bk_ispaused": {"type": "boolean"},
    "bk_supplier_account": TEXT,
    "creator": TEXT,
    "modifier": TEXT,
    "create_time": TIME,
    "last_time": TIME,
}

_INSTANCE_PROPERTIES: Schema = {
    "bk_inst_id": ID,
    "bk_obj_id": TEXT,
    "bk_inst_name": TEXT,
    "bk_supplier_account": TEXT,
    "create_time": TIME,
    "last_time": TIME,
}

# Index-keyed maps as upstream writes Go maps: keys are the 0-based indexes as strings, sorted.
_INDEX_KEY: Schema = {"type": "string", "pattern": "^(0|[1-9][0-9]*)$"}

_CONDITION_VALUE: Schema = {
    "anyOf": [
        {"type": ["string", "integer", "number", "boolean"]},
        {
            "type": "array",
            "minItems": 1,
            "items": {"type": ["string", "integer", "number", "boolean"]},
        },
        _obj(
            {"$eq": {"type": ["string", "integer", "number", "boolean"]}},
            ("$eq",),
            additionalProperties=False,
        ),
        _obj(
            {
                "$in": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": ["string", "integer", "number", "boolean"]},
                }
            },
            ("$in",),
            additionalProperties=False,
        ),
    ]
}


def _shared_schemas() -> dict[str, Schema]:
    return {
        "ErrorCode": {
            "type": "integer",
            "enum": [code.value for code in ErrorCode],
            "description": _error_code_description(),
        },
        "EsbEnvelope": _envelope(esb=True),
        "NativeEnvelope": _envelope(esb=False),
        "EsbFailure": _failure(esb=True),
        "NativeFailure": _failure(esb=False),
        "Permission": _PERMISSION,
        "PermissionAction": _PERMISSION_ACTION,
        "RelatedResourceType": _RELATED_RESOURCE_TYPE,
        "PermissionInstance": _PERMISSION_INSTANCE,
        "Credentials": _CREDENTIALS,
        "InstAssociation": _obj(
            _INST_ASSOCIATION_PROPERTIES,
            tuple(_INST_ASSOCIATION_PROPERTIES),
            additionalProperties=False,
            description="A stored instance association.",
        ),
        "InstAssociationFields": _obj(
            _INST_ASSOCIATION_PROPERTIES,
            additionalProperties=False,
            description="A stored instance association, limited to the requested fields.",
        ),
        "ModelAssociation": _obj(
            _MODEL_ASSOCIATION_PROPERTIES,
            tuple(_MODEL_ASSOCIATION_PROPERTIES),
            additionalProperties=False,
            description="A model association (bk_obj_asst_id by convention "
            "{bk_obj_id}_{bk_asst_id}_{bk_asst_obj_id}).",
        ),
        "Model": _obj(
            _MODEL_PROPERTIES,
            tuple(_MODEL_PROPERTIES),
            additionalProperties=False,
            description="A model (bk_obj_id such as host or bk_switch).",
        ),
        "Instance": _obj(
            _INSTANCE_PROPERTIES,
            additionalProperties=True,
            description="An instance: its attributes and the fields below, limited to the "
            "requested fields when there are some.",
        ),
        "BatchCreateDetail": _obj(
            {
                "bk_inst_id": {**INT64, "description": "The source instance."},
                "bk_asst_inst_id": {**INT64, "description": "The target instance."},
            },
            ("bk_inst_id", "bk_asst_inst_id"),
        ),
    }


# ---------------------------------------------------------------------------------------------
# The calls


@dataclass(frozen=True)
class CallDoc:
    """How one call is described: its body fields and the schema of its ``data``."""

    summary: str
    description: str
    body: Schema  # properties of the body besides the credentials
    required: tuple[str, ...]
    data: Schema
    tags: tuple[str, ...] = ("instance associations",)
    path_types: dict[str, Schema] = field(default_factory=dict)
    idempotency_header: bool = False
    extra_statuses: dict[str, str] = field(default_factory=dict)


_BATCH_LIMIT = association_service.MAX_BATCH_SIZE

CALL_DOCS: dict[str, CallDoc] = {
    "batch_create_instance_association": CallDoc(
        summary="Create instance associations in a batch",
        description=(
            "Creates one association per item of `details`, under the model association "
            "`bk_obj_asst_id`. Request-level checks come first, in upstream's order (1199000, "
            "1199011, 1199038, 1199035, 1199006, 1101046, 1101082, 9900403); then every item "
            "is decided in index order and `data` maps each index to the new id "
            "(`success_created`) or to the reason it failed (`error_msg`). A reply whose "
            "items all failed is still a success (`result: true`). Beyond upstream: "
            "`dry_run`, `error_policy` and idempotency keys."
        ),
        body={
            "bk_obj_id": {**NAME, "description": "The source model.", "examples": ["bk_switch"]},
            "bk_asst_obj_id": {**NAME, "description": "The target model.", "examples": ["host"]},
            "bk_obj_asst_id": {
                **NAME,
                "description": "The model association; must join exactly these two models.",
                "examples": ["bk_switch_belong_host"],
            },
            "details": {
                "type": "array",
                "items": ref("BatchCreateDetail"),
                "minItems": 1,
                "maxItems": _BATCH_LIMIT,
                "description": f"1 to {_BATCH_LIMIT} items: empty answers 1199038, more "
                "answers 1199035.",
            },
            "dry_run": {
                "type": "boolean",
                "default": False,
                "description": "Decide every item and report as usual, but write nothing.",
            },
            "error_policy": {
                "type": "string",
                "enum": [policy.value for policy in association_service.ErrorPolicy],
                "default": association_service.ErrorPolicy.PARTIAL.value,
                "description": "partial (upstream's): write the items that pass; "
                "all_or_nothing: write nothing unless every item passes (the reply still "
                "reports each index).",
            },
            "idempotency_key": {
                "type": "string",
                "minLength": 1,
                "maxLength": association_service.MAX_IDEMPOTENCY_KEY,
                "description": "A retry with the same key, by the same caller, with the same "
                "body, returns the first reply. Wins over the Idempotency-Key header.",
            },
        },
        required=("bk_obj_id", "bk_asst_obj_id", "bk_obj_asst_id", "details"),
        data=_obj(
            {
                "success_created": {
                    "type": "object",
                    "propertyNames": _INDEX_KEY,
                    "additionalProperties": ID,
                    "description": "Index of the item (as a string) → id of the new association.",
                },
                "error_msg": {
                    "type": "object",
                    "propertyNames": _INDEX_KEY,
                    "additionalProperties": {"type": "string"},
                    "description": "Index of the item (as a string) → why it failed.",
                },
            },
            ("success_created", "error_msg"),
            additionalProperties=False,
        ),
        idempotency_header=True,
    ),
    "add_instance_association": CallDoc(
        summary="Create one instance association",
        description="The checks of a batch of one; an item failure is the call's error.",
        body={
            "bk_obj_asst_id": {**NAME, "examples": ["bk_switch_belong_host"]},
            "bk_inst_id": {**INT64, "description": "The source instance."},
            "bk_asst_inst_id": {**INT64, "description": "The target instance."},
        },
        required=("bk_obj_asst_id", "bk_inst_id", "bk_asst_inst_id"),
        data=_obj({"id": ID}, ("id",), additionalProperties=False),
    ),
    "delete_instance_association": CallDoc(
        summary="Delete one instance association",
        description="Deletes the association `id` if its source or target model is "
        "`bk_obj_id`; deleting one that does not exist succeeds.",
        body={
            "id": {**ID, "description": "The association; 0 or negative answers 1199011."},
            "bk_obj_id": {**NAME, "description": "The source or target model."},
        },
        required=("id", "bk_obj_id"),
        data={"type": "null"},
        path_types={"id": ID, "bk_obj_id": NAME},
    ),
    "delete_related_inst_asso": CallDoc(
        summary="Delete instance associations by id",
        description="Deletes, in one transaction, the associations among `id` whose source or "
        "target model is `bk_obj_id`; `data` is how many were deleted.",
        body={
            "id": {
                "type": "array",
                "items": INT64,
                "minItems": 1,
                "maxItems": association_service.MAX_DELETE_IDS,
                "description": f"1 to {association_service.MAX_DELETE_IDS} ids: empty answers "
                "1199038, more answers 1199035.",
            },
            "bk_obj_id": NAME,
        },
        required=("id", "bk_obj_id"),
        data={**INT64, "minimum": 0, "description": "How many associations were deleted."},
    ),
    "find_instance_association": CallDoc(
        summary="Find the instance associations of a model association",
        description="Every association of `condition.bk_obj_asst_id` (and the optional "
        "filters) whose source model is `bk_obj_id`.",
        body={
            "condition": _obj(
                {
                    "bk_obj_asst_id": NAME,
                    "bk_asst_id": TEXT,
                    "bk_asst_obj_id": TEXT,
                },
                ("bk_obj_asst_id",),
            ),
            "bk_obj_id": NAME,
        },
        required=("condition", "bk_obj_id"),
        data={"type": "array", "items": ref("InstAssociation")},
    ),
    "search_related_inst_asso": CallDoc(
        summary="Find the associations of one instance, in both directions",
        description="The associations whose source or target is the instance "
        "`condition.bk_inst_id` of model `condition.bk_obj_id`, ordered by id.",
        body={
            "condition": _obj({"bk_inst_id": ID, "bk_obj_id": NAME}, ("bk_inst_id", "bk_obj_id")),
            "fields": FIELDS,
            "page": _page(associations.RELATED_PAGE_LIMIT),
        },
        required=("condition",),
        data={"type": "array", "items": ref("InstAssociationFields")},
    ),
    "find_object_association": CallDoc(
        summary="Find model associations",
        description="The model associations matching every given filter.",
        tags=("models",),
        body={
            "condition": _obj(
                {
                    "bk_obj_asst_id": TEXT,
                    "bk_obj_id": TEXT,
                    "bk_asst_obj_id": TEXT,
                    "bk_asst_id": TEXT,
                }
            ),
        },
        required=(),
        data={"type": "array", "items": ref("ModelAssociation")},
    ),
    "search_objects": CallDoc(
        summary="Find models",
        description="The models matching every given filter.",
        tags=("models",),
        body={
            "bk_obj_id": TEXT,
            "bk_obj_name": TEXT,
            "bk_classification_id": TEXT,
            "ispre": {"type": "boolean"},
            "bk_ispaused": {"type": "boolean"},
        },
        required=(),
        data={"type": "array", "items": ref("Model")},
    ),
    "search_inst_by_object": CallDoc(
        summary="Find the instances of a model",
        description="A page of the instances of `bk_obj_id` matching `condition` (field → "
        "value, list of values, `{$eq: value}` or `{$in: [values]}`), with the total count.",
        tags=("instances",),
        body={
            "bk_obj_id": {**NAME, "examples": ["bk_switch"]},
            "condition": {
                "type": "object",
                "additionalProperties": _CONDITION_VALUE,
                "description": "Attribute → value it must equal; an unusable value answers "
                "1199011.",
            },
            "fields": FIELDS,
            "page": _page(catalog.SEARCH_INST_PAGE_LIMIT, sort=True),
        },
        required=("bk_obj_id",),
        data=_obj(
            {
                "count": {**INT64, "minimum": 0, "description": "How many instances match."},
                "info": {"type": "array", "items": ref("Instance")},
            },
            ("count", "info"),
            additionalProperties=False,
        ),
        path_types={"bk_obj_id": NAME},
    ),
}

_ALIAS_NOTE = "Older ESB name of `{name}`, answered by the same call."


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
            "maxLength": association_service.MAX_IDEMPOTENCY_KEY,
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
    "504": "The call took longer than the server allows (1199999).",
}


# ---------------------------------------------------------------------------------------------
# The document


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _request_body(doc: CallDoc, path_params: list[str]) -> Schema:
    properties = {k: v for k, v in doc.body.items() if k not in path_params}
    required = [k for k in doc.required if k not in path_params]
    schema: Schema = {"allOf": [ref("Credentials")], "type": "object"}
    if properties:
        schema["properties"] = properties
    if required:
        schema["required"] = required
    schema["description"] = "Unknown fields are ignored."
    return {"required": bool(required), "content": {JSON: {"schema": schema}}}


def _response(description: str, schema: Schema) -> Schema:
    return {
        "description": description,
        "headers": {
            "X-Request-ID": {
                "description": "The request id.",
                "required": True,
                "schema": {"type": "string"},
            }
        },
        "content": {JSON: {"schema": schema}},
    }


def _operation(name: str, call: str, esb: bool, path: str) -> Schema:
    doc = CALL_DOCS[call]
    path_params = re.findall(r"{(\w+)}", path)
    envelope = "EsbEnvelope" if esb else "NativeEnvelope"
    failure = ref("EsbFailure" if esb else "NativeFailure")
    data_name = f"{_camel(call)}Data"
    success = {
        "allOf": [ref(envelope)],
        "if": _obj({"result": {"const": True}}),
        "then": _obj({"data": ref(data_name)}),
        "description": f"The {'ESB' if esb else 'native'} envelope; `data` is "
        f"{data_name} on success, null on failure.",
    }
    parameters: list[Schema] = [
        {
            "name": param,
            "in": "path",
            "required": True,
            "description": doc.body.get(param, {}).get("description", ""),
            "schema": {
                k: v for k, v in doc.path_types.get(param, TEXT).items() if k != "description"
            },
        }
        for param in path_params
    ]
    parameters += [
        {"$ref": f"#/components/parameters/{p}"}
        for p in ("BluekingLanguage", "BkcmdbLanguage", "AcceptLanguage", "RequestId")
    ]
    if doc.idempotency_header:
        parameters.append({"$ref": "#/components/parameters/IdempotencyKey"})
    responses = {
        "200": _response(
            "Success (result true, code 0), or a request-level failure (result false, "
            "data null) with upstream's code and message.",
            success,
        )
    }
    for status, description in sorted({**_STATUSES, **doc.extra_statuses}.items()):
        responses[status] = _response(description, failure)
    description = doc.description
    if name != call:
        description = _ALIAS_NOTE.format(name=call) + "\n\n" + description
    return {
        "operationId": f"{name}_{'esb' if esb else 'native'}",
        "summary": doc.summary,
        "description": description,
        "tags": list(doc.tags),
        "parameters": parameters,
        "requestBody": _request_body(doc, path_params),
        "responses": responses,
    }


@cache
def document() -> dict:
    """The OpenAPI 3.1 document of the REST shim (built once)."""
    # Imported here: routes.py imports this module to register the document's own route.
    from cmdbgraph.rest.routes import CALLS, ESB_ALIASES, ESB_PREFIX, ESB_PREFIXES

    paths: dict[str, dict] = {}
    operations = [(name, name, True, "post", f"{ESB_PREFIX}/{name}/") for name, *_ in CALLS]
    operations += [(name, name, False, method.lower(), path) for name, _, method, path in CALLS]
    operations += [
        (alias, call, True, "post", f"{ESB_PREFIX}/{alias}/") for alias, call in ESB_ALIASES.items()
    ]
    for name, call, esb, method, path in operations:
        paths.setdefault(path, {})[method] = _operation(name, call, esb, path)
    # The same ESB calls without the API version, as the BlueKing SDK calls them by default.
    for prefix in ESB_PREFIXES[1:]:
        for name, call, esb, method, path in operations:
            if esb:
                unversioned = path.replace(ESB_PREFIX, prefix, 1)
                operation = {
                    **_operation(name, call, esb, unversioned),
                    "operationId": f"{name}_esb_unversioned",
                }
                paths.setdefault(unversioned, {})[method] = operation
    schemas = _shared_schemas()
    for call, doc in CALL_DOCS.items():
        schemas[f"{_camel(call)}Data"] = doc.data
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
def document_bytes() -> bytes:
    return orjson.dumps(document())


async def openapi_json(request: Request) -> Response:
    """``GET /api/openapi.json``: the document."""
    return Response(document_bytes(), media_type="application/json")
