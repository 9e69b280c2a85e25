"""The README's examples, run in the README's order against a fresh demo server (a real
`cmdbgraph serve`), answer exactly what the README shows: the GraphQL mutation, the upstream
documentation's curl request, the official SDK call."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import httpx

from tests.support.calls import demo_headers

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(text: str) -> list[tuple[str, str]]:
    """The README's fenced blocks, in order: (language, body)."""
    return re.findall(r"```(\w*)\n(.*?)```", text, re.S)


def after(found: list[tuple[str, str]], language: str, containing: str) -> tuple[str, str]:
    """The first ``language`` block holding ``containing``, and the json block that follows."""
    for index, (kind, body) in enumerate(found):
        if kind == language and containing in body:
            following = next(b for k, b in found[index + 1 :] if k == "json")
            return body, following
    raise AssertionError(f"no {language} block with {containing!r} in the README")


def shown(text: str) -> dict:
    """A reply as the README shows it (its request id is elided as …)."""
    return json.loads(text)


ELIDED = "…"


def as_shown(reply: object, shown_: object) -> object:
    """``reply`` with what the README elides as … (a time, a request id) put back as …, so
    that it compares equal to the README where everything else does."""
    if shown_ == ELIDED:
        return ELIDED
    if isinstance(reply, dict) and isinstance(shown_, dict):
        return {k: as_shown(v, shown_.get(k)) for k, v in reply.items()}
    if isinstance(reply, list) and isinstance(shown_, list) and len(reply) == len(shown_):
        return [as_shown(r, e) for r, e in zip(reply, shown_, strict=True)]
    return reply


def without_request_id(reply: dict) -> dict:
    assert reply["request_id"]
    return {**reply, "request_id": "…"}


def test_the_readme_examples_answer_what_the_readme_shows(demo_server):
    found = blocks(README.read_text(encoding="utf-8"))

    mutation, expected = after(found, "graphql", "batchCreateInstAssociations")
    reply = httpx.post(
        f"{demo_server}/graphql", json={"query": mutation}, headers=demo_headers(), timeout=30
    ).json()
    assert reply["data"]["batchCreateInstAssociations"] == shown(expected)

    curl, expected = after(found, "sh", f"curl -s http://127.0.0.1:8000{DOCUMENTED}")
    words = shlex.split(curl)
    url = words[words.index("-s") + 1].replace("http://127.0.0.1:8000", demo_server)
    body = words[words.index("-d") + 1]
    reply = httpx.post(url, content=body.encode(), timeout=30).json()
    assert without_request_id(reply) == shown(expected)

    sdk, expected = after(found, "python", "bkapi_component")
    scope: dict = {}
    exec(sdk.replace("http://127.0.0.1:8000", demo_server), scope)  # noqa: S102 - the README's
    assert without_request_id(scope["reply"]) == shown(expected)

    # Then every other curl example, in the README's order, against what the ones before
    # left behind.
    for curl, expected in other_curls(found):
        words = shlex.split(curl)
        url = next(w for w in words if w.startswith("http://")).replace(
            "http://127.0.0.1:8000", demo_server
        )
        headers = dict(
            word.split(": ", 1)
            for flag, word in zip(words, words[1:], strict=False)
            if flag == "-H"
        )
        body = words[words.index("-d") + 1] if "-d" in words else ""
        method = words[words.index("-X") + 1] if "-X" in words else "POST"
        reply = httpx.request(
            method, url, content=body.encode(), headers=headers, timeout=30
        ).json()
        if "request_id" in reply:
            reply = without_request_id(reply)
        assert as_shown(reply, shown(expected)) == shown(expected), json.dumps(
            reply, ensure_ascii=False
        )


DOCUMENTED = "/api/c/compapi/v2/cc/batch_create_instance_association/"


def other_curls(found: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The curl examples besides upstream's documented one, each with the json block after it."""
    pairs = []
    for index, (kind, body) in enumerate(found):
        if kind == "sh" and body.startswith("curl ") and DOCUMENTED not in body:
            following = found[index + 1]
            assert following[0] == "json", f"no reply shown after {body!r}"
            pairs.append((body, following[1]))
    return pairs
