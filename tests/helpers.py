"""The helpers that used to live here, for code that still imports them: they are in the test
toolkit, ``tests/support/``; import them from there."""

from tests.support.calls import (
    BATCH_MUTATION,
    DEMO_CREDENTIALS,
    ESB_PATH,
    NATIVE_PATH,
    batch_input,
    demo_headers,
    graphql,
    rest_body,
)
from tests.support.databases import count_statements, row_counts, writes_nothing
from tests.support.ports import free_port
from tests.support.servers import LiveServer, live_server, uvicorn_server

__all__ = [
    "BATCH_MUTATION",
    "DEMO_CREDENTIALS",
    "ESB_PATH",
    "NATIVE_PATH",
    "LiveServer",
    "batch_input",
    "count_statements",
    "demo_headers",
    "free_port",
    "graphql",
    "live_server",
    "rest_body",
    "row_counts",
    "uvicorn_server",
    "writes_nothing",
]
