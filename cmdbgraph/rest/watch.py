"""upstream's resource_watch, for the resource ``inst_asst``: the change stream of instance
associations, read by cursor."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import Field
from typing_extensions import TypedDict

from cmdbgraph.rest.declarations import (
    GoStr,
    GoStrList,
    Int64,
    NullIsEmpty,
    NullIsEmptyList,
    RequestModel,
    rest_call,
)
from cmdbgraph.rest.endpoint import Call
from cmdbgraph.services import events
from cmdbgraph.services.errors import exceeds_limit

# This service's own bound (upstream has none); a detail has nine keys.
MAX_FIELDS = 100


class WatchFilter(RequestModel):
    bk_sub_resource: GoStr = Field(
        "", description="A model id: only events whose source or target is of that model."
    )


class ResourceWatchBody(RequestModel):
    bk_resource: GoStr = Field(
        "",
        description="The resource (in the path on native routes): `inst_asst`.",
        examples=["inst_asst"],
    )
    bk_event_types: Annotated[list[GoStr], NullIsEmptyList] = Field(
        [], description="`create`, `update`, `delete` (all when empty).", examples=[["create"]]
    )
    bk_fields: GoStrList = Field(
        [],
        description="Only these keys of each event's detail, in this order (missing: null); "
        "at most 100 (1199035).",
    )
    bk_start_from: Int64 = Field(
        0, description="Unix seconds: the events since then (not with `bk_cursor`)."
    )
    bk_cursor: GoStr = Field(
        "",
        description="The events after this one, as soon as there is one (not with "
        "`bk_start_from`).",
    )
    bk_filter: Annotated[WatchFilter, NullIsEmpty] = WatchFilter()


class WatchEvent(TypedDict):
    bk_cursor: Annotated[str, Field(description="Where to go on from after this event.")]
    bk_resource: str
    bk_event_type: Annotated[str, Field(description='`create` or `delete`; `""` for none.')]
    bk_detail: Annotated[Any, Field(description="The association; null for none.")]


class WatchData(TypedDict):
    bk_watched: Annotated[bool, Field(description="Whether any event came.")]
    bk_events: list[WatchEvent]


@rest_call(
    "resource_watch",
    "POST",
    "/api/v3/event/watch/resource/{bk_resource}",
    data=WatchData,
    summary="Watch instance association events",
    description="upstream's resource_watch for `inst_asst`: each association created or "
    "deleted is an event, written with the change. With `bk_cursor`, the events after it "
    "as soon as one commits, waiting up to CMDBGRAPH_WATCH_WAIT_SECONDS (20 s), then "
    "`bk_watched: false` with a cursor to go on from; with `bk_start_from`, the events since "
    "then; with neither, the newest event. At most 200 events, oldest first. A cursor this "
    "service did not write, or older than the retention (CMDBGRAPH_EVENT_RETENTION_DAYS), "
    "answers 1103007; upstream's other checks answer 1199998 with its words.",
    tag="events",
    required=("bk_resource",),
    documented={"bk_resource": {"enum": [events.INST_ASST]}, "bk_fields": {"maxItems": MAX_FIELDS}},
)
async def resource_watch(call: Call, body: ResourceWatchBody) -> WatchData:
    if len(body.bk_fields) > MAX_FIELDS:
        # Each of up to 200 events is built field by field: a bound on what one reply costs.
        raise exceeds_limit("bk_fields", MAX_FIELDS)
    settings = call.settings
    reply = await events.watch(
        call.db,
        events.WatchRequest(
            resource=call.request.path_params.get("bk_resource", body.bk_resource),
            event_types=tuple(body.bk_event_types),
            cursor=body.bk_cursor,
            start_from=body.bk_start_from,
            sub_resource=body.bk_filter.bk_sub_resource,
        ),
        retention=timedelta(days=settings.event_retention_days),
        # The wait ends well before the request's timeout would.
        wait_seconds=min(settings.watch_wait_seconds, settings.request_timeout_seconds * 0.75),
        max_watches=settings.max_watches,
    )
    if not reply.watched:
        none: WatchEvent = {
            "bk_cursor": reply.cursor,
            "bk_resource": events.INST_ASST,
            "bk_event_type": "",
            "bk_detail": None,
        }
        return {"bk_watched": False, "bk_events": [none]}
    return {
        "bk_watched": True,
        "bk_events": [
            {
                "bk_cursor": events.encode(events.position_of(event)),
                "bk_resource": event.resource,
                "bk_event_type": event.event_type,
                "bk_detail": events.upstream_detail(event, body.bk_fields),
            }
            for event in reply.events
        ],
    }
