"""The GraphQL API: ``build_schema(settings)`` puts the resolvers' ``Query``, ``Mutation`` and
``Subscription`` together with the extensions the settings call for, and ``export_sdl`` writes
its SDL.

It sits above ``resolvers/`` (which import ``schema/``); nothing below imports it."""

from __future__ import annotations

from pathlib import Path

import strawberry
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig

from cmdbgraph.resolvers.mutations import Mutation
from cmdbgraph.resolvers.queries import Query
from cmdbgraph.resolvers.subscriptions import Subscription
from cmdbgraph.schema.execution import ExecutionContext
from cmdbgraph.schema.extensions import ErrorMasking, RequestLogFields
from cmdbgraph.schema.limits import limit_extensions
from cmdbgraph.schema.scalars import SCALARS
from cmdbgraph.settings import Settings

SDL_PATH = Path(__file__).resolve().parents[1] / "schema.graphql"


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
