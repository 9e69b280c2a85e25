"""GraphQL subscriptions as a client sees them: the app served by uvicorn on a real socket in the
test's event loop (``serving``), and a ``graphql-transport-ws`` client on the ``websockets``
package that shows every message and close code (``Subscriber``)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
from collections.abc import AsyncIterator

import uvicorn
import websockets
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close
from websockets.uri import parse_uri

from tests.support.calls import demo_headers
from tests.support.ports import free_port

PROTOCOL = "graphql-transport-ws"
EVENT_FIELDS = "cursor eventType association { id bkObjAsstId bkInstId bkAsstInstId }"


@contextlib.asynccontextmanager
async def serving(app) -> AsyncIterator[str]:
    """``app`` served on 127.0.0.1 in this event loop; its ws:// URL of /graphql."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise AssertionError("the server stopped before it started")
            await asyncio.sleep(0.02)
        yield f"ws://127.0.0.1:{port}/graphql"
    finally:
        server.should_exit = True
        done, _ = await asyncio.wait({task}, timeout=30)
        if not done:
            raise AssertionError(
                "the server did not stop within 30 s; its tasks:\n" + _stacks(task)
            )
        task.result()


def _stacks(server: asyncio.Task) -> str:
    """Where every other task of the loop waits (what keeps a server from stopping)."""
    out = io.StringIO()
    for other in asyncio.all_tasks():
        if other is not asyncio.current_task():
            other.print_stack(limit=12, file=out)
    server.cancel()
    return out.getvalue()


def demo_payload() -> dict:
    """The demo credentials as a connection_init payload: the HTTP headers tests send."""
    return dict(demo_headers())


class Closed(Exception):
    """The server closed the connection: its code and reason."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


class Subscriber:
    """One websocket speaking ``graphql-transport-ws``."""

    def __init__(self, ws) -> None:
        self.ws = ws

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls, url: str, payload: dict | None = None, *, init: bool = True, **options
    ) -> AsyncIterator[Subscriber]:
        """Connected (and, with ``init``, acknowledged with ``payload``, the demo credentials
        by default)."""
        async with websockets.connect(url, subprotocols=[PROTOCOL], **options) as ws:
            subscriber = cls(ws)
            if init:
                await subscriber.send(
                    {
                        "type": "connection_init",
                        "payload": demo_payload() if payload is None else payload,
                    }
                )
                ack = await subscriber.receive()
                assert ack["type"] == "connection_ack", ack
            yield subscriber

    async def send(self, message: object) -> None:
        await self.ws.send(message if isinstance(message, str | bytes) else json.dumps(message))

    async def receive(self, seconds: float = 10) -> dict:
        """The next message; ``Closed`` when the server closed instead."""
        try:
            text = await asyncio.wait_for(self.ws.recv(), seconds)
        except ConnectionClosed as closed:
            raise Closed(
                closed.rcvd.code if closed.rcvd else None, closed.rcvd.reason if closed.rcvd else ""
            ) from None
        assert isinstance(text, str), "the server sends text frames"
        return json.loads(text)

    async def closed(self, seconds: float = 10) -> Closed:
        """The close the server sends next (messages before it are skipped)."""
        while True:
            try:
                await self.receive(seconds)
            except Closed as closed:
                return closed

    async def subscribe(self, ident: str, query: str, variables: dict | None = None) -> None:
        payload: dict = {"query": query}
        if variables is not None:
            payload["variables"] = variables
        await self.send({"id": ident, "type": "subscribe", "payload": payload})

    async def events(self, ident: str, count: int, seconds: float = 10) -> list[dict]:
        """The next ``count`` events of subscription ``ident``."""
        found: list[dict] = []
        while len(found) < count:
            message = await self.receive(seconds)
            assert message.get("id") == ident and message["type"] == "next", message
            assert "errors" not in message["payload"], message
            found.append(message["payload"]["data"]["instAssociationEvents"])
        return found

    async def quiet(self, seconds: float) -> None:
        """Nothing arrives for ``seconds``."""
        with contextlib.suppress(TimeoutError):
            message = await asyncio.wait_for(self.ws.recv(), seconds)
            raise AssertionError(f"unexpected message: {message}")


def subscription(arguments: str = "", fields: str = EVENT_FIELDS) -> str:
    args = f"({arguments})" if arguments else ""
    return f"subscription Events {{ instAssociationEvents{args} {{ {fields} }} }}"


class StalledClient:
    """A subscriber that stops reading once it has subscribed: a blocking socket with a small
    receive buffer, speaking the protocol through ``websockets``' sans-I/O client, so that
    nothing reads behind the test's back. ``finish()`` reads what is left: the messages the
    server had sent, then how the connection ended."""

    def __init__(self, url: str, payload: dict, query: str) -> None:

        host, port = url.split("//")[1].split("/")[0].split(":")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect((host, int(port)))
        self.protocol = ClientProtocol(parse_uri(url), subprotocols=[PROTOCOL], max_size=None)
        self.protocol.send_request(self.protocol.connect())
        self._flush()
        while not self.protocol.events_received() and self.protocol.state.name == "CONNECTING":
            self.protocol.receive_data(self.sock.recv(65536))
        self.protocol.send_text(
            json.dumps({"type": "connection_init", "payload": payload}).encode()
        )
        self._flush()
        assert self._next()["type"] == "connection_ack"
        self.protocol.send_text(
            json.dumps({"id": "s", "type": "subscribe", "payload": {"query": query}}).encode()
        )
        self._flush()

    def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.sock.sendall(data)

    def _next(self) -> dict:
        while True:
            for frame in self.protocol.events_received():
                if frame.opcode.name == "TEXT":
                    return json.loads(frame.data)
            data = self.sock.recv(65536)
            if not data:
                raise Closed(None, "")
            self.protocol.receive_data(data)

    def first_event(self) -> dict:
        message = self._next()
        return message["payload"]["data"]["instAssociationEvents"]

    def finish(self) -> tuple[int, Closed]:
        """Read everything left: how many events came, and how the connection ended."""
        self.sock.settimeout(30)
        count = 0
        try:
            while True:
                for frame in self.protocol.events_received():
                    if frame.opcode.name == "TEXT":
                        count += 1
                    elif frame.opcode.name == "CLOSE":
                        close = Close.parse(frame.data)
                        return count, Closed(close.code, close.reason)
                try:
                    data = self.sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                if not data:
                    return count, Closed(None, "")
                self.protocol.receive_data(data)
        finally:
            self.sock.close()
