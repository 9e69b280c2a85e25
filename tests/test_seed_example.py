"""The seeds' request example, verbatim, against the demo data on every interface."""

from __future__ import annotations

from tests.support.calls import BATCH_MUTATION, ESB_PATH, NATIVE_PATH, batch_input, graphql

SEED_REQUEST = {
    "bk_app_code": "esb_test",
    "bk_app_secret": "xxx",
    "bk_username": "xxx",
    "bk_token": "xxx",
    "bk_obj_id": "bk_switch",
    "bk_asst_obj_id": "host",
    "bk_obj_asst_id": "bk_switch_belong_host",
    "details": [
        {"bk_inst_id": 11, "bk_asst_inst_id": 21},
        {"bk_inst_id": 12, "bk_asst_inst_id": 22},
    ],
}


async def test_seed_example_on_esb_path(client):
    response = await client.post(ESB_PATH, json=SEED_REQUEST, headers={"X-Request-ID": "abc123"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "abc123"
    body = response.json()
    assert list(body) == ["result", "code", "message", "permission", "request_id", "data"]
    assert body["result"] is True
    assert body["code"] == 0
    assert body["message"] == "success"
    assert body["permission"] is None
    assert body["request_id"] == "abc123"
    assert list(body["data"]) == ["success_created", "error_msg"]
    created = body["data"]["success_created"]
    assert list(created) == ["0"] and created["0"] > 1000
    assert body["data"]["error_msg"] == {"1": "关联实例不存在"}


async def test_seed_example_on_native_path_in_english(client):
    response = await client.post(
        NATIVE_PATH, json=SEED_REQUEST, headers={"Blueking-Language": "en"}
    )
    body = response.json()
    assert list(body) == ["result", "bk_error_code", "bk_error_msg", "permission", "data"]
    assert body["result"] is True and body["bk_error_code"] == 0
    assert body["bk_error_msg"] == "success"
    assert body["data"]["error_msg"] == {"1": "the association inst is not exist"}
    assert response.headers["X-Request-ID"]


async def test_seed_example_through_graphql_gives_the_same_outcome(client):
    variables = {
        "input": batch_input("bk_switch", "host", "bk_switch_belong_host", [(11, 21), (12, 22)])
    }
    result = (await graphql(client, BATCH_MUTATION, variables))["data"]
    payload = result["batchCreateInstAssociations"]
    assert payload["__typename"] == "BatchCreateInstAssociationsPayload"
    assert payload["createdCount"] == 1 and payload["failedCount"] == 1
    first, second = payload["results"]
    assert first["ok"] and first["association"]["bkInstId"] == 11
    assert first["association"]["bkAsstInstId"] == 21
    assert first["association"]["bkAsstId"] == "belong"
    assert payload["successCreated"] == {"0": first["association"]["id"]}
    assert second == {
        "index": 1,
        "ok": False,
        "association": None,
        "error": {
            "code": "SOURCE_INSTANCE_NOT_FOUND",
            "bkErrorCode": 1101073,
            "message": "关联实例不存在",
        },
    }
    assert payload["errorMsg"] == {"1": "关联实例不存在"}
