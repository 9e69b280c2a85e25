"""The per-request GraphQL context and its DataLoaders: what the types and resolvers read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

from starlette.requests import HTTPConnection
from starlette.responses import Response
from strawberry.dataloader import DataLoader
from strawberry.types import Info as StrawberryInfo

from cmdbgraph.db.engine import Database
from cmdbgraph.services import associations, catalog, instances, paging
from cmdbgraph.services.caller import Caller
from cmdbgraph.services.limits import Limits
from cmdbgraph.services.records import Instance as InstanceRecord
from cmdbgraph.services.records import InstAssociation, Model
from cmdbgraph.settings import Settings


class Loaders:
    """One DataLoader per lookup: one ``IN (...)`` query per batch of keys."""

    def __init__(self, db: Database, *, cache: bool = True) -> None:
        async def load_instances(keys: list[int]) -> list[InstanceRecord | None]:
            found = await instances.instances_by_id(db, keys)
            return [found.get(key) for key in keys]

        async def load_models(keys: list[str]) -> list[Model | None]:
            found = await catalog.models_by_id(db, keys)
            return [found.get(key) for key in keys]

        def by_page_size(fetch):
            # Keys are (instance id, page size): one query per page size asked for.
            async def load(keys: list[tuple[int, int]]) -> list[list[InstAssociation]]:
                found: dict[tuple[int, int], list[InstAssociation]] = {}
                for limit in {limit for _, limit in keys}:
                    ids = [inst_id for inst_id, size in keys if size == limit]
                    for inst_id, rows in (await fetch(db, ids, limit=limit)).items():
                        found[inst_id, limit] = rows
                return [found[key] for key in keys]

            return load

        def by_window(as_target: bool):
            # Keys are (instance id, window): one batch per window asked for.
            async def load(keys: list[tuple[int, paging.Window]]) -> list[paging.Slice]:
                found: dict[tuple[int, paging.Window], paging.Slice] = {}
                for win in {win for _, win in keys}:
                    ids = [inst_id for inst_id, w in keys if w == win]
                    slices = await associations.association_slices(
                        db, as_target=as_target, inst_ids=ids, win=win
                    )
                    for inst_id, found_slice in slices.items():
                        found[inst_id, win] = found_slice
                return [found[key] for key in keys]

            return load

        self.instance = DataLoader(load_fn=load_instances, cache=cache)
        self.source_slices = DataLoader(load_fn=by_window(False), cache=cache)
        self.target_slices = DataLoader(load_fn=by_window(True), cache=cache)
        self.model = DataLoader(load_fn=load_models, cache=cache)
        self.associations_as_source = DataLoader(
            load_fn=by_page_size(associations.associations_by_source), cache=cache
        )
        self.associations_as_target = DataLoader(
            load_fn=by_page_size(associations.associations_by_target), cache=cache
        )


@dataclass
class GraphQLContext:
    request: HTTPConnection  # a Request, or the WebSocket of a subscription
    response: Response | None
    db: Database
    settings: Settings
    limits: Limits
    caller: Caller
    loaders: Loaders = field(init=False)
    # Set when a mutation answers with a typed failure: the request log's outcome.
    outcome: str | None = None
    # Loads are cached for the request; a websocket's operations, which live long, read anew.
    cache_loads: bool = True
    # A websocket's connection_init payload.
    connection_params: dict | None = None

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.db, cache=self.cache_loads)

    @property
    def language(self) -> str:
        return self.caller.language


Info: TypeAlias = StrawberryInfo[GraphQLContext, None]
