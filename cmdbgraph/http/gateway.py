"""Requests from the BlueKing API gateway. The gateway signs what it verified (the app, the user)
in a JWT, ``X-Bkapi-JWT``; upstream checks it with the gateway's public key, takes the caller from
it, and answers such requests in the gateway's envelope (``code``/``message`` instead of
``bk_error_code``/``bk_error_msg``). With no key configured the header is ignored, as upstream
does with its JWT check off.

A token that does not verify answers as upstream's does: 1199998 with the reason in golang-jwt's
words, in the native envelope, before anything else is read."""

from __future__ import annotations

from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

HEADER = "x-bkapi-jwt"
_ALGORITHMS = ("RS256", "RS384", "RS512")


class GatewayTokenError(Exception):
    """The token does not verify; ``text`` is what upstream answers."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@dataclass(frozen=True, slots=True)
class GatewayCaller:
    """Who the gateway says calls."""

    app_code: str
    username: str


class GatewayVerifier:
    def __init__(self, pem: str) -> None:
        key = load_pem_public_key(pem.encode())
        assert isinstance(key, RSAPublicKey)  # the setting's validator checked it
        self.key = key

    def verify(self, token: str) -> GatewayCaller:
        """The caller the token names; raises ``GatewayTokenError``."""
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError:
            raise GatewayTokenError("token contains an invalid number of segments") from None
        if algorithm not in _ALGORITHMS:
            raise GatewayTokenError(f"unexpected signing method: {algorithm}")
        try:
            claims = jwt.decode(
                token, self.key, algorithms=[algorithm], options={"verify_aud": False}
            )
        except jwt.ExpiredSignatureError:
            raise GatewayTokenError("token is expired") from None
        except jwt.ImmatureSignatureError:
            raise GatewayTokenError("token is not valid yet") from None
        except jwt.InvalidSignatureError:
            raise GatewayTokenError("crypto/rsa: verification error") from None
        except jwt.PyJWTError as error:
            raise GatewayTokenError(str(error) or "token is malformed") from None
        app, user = claims.get("app"), claims.get("user")
        if not isinstance(app, dict):
            raise GatewayTokenError("app info is not set")
        if app.get("verified") is not True:
            raise GatewayTokenError("app is not verified")
        if not isinstance(user, dict):
            raise GatewayTokenError("user info is not set")
        username = user.get("username")
        if not isinstance(username, str) or not username:
            raise GatewayTokenError("user is not set")
        app_code = app.get("app_code")
        return GatewayCaller(app_code if isinstance(app_code, str) else "", username)


def verifier(pem: str) -> GatewayVerifier | None:
    """The verifier of the key setting; None without one."""
    return GatewayVerifier(pem) if pem else None


def gateway_caller(request) -> GatewayCaller | None:
    """The caller the request's gateway token names (cached on the request); None when no key
    is configured or no token was sent. Raises ``GatewayTokenError``."""
    state = request.state
    if hasattr(state, "gateway_caller"):
        return state.gateway_caller
    checker: GatewayVerifier | None = getattr(request.app.state, "gateway", None)
    token = request.headers.get(HEADER, "")
    found = checker.verify(token) if checker is not None and token else None
    state.gateway_caller = found
    return found
