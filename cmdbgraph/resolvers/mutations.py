"""Mutation resolvers. Request-level failures come back as typed results, never as crashes."""

from __future__ import annotations

from datetime import timedelta
from typing import cast

import strawberry

from cmdbgraph.schema.context import Info
from cmdbgraph.schema.inputs import (
    BatchCreateInstAssociationsInput,
    CreateAssociationKindInput,
    CreateInstancesInput,
    CreateModelAssociationInput,
    CreateModelInput,
    DeleteInstAssociationsInput,
    UpdateAssociationKindInput,
    UpdateModelAssociationInput,
)
from cmdbgraph.schema.payloads import (
    BatchCreateInstAssociationsPayload,
    BatchCreateInstAssociationsResult,
    CreateAssociationKindResult,
    CreateInstancesPayload,
    CreateInstancesResult,
    CreateModelAssociationResult,
    CreateModelResult,
    DeleteAssociationKindPayload,
    DeleteAssociationKindResult,
    DeleteInstAssociationsPayload,
    DeleteInstAssociationsResult,
    DeleteModelAssociationPayload,
    DeleteModelAssociationResult,
    UpdateAssociationKindPayload,
    UpdateAssociationKindResult,
    UpdateModelAssociationResult,
    failure,
)
from cmdbgraph.schema.scalars import JSON, BigInt
from cmdbgraph.schema.types import (
    AssociationKind,
    Instance,
    InstAssociation,
    Model,
    ModelAssociation,
)
from cmdbgraph.services import associations, catalog, instances, kinds
from cmdbgraph.services.errors import CmdbError, parameter_invalid


@strawberry.type
class AssociationMutations:
    @strawberry.mutation(
        description="Create instance associations of one model association (up to "
        "`CMDBGRAPH_MAX_BATCH_SIZE`, 200 by default), with a "
        "result per index (BlueKing's batch_create_instance_association)."
    )
    async def batch_create_inst_associations(
        self, info: Info, input: BatchCreateInstAssociationsInput
    ) -> BatchCreateInstAssociationsResult:
        context = info.context
        language = context.language
        request = associations.BatchCreateRequest(
            bk_obj_id=input.bk_obj_id,
            bk_asst_obj_id=input.bk_asst_obj_id,
            bk_obj_asst_id=input.bk_obj_asst_id,
            # Already ``Detail`` values: the input type builds them (see schema/inputs.py).
            details=cast(list[associations.Detail], input.details),
            dry_run=input.dry_run,
            policy=input.error_policy,
            # An empty key, in the input or the header, means no key.
            idempotency_key=input.idempotency_key
            or context.request.headers.get("idempotency-key")
            or None,
        )
        try:
            result = await associations.batch_create(
                context.db,
                context.caller,
                request,
                limits=context.limits,
                idempotency_ttl=timedelta(seconds=context.settings.idempotency_ttl_seconds),
            )
        except CmdbError as error:
            return failure(error, context)
        return BatchCreateInstAssociationsPayload(
            outcome=result,
            language=language,
            created_count=result.created_count,
            failed_count=result.failed_count,
            written=result.written,
            replayed=result.replayed,
            success_created=JSON(result.success_created()),
            error_msg=JSON(result.error_msg(language)),
        )

    @strawberry.mutation(description="Delete instance associations by id, in one transaction.")
    async def delete_inst_associations(
        self, info: Info, input: DeleteInstAssociationsInput
    ) -> DeleteInstAssociationsResult:
        context = info.context
        try:
            deleted = await associations.delete_associations(
                context.db,
                context.caller,
                input.ids,
                bk_obj_id=input.bk_obj_id,
                limits=context.limits,
            )
        except CmdbError as error:
            return failure(error, context)
        return DeleteInstAssociationsPayload(
            deleted_count=len(deleted), deleted=[InstAssociation.from_record(a) for a in deleted]
        )


