"""Schema extensions: error masking."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from cmdbgraph.services.errors import CmdbError

log = logging.getLogger("cmdbgraph.graphql")

MASKED_MESSAGE = "Unexpected error."


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
