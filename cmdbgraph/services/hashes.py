"""How secrets are kept: app secrets as scrypt hashes, compared in constant time (a successful
check is remembered briefly, keyed by the stored hash, so a new secret or a revocation takes
effect at once), and tokens as digests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_VERIFIED_TTL_SECONDS = 60.0
_verified: dict[tuple[str, str, str], float] = {}


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        secret.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    encoded_salt = base64.b64encode(salt).decode()
    encoded_digest = base64.b64encode(digest).decode()
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${encoded_salt}${encoded_digest}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    expected = base64.b64decode(digest)
    actual = hashlib.scrypt(
        secret.encode(),
        salt=base64.b64decode(salt),
        n=int(n),
        r=int(r),
        p=int(p),
        dklen=len(expected),
    )
    return hmac.compare_digest(actual, expected)


def verify_cached(app_code: str, secret: str, stored: str) -> bool:
    # The key holds a digest of the secret, not the secret: nothing reversible stays in memory.
    key = (app_code, stored, hashlib.sha256(secret.encode()).hexdigest())
    now = time.monotonic()
    if _verified.get(key, 0.0) > now:
        return True
    if not verify_secret(secret, stored):
        return False
    if len(_verified) > 10_000:
        _verified.clear()
    _verified[key] = now + _VERIFIED_TTL_SECONDS
    return True


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
