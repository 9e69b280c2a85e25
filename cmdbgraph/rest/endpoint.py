"""What every REST call shares: reading the body, identifying the caller, parsing the body as
the call declares it, and answering in upstream's envelope (errors included)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from cmdbgraph.db.engine import Database, DatabaseUnavailable
from cmdbgraph.http import gateway, identity
from cmdbgraph.http.jsonbody import BodyError, decode
from cmdbgraph.http.replies import GATEWAY, NATIVE, Envelope
from cmdbgraph.rest.declarations import BadBody, RestCall, parse
from cmdbgraph.services.caller import Caller
from cmdbgraph.services.errors import CmdbError, ErrorCode, database_unavailable, verbatim
from cmdbgraph.services.limits import Limits
from cmdbgraph.settings import Settings

log = logging.getLogger("cmdbgraph.rest")


@dataclass(frozen=True, slots=True)
class Call:
    """One REST call in progress: the request, who makes it, what applies to it."""

    request: Request
    caller: Caller
    raw: dict  # the body as decoded JSON, before the call's typed reading of it

    @property
    def db(self) -> Database:
        return self.request.app.state.db

    @property
    def settings(self) -> Settings:
        return self.request.app.state.settings

    @property
    def limits(self) -> Limits:
        return self.request.app.state.limits

    @property
    def language(self) -> str:
        return self.caller.language


async def read_json_object(request: Request) -> dict:
    """The body as a JSON object; raises ``BadBody`` otherwise.

    An empty body is an empty object, as upstream reads it (every field its zero value): the
    official SDK sends no body for an empty dict.
    """
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = decode(raw)
    except BodyError:
        raise BadBody from None
    if not isinstance(body, dict):
        raise BadBody
    return body


def endpoint(
    name: str, call: RestCall, envelope: Envelope
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint answering ``call`` (under the ESB ``name``) in ``envelope``."""

    async def run(request: Request) -> Response:
        headers = request.headers
        request_id = identity.request_id(headers, request.state)
        language = identity.language(headers)
        log_fields = getattr(request.state, "log", None)
        if log_fields is None:
            log_fields = request.state.log = {}
        log_fields["operation"] = name

        answer = envelope

        def fail(error: CmdbError) -> Response:
            log_fields["outcome"] = str(error.code.value)
            return answer.failure(error, request_id=request_id, language=language)

        if envelope is NATIVE:
            # Upstream's first filter: a gateway token that does not verify ends the request.
            try:
                if gateway.gateway_caller(request) is not None:
                    answer = GATEWAY
            except gateway.GatewayTokenError as error:
                return fail(verbatim(ErrorCode.UNKNOWN, error.text))
        try:
            raw = await read_json_object(request)
            caller = await identity.identify(request, raw)
            if call.precheck is not None:
                call.precheck(request.path_params, raw)
            log_fields["app"] = caller.app_code
            log_fields["user"] = caller.username
            language = caller.language
            body = parse(call.request, raw)
            arguments = {k: v for k, v in raw.items() if k not in identity.BODY_CREDENTIALS}
            data = await call.handler(Call(request=request, caller=caller, raw=arguments), body)
            return answer.success(data, request_id=caller.request_id, language=language)
        except BadBody:
            return fail(call.bad_body() if call.bad_body else CmdbError(ErrorCode.JSON_INVALID))
        except CmdbError as error:
            return fail(error)
        except DatabaseUnavailable:
            # Logged once per outage by the database layer.
            return fail(database_unavailable())
        except Exception:
            log.exception("%s failed (request %s)", name, request_id)
            return fail(CmdbError(ErrorCode.INTERNAL_SERVER_ERROR, (name,)))

    run.__name__ = name
    return run
