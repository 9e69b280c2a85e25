"""Mutation payloads and the typed request-level failures."""

from __future__ import annotations

from typing import Annotated

import strawberry

from cmdbgraph.schema.scalars import JSON
from cmdbgraph.schema.types import (
    AssociationKind,
    ErrorCode,
    Instance,
    InstAssociation,
    Model,
    ModelAssociation,
)
from cmdbgraph.services.associations import BatchCreateResult
from cmdbgraph.services.errors import CmdbError, render
from cmdbgraph.services.errors import ErrorCode as ServiceErrorCode


@strawberry.type(description="Why one item of a batch failed.")
class ItemError:
    code: ErrorCode
    bk_error_code: int = strawberry.field(description="Upstream's numeric code.")
    message: str = strawberry.field(description="Upstream's message, in the caller's language.")


@strawberry.type(description="The result of one detail, at its index in the input.")
class BatchItemResult:
    index: int
    ok: bool = strawberry.field(
        description="The item passed every check (created, or would be under dry run or "
        "all-or-nothing)."
    )
    association: InstAssociation | None = strawberry.field(
        description="The created association; null if the item failed or nothing was written."
    )
    error: ItemError | None


def item_results(outcome: BatchCreateResult, language: str) -> list[BatchItemResult]:
    """The typed result of every item of ``outcome``; items failing alike share one error."""
    errors: dict[tuple, ItemError] = {}

    def new_error(code: ServiceErrorCode, args: tuple) -> ItemError:
        return ItemError(code=code, bk_error_code=code.value, message=render(code, args, language))

    def item_error(code: ServiceErrorCode, args: tuple) -> ItemError:
        try:
            shared = errors.get((code, args))
        except TypeError:  # arguments that cannot be a key: not shared
            return new_error(code, args)
        if shared is None:
            shared = errors[code, args] = new_error(code, args)
        return shared

    return [
        BatchItemResult(
            index=item.index,
            ok=item.error is None,
            association=None
            if item.association is None
            else InstAssociation.from_record(item.association),
            error=None if item.error is None else item_error(item.error, item.error_args),
        )
        for item in outcome.items
    ]


def _results(root: BatchCreateInstAssociationsPayload) -> list[BatchItemResult]:
    return item_results(root.outcome, root.language)


@strawberry.type
class BatchCreateInstAssociationsPayload:
    # Built only when the selection asks for them.
    results: list[BatchItemResult] = strawberry.field(
        resolver=_results, description="One per detail, in order."
    )
    created_count: int
    failed_count: int
    written: bool = strawberry.field(
        description="False under dry run, or when ALL_OR_NOTHING refused the batch."
    )
    replayed: bool = strawberry.field(
        description="True when this is the stored reply to an earlier request with the same "
        "idempotency key."
    )
    success_created: JSON = strawberry.field(
        description="Upstream's `success_created`: index (string) to new association id."
    )
    error_msg: JSON = strawberry.field(
        description="Upstream's `error_msg`: index (string) to failure message."
    )
    outcome: strawberry.Private[BatchCreateResult]
    language: strawberry.Private[str]


@strawberry.type(description="The request was refused as a whole; nothing was written.")
class RequestError:
    code: ErrorCode
    bk_error_code: int
    message: str

    @classmethod
    def from_error(cls, error: CmdbError, language: str) -> RequestError:
        return cls(code=error.code, bk_error_code=error.code.value, message=error.message(language))


@strawberry.type(description="The caller lacks a permission; nothing was written.")
class PermissionDenied:
    code: ErrorCode
    bk_error_code: int
    message: str
    permission: JSON = strawberry.field(
        description="Upstream's permission object: what to apply for."
    )

    @classmethod
    def from_error(cls, error: CmdbError, language: str) -> PermissionDenied:
        return cls(
            code=error.code,
            bk_error_code=error.code.value,
            message=error.message(language),
            permission=JSON(error.permission),
        )


def failure(error: CmdbError, context) -> RequestError | PermissionDenied:
    """The typed result for a refused request; noted on the context for the request log.

    An authentication failure is no domain result: it is raised again and fails the request
    (HTTP 401 with a top-level error), as it does before any resolver runs."""
    if error.is_authentication:
        raise error
    context.outcome = str(error.code.value)
    if error.code is ServiceErrorCode.PERMISSION_DENIED:
        return PermissionDenied.from_error(error, context.language)
    return RequestError.from_error(error, context.language)


@strawberry.type
class CreateInstancesPayload:
    instances: list[Instance]


@strawberry.type
class DeleteInstAssociationsPayload:
    deleted_count: int
    deleted: list[InstAssociation]


@strawberry.type
class DeleteModelAssociationPayload:
    deleted: ModelAssociation | None = strawberry.field(
        description="What was deleted; null when nothing had the id (no error, as upstream)."
    )


@strawberry.type
class UpdateAssociationKindPayload:
    kind: AssociationKind | None = strawberry.field(
        description="The kind as it is now; null when nothing had the id (no error, as upstream)."
    )


@strawberry.type
class DeleteAssociationKindPayload:
    deleted: AssociationKind | None = strawberry.field(
        description="What was deleted; null when nothing had the id (no error, as upstream)."
    )


BatchCreateInstAssociationsResult = Annotated[
    BatchCreateInstAssociationsPayload | RequestError | PermissionDenied,
    strawberry.union("BatchCreateInstAssociationsResult"),
]
CreateModelResult = Annotated[
    Model | RequestError | PermissionDenied, strawberry.union("CreateModelResult")
]
CreateInstancesResult = Annotated[
    CreateInstancesPayload | RequestError | PermissionDenied,
    strawberry.union("CreateInstancesResult"),
]
CreateModelAssociationResult = Annotated[
    ModelAssociation | RequestError | PermissionDenied,
    strawberry.union("CreateModelAssociationResult"),
]
DeleteInstAssociationsResult = Annotated[
    DeleteInstAssociationsPayload | RequestError | PermissionDenied,
    strawberry.union("DeleteInstAssociationsResult"),
]
UpdateModelAssociationResult = Annotated[
    ModelAssociation | RequestError | PermissionDenied,
    strawberry.union("UpdateModelAssociationResult"),
]
DeleteModelAssociationResult = Annotated[
    DeleteModelAssociationPayload | RequestError | PermissionDenied,
    strawberry.union("DeleteModelAssociationResult"),
]
CreateAssociationKindResult = Annotated[
    AssociationKind | RequestError | PermissionDenied,
    strawberry.union("CreateAssociationKindResult"),
]
UpdateAssociationKindResult = Annotated[
    UpdateAssociationKindPayload | RequestError | PermissionDenied,
    strawberry.union("UpdateAssociationKindResult"),
]
DeleteAssociationKindResult = Annotated[
    DeleteAssociationKindPayload | RequestError | PermissionDenied,
    strawberry.union("DeleteAssociationKindResult"),
]
