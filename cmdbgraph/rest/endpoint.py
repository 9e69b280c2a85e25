"""The machinery every REST call shares: parsing, identifying the caller, error handling."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from cmdbgraph.db.engine import Database, DatabaseUnavailable
from cmdbgraph.http import identity
from cmdbgraph.http.replies import Envelope
from cmdbgraph.rest.envelope import BadRequestBody, read_json_object
from cmdbgraph.services.caller import Caller
from cmdbgraph.services.errors import CmdbError, ErrorCode, database_unavailable
from cmdbgraph.settings import Settings

log = logging.getLogger("cmdbgraph.rest")


@dataclass(frozen=True, slots=True)
class Call:
    """One REST call, parsed: its body, who makes it, and how to answer."""

    request: Request
    body: dict
    caller: Caller
    envelope: Envelope

    @property
    def db(self) -> Database:
        return self.request.app.state.db

    @property
    def settings(self) -> Settings:
        return self.request.app.state.settings

    @property
    def language(self) -> str:
        return self.caller.language

    def success(self, data) -> Response:
        return self.envelope.success(
            data, request_id=self.caller.request_id, language=self.caller.language
        )


Handler = Callable[[Call], Awaitable[Response]]


def endpoint(name: str, handler: Handler, envelope: Envelope):
    """A Starlette endpoint running ``handler`` with upstream's error handling around it."""

    async def run(request: Request) -> Response:
        headers = request.headers
        request_id = identity.request_id(headers, request.state)
        language = identity.language(headers)
        log_fields = getattr(request.state, "log", None)
        if log_fields is None:
            log_fields = request.state.log = {}
        log_fields["operation"] = name

        def fail(error: CmdbError) -> Response:
            log_fields["outcome"] = str(error.code.value)
            return envelope.failure(error, request_id=request_id, language=language)

        try:
            body = await read_json_object(request)
            caller = await identity.identify(request, body)
            log_fields["app"] = caller.app_code
            log_fields["user"] = caller.username
            language = caller.language
            return await handler(Call(request=request, body=body, caller=caller, envelope=envelope))
        except BadRequestBody:
            return fail(CmdbError(ErrorCode.JSON_INVALID))
        except CmdbError as error:
            return fail(error)
        except DatabaseUnavailable:
            # Logged once per outage by the database layer.
            return fail(database_unavailable())
        except Exception:
            log.exception("%s failed (request %s)", name, request_id)
            return fail(CmdbError(ErrorCode.INTERNAL, (name,)))

    run.__name__ = name
    return run
