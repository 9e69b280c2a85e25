"""Requests through the BlueKing API gateway: its signed token (X-Bkapi-JWT) names the caller,
and its callers get the gateway's envelope, as upstream's apiserver answers them."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cmdbgraph.app import create_app
from cmdbgraph.settings import Settings
from tests.support.calls import rest_body
from tests.support.contract import CONTRACT
from tests.support.servers import live_server

FIND = "/api/v3/find/instassociation"
BODY = {"bk_obj_id": "bk_switch", "condition": {}}


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


GATEWAY_KEY = _key()
OTHER_KEY = _key()
PUBLIC_PEM = (
    GATEWAY_KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


def token(
    *,
    key: rsa.RSAPrivateKey = GATEWAY_KEY,
    algorithm: str = "RS512",
    app: dict | None = None,
    user: dict | None = None,
    **claims,
) -> str:
    payload = {
        "app": {"version": 1, "app_code": "esb_test", "verified": True} if app is None else app,
        "user": {"version": 1, "username": "admin", "verified": True} if user is None else user,
        "exp": int(time.time()) + 300,
        **claims,
    }
    payload = {k: v for k, v in payload.items() if v != "omit"}
    return jwt.encode(payload, key, algorithm=algorithm)


@pytest.fixture
async def gateway(settings, db):
    app = create_app(settings.model_copy(update={"apigw_public_key": PUBLIC_PEM}), db=db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        yield http


async def test_a_gateway_request_gets_the_gateways_envelope(gateway):
    response = await gateway.post(FIND, json=BODY, headers={"X-Bkapi-JWT": token()})
    reply = response.json()
    assert response.status_code == 200
    assert list(reply) == ["code", "message", "result", "permission", "data"]
    assert (reply["code"], reply["message"], reply["result"]) == (0, "success", True)
    assert isinstance(reply["data"], list)


async def test_a_gateway_failure_keeps_upstreams_code_and_words(gateway):
    response = await gateway.post(
        FIND, json={"condition": {}}, headers={"X-Bkapi-JWT": token(), "Blueking-Language": "en"}
    )
    reply = response.json()
    assert reply == {
        "code": 1199010,
        "message": "'bk_obj_id' unassigned",
        "result": False,
        "permission": None,
        "data": None,
    }


async def test_the_token_names_the_caller(gateway, db):
    """A user the service does not know is refused as with any other credentials."""
    response = await gateway.post(
        FIND, json=BODY, headers={"X-Bkapi-JWT": token(user={"username": "nobody_here"})}
    )
    assert response.status_code == 401
    assert response.json()["code"] == 1199027


@pytest.mark.parametrize(
    ("make", "text"),
    [
        (lambda: token(key=OTHER_KEY), "crypto/rsa: verification error"),
        (lambda: token(exp=int(time.time()) - 10), "token is expired"),
        (lambda: token(nbf=int(time.time()) + 600), "token is not valid yet"),
        (lambda: token(app="omit"), "app info is not set"),
        (lambda: token(app={"app_code": "esb_test", "verified": False}), "app is not verified"),
        (lambda: token(user="omit"), "user info is not set"),
        (lambda: token(user={"username": ""}), "user is not set"),
        (lambda: "abc.def", "token contains an invalid number of segments"),
        (
            lambda: jwt.encode({"app": {}, "user": {}}, "secret-" * 6, algorithm="HS256"),
            "unexpected signing method: HS256",
        ),
    ],
    ids=[
        "other-key",
        "expired",
        "not-yet",
        "no-app",
        "app-not-verified",
        "no-user",
        "empty-user",
        "segments",
        "hmac",
    ],
)
async def test_a_token_that_does_not_verify_is_refused_first(gateway, db, make, text):
    """Before the body is read, in the native envelope, as upstream's apiserver answers."""
    response = await gateway.post(FIND, content=b"not json", headers={"X-Bkapi-JWT": make()})
    assert response.status_code == 200
    assert response.json() == {
        "result": False,
        "bk_error_code": 1199998,
        "bk_error_msg": text,
        "permission": None,
        "data": None,
    }


