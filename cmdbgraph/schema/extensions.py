"""Schema extensions: error masking."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from cmdbgraph.services.errors import CmdbError

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
        document = execution.graphql_document
        roots: list[str] = []
        if document is not None:
            for definition in document.definitions:
                selection_set = getattr(definition, "selection_set", None)
                if getattr(definition, "operation", None) is not None and selection_set:
                    roots.extend(
                        s.name.value
                        for s in selection_set.selections
                        if getattr(s, "name", None) is not None
                    )
        fields["operation"] = ",".join(sorted(set(roots))[:5]) or "invalid"
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


class ErrorMasking(SchemaExtension):
    """Expected errors stay visible, unexpected ones are logged and masked.

    Visible: GraphQL's own syntax and validation errors, and ``CmdbError`` raised by a resolver
    (rendered in the caller's language, with ``extensions.bkErrorCode``). Anything else is an
    internal failure: its text, which may hold SQL or paths, never reaches the client.
    """

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        context = self.execution_context.context
        language = getattr(context, "language", "zh")
        result.errors = [self._process(error, language) for error in result.errors]

    def _process(self, error: GraphQLError, language: str) -> GraphQLError:
        original = error.original_error
        if original is None or isinstance(original, GraphQLError):
            return error
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
