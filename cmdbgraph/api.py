"""The GraphQL API: ``build_schema(settings)`` puts the resolvers' ``Query``, ``Mutation`` and
``Subscription`` together with the extensions the settings call for, and ``export_sdl`` writes
its SDL.

It sits above ``resolvers/`` (which import ``schema/``); nothing below imports it."""

from __future__ import annotations

from pathlib import Path

import strawberry
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from cmdbgraph.resolvers.mutations import Mutation
from cmdbgraph.resolvers.queries import Query
from cmdbgraph.resolvers.subscriptions import Subscription
from cmdbgraph.schema.extensions import ErrorMasking, RequestLogFields
from cmdbgraph.schema.limits import limit_extensions
from cmdbgraph.schema.scalars import SCALARS
from cmdbgraph.settings import Settings

SDL_PATH = Path(__file__).resolve().parents[1] / "schema.graphql"


class ExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context, with a memory of its own for each subscription event.

    graphql-core 3.3 runs each event of a subscription on a shallow copy of the subscription's
    executor, so every copy shares one memo of the subfields it collected, keyed by the
    identity of lists that are new for each event: the memo would grow with every event (about
    2 kB each) for as long as the subscription lives."""

    def build_per_event_executor(self, payload):
        executor = super().build_per_event_executor(payload)
        if isinstance(getattr(executor, "_relevant_sub_fields", None), dict):
            executor._relevant_sub_fields = {}
        return executor


class Schema(strawberry.Schema):
    def process_errors(self, errors, execution_context=None) -> None:
        # Expected errors (validation, limits, CmdbError) need no log line; ErrorMasking logs
        # the unexpected ones with their traceback.
        return None


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    settings = settings or Settings()
    # Factories: a fresh extension per request; the caches themselves are shared.
    extensions = [
        *limit_extensions(settings),
        lambda: ParserCache(maxsize=1024),
        lambda: ValidationCache(maxsize=1024),
        ErrorMasking,
        RequestLogFields,
    ]
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        execution_context_class=ExecutionContext,
        config=StrawberryConfig(auto_camel_case=True, scalar_map=SCALARS),
    )


def export_sdl(settings: Settings | None = None) -> str:
    return build_schema(settings).as_str() + "\n"
