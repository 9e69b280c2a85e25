"""GraphQL input types."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import strawberry
from strawberry.types.arguments import InputContext
from strawberry.types.base import get_object_definition

from cmdbgraph.schema.scalars import JSON, BigInt
from cmdbgraph.schema.types import AssociationMapping, OnDelete
from cmdbgraph.services import associations

# The service's own enum, shown to GraphQL under the same name.
ErrorPolicy = associations.ErrorPolicy
strawberry.enum(
    associations.ErrorPolicy,
    name="ErrorPolicy",
    description="What to write when some items of a batch fail.",
)


@strawberry.input(description="One association to create: source and target instance ids.")
class InstAssociationDetailInput:
    bk_inst_id: BigInt
    bk_asst_inst_id: BigInt


def _detail_from_input(
    _cls: type, value: Mapping[str, Any], _context: object
) -> associations.Detail:
    # A batch has up to 200 details: building the service's value straight from the input
    # (already typed and coerced by GraphQL) skips strawberry's per-field conversion, which
    # was most of the mutation's input cost. So a resolver receives ``Detail`` values where
    # the annotation says InstAssociationDetailInput (it casts them).
    return associations.Detail(value["bkInstId"], value["bkAsstInstId"])


get_object_definition(InstAssociationDetailInput, strict=True).from_input = _detail_from_input


@strawberry.input
class BatchCreateInstAssociationsInput:
    bk_obj_id: str = strawberry.field(description="Source model id.")
    bk_asst_obj_id: str = strawberry.field(description="Target model id.")
    bk_obj_asst_id: str = strawberry.field(description="Model association id.")
    details: list[InstAssociationDetailInput] = strawberry.field(
        description="The associations to create: at most `CMDBGRAPH_MAX_BATCH_SIZE` (200, "
        "upstream's maximum, unless the server lowers it)."
    )
    dry_run: bool = strawberry.field(
        default=False, description="Run every check and report per index, but write nothing."
    )
    error_policy: ErrorPolicy = strawberry.field(
        default=ErrorPolicy.PARTIAL,
        description="PARTIAL writes the items that pass (upstream's behaviour); "
        "ALL_OR_NOTHING writes nothing unless every item passes.",
    )
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="A retry with the same key and input returns the first reply instead of "
        "running again (also taken from the `Idempotency-Key` header).",
    )


def _batch_from_input(cls: type, value: Mapping[str, Any], context: InputContext) -> object:
    """The batch input as strawberry builds it, but its details in one pass: strawberry would
    convert each of the 200 details on its own (a conversion context and several type checks
    each) only to reach ``_detail_from_input``."""
    definition = get_object_definition(cls, strict=True)
    kwargs: dict[str, object] = {
        field.python_name: None
        for field in definition.fields
        if field.default_value is dataclasses.MISSING
        and field.default_factory is dataclasses.MISSING
    }
    name_of = context.config.name_converter.from_field
    for field in definition.fields:
        name = name_of(field)
        if name not in value:
            continue
        if field.python_name == "details" and isinstance(value[name], list):
            # Non-null objects, coerced by GraphQL already (see _detail_from_input).
            kwargs["details"] = [
                associations.Detail(detail["bkInstId"], detail["bkAsstInstId"])
                for detail in value[name]
            ]
        else:
            kwargs[field.python_name] = context.convert(
                value[name], field.resolve_type(type_definition=definition), name
            )
    return cls(**kwargs)


get_object_definition(BatchCreateInstAssociationsInput, strict=True).from_input = _batch_from_input


@strawberry.input
class CreateModelInput:
    bk_obj_id: str
    bk_obj_name: str
    bk_classification_id: str = "bk_uncategorized"
    bk_obj_icon: str = "icon-cc-default"


@strawberry.input
class NewInstanceInput:
    bk_inst_name: str
    attributes: JSON | None = None


@strawberry.input
class CreateInstancesInput:
    bk_obj_id: str
    instances: list[NewInstanceInput] = strawberry.field(description="At most 200.")


@strawberry.input
class CreateModelAssociationInput:
    bk_obj_id: str
    bk_asst_obj_id: str
    bk_asst_id: str
    mapping: AssociationMapping = AssociationMapping.MANY_TO_MANY
    on_delete: OnDelete = OnDelete.NONE
    bk_obj_asst_id: str | None = strawberry.field(
        default=None, description="Defaults to `{bkObjId}_{bkAsstId}_{bkAsstObjId}`."
    )
    bk_obj_asst_name: str = ""


@strawberry.input
class UpdateModelAssociationInput:
    id: BigInt
    bk_obj_asst_name: str = strawberry.field(description="The one field that changes.")


@strawberry.input
class CreateAssociationKindInput:
    bk_asst_id: str = strawberry.field(
        description="A letter, then letters, digits or underscores, up to 128."
    )
    bk_asst_name: str = ""
    src_des: str = ""
    dest_des: str = ""
    direction: str = strawberry.field(
        default="src_to_dest", description="`none`, `src_to_dest` or `bidirectional`."
    )


@strawberry.input
class UpdateAssociationKindInput:
    id: BigInt
    bk_asst_name: str | None = strawberry.field(default=None, description="Unchanged if null.")
    src_des: str | None = strawberry.field(default=None, description="Unchanged if null.")
    dest_des: str | None = strawberry.field(default=None, description="Unchanged if null.")
    direction: str | None = strawberry.field(
        default=None, description="`none`, `src_to_dest` or `bidirectional`; unchanged if null."
    )


@strawberry.input
class DeleteInstAssociationsInput:
    ids: list[BigInt] = strawberry.field(description="Association ids, at most 500.")
    bk_obj_id: str | None = strawberry.field(
        default=None, description="Only delete associations whose source or target is this model."
    )


@strawberry.input
class InstAssociationFilter:
    ids: list[BigInt] | None = None
    bk_obj_asst_id: str | None = None
    bk_asst_id: str | None = None
    bk_obj_id: str | None = None
    bk_asst_obj_id: str | None = None
    bk_inst_id: BigInt | None = None
    bk_asst_inst_id: BigInt | None = None
    involving_inst_id: BigInt | None = strawberry.field(
        default=None, description="An instance id on either side."
    )
    where: JSON | None = strawberry.field(
        default=None,
        description="Upstream's condition language (MongoDB's operators, as in "
        "find_instance_association: see the README's *Conditions*) on the associations' "
        'fields, e.g. `{"bk_inst_id": {"$in": [11, 13]}, "bk_asst_id": {"$ne": "connect"}}`.',
    )


@strawberry.input
class AuditEntryFilter:
    resource_type: str | None = None
    action: str | None = None
    resource_id: BigInt | None = None
    bk_username: str | None = None
    request_id: str | None = None
