"""The machinery every REST call shares: parsing, identifying the caller, error handling."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from cmdbgraph.db.engine import Database
from cmdbgraph.rest import credentials as creds
from cmdbgraph.rest.envelope import BadRequestBody, Envelope, read_json_object
from cmdbgraph.services.caller import Caller
from cmdbgraph.services.errors import CmdbError, ErrorCode
from cmdbgraph.settings import Settings

log = logging.getLogger("cmdbgraph.rest")

ESB = Envelope(esb=True)
NATIVE = Envelope(esb=False)


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

    def failure(self, error: CmdbError) -> Response:
        return self.envelope.failure(
            error, request_id=self.caller.request_id, language=self.caller.language
        )


Handler = Callable[[Call], Awaitable[Response]]


def endpoint(name: str, handler: Handler, envelope: Envelope):
    """A Starlette endpoint running ``handler`` with upstream's error handling around it."""

    async def run(request: Request) -> Response:
        headers = request.headers
        request_id = creds.request_id(headers, request.state)
        language = creds.language(headers)
        log_fields = getattr(request.state, "log", None)
        if log_fields is None:
            log_fields = request.state.log = {}
        log_fields["operation"] = name
        try:
            body = await read_json_object(request)
        except BadRequestBody:
            log_fields["outcome"] = str(ErrorCode.JSON_INVALID.value)
            return envelope.failure(
                CmdbError(ErrorCode.JSON_INVALID), request_id=request_id, language=language
            )
        try:
            caller = await creds.identify(request, body)
        except CmdbError as error:
            log_fields["outcome"] = str(error.code.value)
            return envelope.failure(error, request_id=request_id, language=language)
        except Exception:
            log.exception("%s: identifying the caller failed (request %s)", name, request_id)
            log_fields["outcome"] = str(ErrorCode.INTERNAL.value)
            return envelope.failure(
                CmdbError(ErrorCode.INTERNAL, (name,), http_status=500),
                request_id=request_id,
                language=language,
            )
        log_fields["app"] = caller.app_code
        log_fields["user"] = caller.username
        call = Call(request=request, body=body, caller=caller, envelope=envelope)
        try:
            return await handler(call)
        except BadRequestBody:
            log_fields["outcome"] = str(ErrorCode.JSON_INVALID.value)
            return call.failure(CmdbError(ErrorCode.JSON_INVALID))
        except CmdbError as error:
            log_fields["outcome"] = str(error.code.value)
            return call.failure(error)
        except Exception:
            log.exception("%s failed (request %s)", name, request_id)
            log_fields["outcome"] = str(ErrorCode.INTERNAL.value)
            return call.failure(CmdbError(ErrorCode.INTERNAL, (name,), http_status=500))

    run.__name__ = name
    return run