async def test_a_denial_through_the_gateway_has_no_data(gateway, db):
    from cmdbgraph.services import accounts

    await accounts.create_user(db, "gw_no_grant")
    response = await gateway.post(
        "/api/v3/createmany/instassociation",
        json=rest_body("bk_switch", "host", "bk_switch_belong_host", [(11, 21)]),
        headers={"X-Bkapi-JWT": token(user={"username": "gw_no_grant"})},
    )
    reply = response.json()
    assert list(reply) == ["code", "message", "result", "permission"]
    assert reply["code"] == 9900403 and reply["permission"]["actions"]


async def test_without_a_key_the_header_is_ignored(client):
    """Upstream with its JWT check off: the token proves nothing, the envelope is native."""
    response = await client.post(FIND, json=BODY, headers={"X-Bkapi-JWT": token()})
    assert response.status_code == 401
    assert response.json()["bk_error_code"] == 1100004


async def test_esb_paths_ignore_the_header(gateway):
    from tests.support.calls import DEMO_CREDENTIALS

    response = await gateway.post(
        "/api/c/compapi/v2/cc/find_instance_association/",
        json={**DEMO_CREDENTIALS, **BODY},
        headers={"X-Bkapi-JWT": "garbage"},
    )
    assert list(response.json())[:3] == ["result", "code", "message"]


def test_the_key_setting_must_be_an_rsa_public_key(tmp_path):
    from pydantic import ValidationError

    path = tmp_path / "gateway.pem"
    path.write_text(PUBLIC_PEM)
    assert Settings(apigw_public_key=str(path)).apigw_public_key == PUBLIC_PEM
    for wrong in ("-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----", str(tmp_path / "no")):
        with pytest.raises(ValidationError):
            Settings(apigw_public_key=wrong)


def test_a_real_server_reads_the_key_from_a_file_and_answers_the_gateway(database_url, tmp_path):
    """`cmdbgraph serve` with the key setting naming a PEM file, as an operator configures it
    (each of its two workers loads the key)."""
    key_file = tmp_path / "apigw.pem"
    key_file.write_text(PUBLIC_PEM)
    with live_server(
        database_url,
        tmp_path / "serve.log",
        env={"CMDBGRAPH_APIGW_PUBLIC_KEY": str(key_file)},
        args=("--workers", "2"),
    ) as server:
        for _ in range(4):
            reply = httpx.post(
                f"{server.url}{FIND}", json=BODY, headers={"X-Bkapi-JWT": token()}, timeout=30
            ).json()
            assert list(reply) == ["code", "message", "result", "permission", "data"], reply
        refused = httpx.post(
            f"{server.url}{FIND}", json=BODY, headers={"X-Bkapi-JWT": token(key=OTHER_KEY)}
        ).json()
        assert (refused["bk_error_code"], refused["bk_error_msg"]) == (
            1199998,
            "crypto/rsa: verification error",
        )


async def test_the_document_describes_the_gateways_envelope(gateway, db):
    """Success, failure and denial through the gateway each match the OpenAPI document's
    answer for the native route; the same replies in the native envelope would not pass for
    the gateway's."""
    from cmdbgraph.services import accounts

    await accounts.create_user(db, "gw_doc_no_grant")
    replies = [
        await gateway.post(FIND, json=BODY, headers={"X-Bkapi-JWT": token()}),
        await gateway.post(FIND, json={"condition": {}}, headers={"X-Bkapi-JWT": token()}),
        await gateway.post(
            "/api/v3/createmany/instassociation",
            json=rest_body("bk_switch", "host", "bk_switch_belong_host", [(11, 21)]),
            headers={"X-Bkapi-JWT": token(user={"username": "gw_doc_no_grant"})},
        ),
    ]
    assert [r.json()["code"] for r in replies] == [0, 1199010, 9900403]
    for response in replies:
        CONTRACT.check_response(response)
    # A gateway reply with a native key in it is not what the document allows.
    mixed = httpx.Response(
        200,
        json={**replies[0].json(), "bk_error_code": 0},
        request=replies[0].request,
    )
    with pytest.raises(AssertionError):
        CONTRACT.check_response(mixed)
