"""Opaque cursors: fields joined by ``:`` with a CRC-32 of them, in URL-safe base64 without
padding. The checksum makes a cursor altered by hand refused rather than misread; what the
fields mean is the caller's (``paging``, ``events``)."""

from __future__ import annotations

import base64
import binascii
import zlib


def _check(body: str) -> str:
    return f"{zlib.crc32(body.encode()):08x}"


def seal(*fields: object) -> str:
    """The cursor of ``fields`` (none may hold ``:``)."""
    body = ":".join(str(field) for field in fields)
    return base64.urlsafe_b64encode(f"{body}:{_check(body)}".encode()).decode().rstrip("=")


def unseal(cursor: str) -> list[str] | None:
    """The fields of a cursor ``seal`` wrote; None for anything else."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (UnicodeError, binascii.Error, ValueError):
        return None
    body, _, check = text.rpartition(":")
    return body.split(":") if body and check == _check(body) else None
