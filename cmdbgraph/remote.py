"""A client of a running cmdbgraph (or BlueKing CMDB) server's REST shim, for bulk import."""

from __future__ import annotations

import httpx
import orjson

from cmdbgraph.services.associations import Detail
from cmdbgraph.services.errors import MESSAGES, CmdbError, ErrorCode
from cmdbgraph.services.limits import IMPORT_CHUNK
from cmdbgraph.services.records import ModelAssociation, field_names


class RemoteError(Exception):
    """The server could not be reached or did not answer in upstream's envelope."""


class RemoteTarget:
    """Sends batches to ``base_url`` over the native routes, with SDK-style credentials."""

    batch_size = IMPORT_CHUNK  # upstream's maximum per call

    def __init__(
        self,
        base_url: str,
        *,
        app_code: str,
        app_secret: str,
        username: str = "",
        token: str = "",
        timeout: float = 60.0,
    ) -> None:
        authorization = {"bk_app_code": app_code, "bk_app_secret": app_secret}
        if username:
            authorization["bk_username"] = username
        if token:
            authorization["bk_token"] = token
        self.client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            headers={
                "X-Bkapi-Authorization": orjson.dumps(authorization).decode(),
                "Blueking-Language": "en",
            },
        )
        self._model_associations: dict[str, ModelAssociation | None] = {}

    async def close(self) -> None:
        await self.client.aclose()

    async def _call(self, path: str, body: dict):
        try:
            response = await self.client.post(path, json=body)
        except httpx.HTTPError as error:
            raise RemoteError(f"{self.client.base_url}{path}: {error}") from None
        try:
            envelope = response.json()
            code = envelope["bk_error_code"]
        except (ValueError, KeyError, TypeError):
            raise RemoteError(
                f"{path} answered HTTP {response.status_code} without a BlueKing envelope"
            ) from None
        if code != 0:
            try:
                known = ErrorCode(code)
            except ValueError:
                # cmdbgraph says what to do about it beside upstream's message.
                hint = response.headers.get("X-Cmdbgraph-Hint")
                detail = f" ({hint})" if hint else ""
                raise RemoteError(
                    f"{path}: {code} {envelope.get('bk_error_msg')}{detail}"
                ) from None
            if known in (
                ErrorCode.CALL_SOURCE_AUTHENTICATION_FAILED,
                ErrorCode.AUTHORIZATION_QUERY_FAILED,
            ):
                # cmdbgraph says what to do about it beside upstream's message.
                hint = response.headers.get("X-Cmdbgraph-Hint")
                detail = f" ({hint})" if hint else ""
                raise RemoteError(f"{path}: {code} {envelope.get('bk_error_msg')}{detail}")
            raise CmdbError(known, permission=envelope.get("permission"))
        return envelope["data"]

    async def model_association(self, bk_obj_asst_id: str) -> ModelAssociation | None:
        if bk_obj_asst_id not in self._model_associations:
            found = await self._call(
                "/api/v3/find/objectassociation", {"condition": {"bk_obj_asst_id": bk_obj_asst_id}}
            )
            self._model_associations[bk_obj_asst_id] = (
                ModelAssociation(**{name: found[0][name] for name in field_names(ModelAssociation)})
                if found
                else None
            )
        return self._model_associations[bk_obj_asst_id]

    async def resolve_names(self, bk_obj_id: str, names: list[str]) -> dict[str, int]:
        # By GraphQL: upstream's instance searches refuse its built-in models (hosts...).
        if not names:
            return {}
        data = await self._graphql(
            "query Names($obj: String!, $where: JSON!, $limit: Int!) { instances(bkObjId: $obj,"
            " where: $where, limit: $limit) { items { bkInstId bkInstName } } }",
            {"obj": bk_obj_id, "where": {"bk_inst_name": {"$in": names}}, "limit": len(names)},
        )
        return {i["bkInstName"]: i["bkInstId"] for i in data["instances"]["items"]}

    async def _graphql(self, query: str, variables: dict) -> dict:
        try:
            response = await self.client.post(
                "/graphql", json={"query": query, "variables": variables}
            )
        except httpx.HTTPError as error:
            raise RemoteError(f"{self.client.base_url}/graphql: {error}") from None
        try:
            reply = response.json()
        except ValueError:
            raise RemoteError(f"/graphql: HTTP {response.status_code}, not JSON") from None
        errors = reply.get("errors") if isinstance(reply, dict) else None
        if errors or not isinstance(reply, dict) or not reply.get("data"):
            message = errors[0].get("message") if errors else f"HTTP {response.status_code}"
            raise RemoteError(f"/graphql: {message}")
        return reply["data"]

    async def create(self, model_association: ModelAssociation, details: list[Detail]):
        data = await self._call(
            "/api/v3/createmany/instassociation",
            {
                "bk_obj_id": model_association.bk_obj_id,
                "bk_asst_obj_id": model_association.bk_asst_obj_id,
                "bk_obj_asst_id": model_association.bk_obj_asst_id,
                "details": [
                    {"bk_inst_id": d.bk_inst_id, "bk_asst_inst_id": d.bk_asst_inst_id}
                    for d in details
                ],
            },
        )
        created = data.get("success_created") or {}
        errors = data.get("error_msg") or {}
        outcomes: list[tuple[int | None, int | None, str | None]] = []
        for index in range(len(details)):
            key = str(index)
            if key in created:
                outcomes.append((created[key], None, None))
            else:
                message = errors.get(key, "")
                outcomes.append((None, _code_of(message), message))
        return outcomes


def _code_of(message: str) -> int:
    """The item's code from its English message (upstream's reply drops per-item codes)."""
    for code, (_, english) in MESSAGES.items():
        if "%s" not in english and english == message:
            return code.value
    if message.startswith("the associations ") and message.endswith(" already exist"):
        return ErrorCode.ASSOCIATION_ALREADY_EXISTS.value
    return 0
