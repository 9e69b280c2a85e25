"""The committed SDL must match the code."""

from __future__ import annotations

from cmdbgraph.api import SDL_PATH, export_sdl


def test_committed_schema_matches_code():
    committed = SDL_PATH.read_text(encoding="utf-8")
    assert committed == export_sdl(), "schema.graphql is out of date: run `cmdbgraph schema export`"
