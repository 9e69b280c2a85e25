"""Regular expressions in the database, by RE2 (linear in the text, whatever the pattern).

SQLite has no ``REGEXP`` of its own: each connection gets ``regexp`` below. PostgreSQL runs
its own engine on patterns that ``services/conditions.py`` checked with RE2 first."""

from __future__ import annotations

import functools
from typing import Any

import re2

# RE2's memory budget for one compiled pattern: a pattern that needs more is refused.
MAX_MEMORY = 8 << 20


@functools.lru_cache(maxsize=256)
def compiled(text: str) -> Any:
    """``text`` compiled by RE2; raises ``re2.error`` (without logging it to standard error)."""
    options = re2.Options()
    options.log_errors = False
    options.max_mem = MAX_MEMORY
    return re2.compile(text, options)


def sqlite_regexp(pattern: str | None, value: object) -> int:
    """SQLite's ``value REGEXP pattern``: 1 when ``value`` is text that ``pattern`` finds."""
    if pattern is None or not isinstance(value, str):
        return 0
    try:
        return 1 if compiled(pattern).search(value) is not None else 0
    except re2.error:
        return 0