@strawberry.type
class CatalogMutations:
    @strawberry.mutation(description="Create a model.")
    async def create_model(self, info: Info, input: CreateModelInput) -> CreateModelResult:
        context = info.context
        try:
            model = await catalog.create_model(
                context.db,
                context.caller,
                catalog.NewModel(
                    bk_obj_id=input.bk_obj_id,
                    bk_obj_name=input.bk_obj_name,
                    bk_classification_id=input.bk_classification_id,
                    bk_obj_icon=input.bk_obj_icon,
                ),
            )
        except CmdbError as error:
            return failure(error, context)
        return Model.from_record(model)

    @strawberry.mutation(description="Create an association between two models.")
    async def create_model_association(
        self, info: Info, input: CreateModelAssociationInput
    ) -> CreateModelAssociationResult:
        context = info.context
        try:
            created = await catalog.create_model_association(
                context.db,
                context.caller,
                catalog.NewModelAssociation(
                    bk_obj_id=input.bk_obj_id,
                    bk_asst_obj_id=input.bk_asst_obj_id,
                    bk_asst_id=input.bk_asst_id,
                    mapping=input.mapping.value,
                    on_delete=input.on_delete.value,
                    bk_obj_asst_id=input.bk_obj_asst_id,
                    bk_obj_asst_name=input.bk_obj_asst_name,
                ),
            )
        except CmdbError as error:
            return failure(error, context)
        return ModelAssociation.from_record(created)

    @strawberry.mutation(
        description="Rename a model association (its name is the one field that changes)."
    )
    async def update_model_association(
        self, info: Info, input: UpdateModelAssociationInput
    ) -> UpdateModelAssociationResult:
        context = info.context
        try:
            updated = await catalog.update_model_association(
                context.db, context.caller, input.id, input.bk_obj_asst_name
            )
        except CmdbError as error:
            return failure(error, context)
        return ModelAssociation.from_record(updated)

    @strawberry.mutation(
        description="Delete a model association that no instance association uses."
    )
    async def delete_model_association(
        self, info: Info, id: BigInt
    ) -> DeleteModelAssociationResult:
        context = info.context
        try:
            deleted = await catalog.delete_model_association(context.db, context.caller, id)
        except CmdbError as error:
            return failure(error, context)
        return DeleteModelAssociationPayload(
            deleted=None if deleted is None else ModelAssociation.from_record(deleted)
        )

    @strawberry.mutation(description="Create an association kind.")
    async def create_association_kind(
        self, info: Info, input: CreateAssociationKindInput
    ) -> CreateAssociationKindResult:
        context = info.context
        try:
            created = await kinds.create_kind(
                context.db,
                context.caller,
                kinds.NewKind(
                    bk_asst_id=input.bk_asst_id,
                    bk_asst_name=input.bk_asst_name,
                    src_des=input.src_des,
                    dest_des=input.dest_des,
                    direction=input.direction,
                ),
            )
        except CmdbError as error:
            return failure(error, context)
        return AssociationKind.from_record(created)

    @strawberry.mutation(description="Change an association kind's name, words or direction.")
    async def update_association_kind(
        self, info: Info, input: UpdateAssociationKindInput
    ) -> UpdateAssociationKindResult:
        context = info.context
        try:
            updated = await kinds.update_kind(
                context.db,
                context.caller,
                input.id,
                kinds.KindTexts(
                    bk_asst_name=input.bk_asst_name,
                    src_des=input.src_des,
                    dest_des=input.dest_des,
                    direction=input.direction,
                ),
            )
        except CmdbError as error:
            return failure(error, context)
        return UpdateAssociationKindPayload(
            kind=None if updated is None else AssociationKind.from_record(updated)
        )

    @strawberry.mutation(description="Delete an association kind that no model association uses.")
    async def delete_association_kind(self, info: Info, id: BigInt) -> DeleteAssociationKindResult:
        context = info.context
        try:
            deleted = await kinds.delete_kind(context.db, context.caller, id)
        except CmdbError as error:
            return failure(error, context)
        return DeleteAssociationKindPayload(
            deleted=None if deleted is None else AssociationKind.from_record(deleted)
        )


@strawberry.type
class InstanceMutations:
    @strawberry.mutation(description="Create up to 200 instances of one model, all or none.")
    async def create_instances(
        self, info: Info, input: CreateInstancesInput
    ) -> CreateInstancesResult:
        context = info.context
        try:
            created = await instances.create_instances(
                context.db,
                context.caller,
                input.bk_obj_id,
                [
                    instances.NewInstance(
                        bk_inst_name=item.bk_inst_name, attributes=_attributes(item.attributes)
                    )
                    for item in input.instances
                ],
                limits=context.limits,
            )
        except CmdbError as error:
            return failure(error, context)
        return CreateInstancesPayload(instances=[Instance.from_record(i) for i in created])


def _attributes(value: object) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise parameter_invalid("attributes")
    return value


@strawberry.type
class Mutation(AssociationMutations, CatalogMutations, InstanceMutations):
    pass
