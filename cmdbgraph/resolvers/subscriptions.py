"""Subscription resolvers: the change stream, as it commits (``services.events``)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import timedelta

import strawberry

from cmdbgraph.db.engine import Database
from cmdbgraph.schema.context import Info
from cmdbgraph.schema.types import (
    InstAssociation,
    InstAssociationEvent,
    InstAssociationEventType,
)
from cmdbgraph.services import events


def _event(event: events.Event) -> InstAssociationEvent:
    return InstAssociationEvent(
        cursor=events.encode(events.position_of(event)),
        event_type=InstAssociationEventType(event.event_type),
        create_time=event.create_time,
        association=InstAssociation.from_record(events.association_of(event)),
    )


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Every instance association created or deleted, once each, in commit "
        "order, as it commits in any server process. From now, or after the event whose "
        "`cursor` is given as `after` (a client that lost its connection resumes with its last "
        "cursor: no gap, no duplicate). A cursor older than the event retention is refused with "
        "EVENT_NODE_NOT_FOUND (1103007). Filters: the association's model association, a model "
        "on either side, the event types (all when not given)."
    )
    async def inst_association_events(
        self,
        info: Info,
        after: str | None = None,
        bk_obj_asst_id: str | None = None,
        bk_obj_id: str | None = None,
        event_types: list[InstAssociationEventType] | None = None,
    ) -> AsyncGenerator[InstAssociationEvent, None]:
        # Checked here, before the stream starts: a refusal is the protocol's ``error``
        # message, not an event.
        context = info.context
        settings = context.settings
        position = events.start(after, retention=timedelta(days=settings.event_retention_days))
        events.FOLLOWERS.check(settings.max_subscriptions)
        flt = events.StreamFilter(
            event_types=frozenset(kind.value for kind in event_types or ()),
            bk_obj_id=bk_obj_id,
            bk_obj_asst_id=bk_obj_asst_id,
        )
        begin = position.id if position is not None else await events.head(context.db)
        return _stream(context.db, begin, flt, settings.max_subscriptions)


async def _stream(
    db: Database, after: int, flt: events.StreamFilter, limit: int
) -> AsyncGenerator[InstAssociationEvent, None]:
    with events.FOLLOWERS.take(limit):
        async for event in events.follow(db, after, flt):
            yield _event(event)
