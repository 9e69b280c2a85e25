"""Who is calling, in which language, under which request id."""

from __future__ import annotations

from dataclasses import dataclass

from cmdbgraph.services.errors import ZH


@dataclass(frozen=True, slots=True)
class Caller:
    username: str = ""
    app_code: str = ""
    supplier_account: str = "0"
    language: str = ZH
    request_id: str = ""
    # Off only for trusted local work (the CLI on the local database) and with auth disabled.
    enforce_permissions: bool = True


SYSTEM = Caller(username="cc_system", app_code="cmdbgraph", enforce_permissions=False)
