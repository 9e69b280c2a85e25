"""Schema extensions: error masking."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from cmdbgraph.db.engine import DatabaseUnavailable
from cmdbgraph.schema.scalars import InvalidValue
from cmdbgraph.services.errors import CmdbError, database_unavailable

log = logging.getLogger("cmdbgraph.graphql")

MASKED_MESSAGE = "Unexpected error."


class RequestLogFields(SchemaExtension):
    """Tells the request log and metrics what ran: the root fields (bounded by the schema),
    the client's operation name, who called, and the outcome."""

    def on_operation(self) -> Iterator[None]:
        yield
        execution = self.execution_context
        context = execution.context
        request = getattr(context, "request", None)
        fields = getattr(getattr(request, "state", None), "log", None)
        if fields is None:
            return
        fields["operation"] = _root_fields(execution)
        fields["client_operation"] = execution.operation_name
        caller = getattr(context, "caller", None)
        if caller is not None:
            fields["app"] = caller.app_code
            fields["user"] = caller.username
        result = execution.result
        if result is not None and result.errors:
            fields["outcome"] = "error"
        else:
            fields["outcome"] = getattr(context, "outcome", None) or "ok"


def _root_fields(execution) -> str:
    """The root field the operation asked for, as a metrics label: a name from the schema,
    ``multiple`` or ``invalid`` (a label made of client-chosen text would let clients grow
    the series without bound)."""
    document = execution.graphql_document
    if document is None:
        return "invalid"
    try:
        operation_type = execution.operation_type
    except RuntimeError:
        return "invalid"
    root = getattr(execution.schema._schema, f"{operation_type.value}_type", None)
    wanted = execution.operation_name
    names: set[str] = set()
    for definition in document.definitions:
        if getattr(definition, "operation", None) is None:
            continue
        name = definition.name.value if definition.name else None
        if wanted is not None and name != wanted:
            continue
        for selection in definition.selection_set.selections:
            field = getattr(getattr(selection, "name", None), "value", None)
            if root is not None and isinstance(field, str) and field in root.fields:
                names.add(field)
        break
    if not names:
        return "invalid"
    return names.pop() if len(names) == 1 else "multiple"


class ErrorMasking(SchemaExtension):
    """Expected errors stay visible, unexpected ones are logged and masked (see ``mask``).

    The HTTP view applies ``mask`` again to what it sends: errors raised before or around the
    operation (a syntax error from the parser cache, a failing extension) never pass here.
    """

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        context = self.execution_context.context
        language = getattr(context, "language", "zh")
        result.errors = [mask(error, language) for error in result.errors]


def mask(error: GraphQLError, language: str) -> GraphQLError:
    """``error`` as the client may see it, with ``extensions.code`` set.

    Visible: GraphQL's own syntax and validation errors (a value a scalar refused among them),
    and ``CmdbError`` raised by a resolver (rendered in the caller's language, with
    ``extensions.bkErrorCode``). Anything else is an internal failure: its text, which may hold
    SQL or paths, never reaches the client. Applying it twice changes nothing.
    """
    original = error.original_error
    if original is None or isinstance(original, GraphQLError | InvalidValue):
        if not (error.extensions or {}).get("code"):
            # Every error carries a code: clients branch on it, not on the message.
            error.extensions = {**(error.extensions or {}), "code": _document_error_code(error)}
        return error
    if isinstance(original, DatabaseUnavailable):
        # Logged once per outage by the database layer; HTTP 503 (see http/replies.py).
        original = database_unavailable()
    if isinstance(original, CmdbError):
        return GraphQLError(
            original.message(language),
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": original.code.name, "bkErrorCode": original.code.value},
        )
    log.error("unexpected error in %s", error.path, exc_info=original)
    return GraphQLError(
        MASKED_MESSAGE,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={"code": "INTERNAL_SERVER_ERROR"},
    )


def _document_error_code(error: GraphQLError) -> str:
    """The code of an error in the document or its variables (found before anything ran)."""
    if error.message.startswith("Syntax Error"):
        return "GRAPHQL_PARSE_FAILED"
    if error.path is None:
        return "GRAPHQL_VALIDATION_FAILED"
    return "BAD_USER_INPUT"
