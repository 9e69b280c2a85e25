"""``build_schema(settings)``: the GraphQL schema, its extensions built from settings."""

from __future__ import annotations

from pathlib import Path

import strawberry
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig

from cmdbgraph.resolvers.mutations import Mutation
from cmdbgraph.resolvers.queries import Query
from cmdbgraph.schema.extensions import ErrorMasking
from cmdbgraph.settings import Settings

SDL_PATH = Path(__file__).resolve().parents[2] / "schema.graphql"


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    settings = settings or Settings()
    # Factories: a fresh extension per request; the caches themselves are shared.
    extensions = [
        lambda: ParserCache(maxsize=1024),
        lambda: ValidationCache(maxsize=1024),
        ErrorMasking,
    ]
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        extensions=extensions,
        config=StrawberryConfig(auto_camel_case=True),
    )


def export_sdl(settings: Settings | None = None) -> str:
    return build_schema(settings).as_str() + "\n"
