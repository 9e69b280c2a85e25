"""The upstream BlueKing SDK (bkapi-component-open), unchanged, against a real demo server."""

from __future__ import annotations

import pytest
from bkapi_client_core.exceptions import HTTPResponseError
from bkapi_component.open import client as bkapi_open

SEED_BODY = {
    "bk_obj_id": "bk_switch",
    "bk_asst_obj_id": "host",
    "bk_obj_asst_id": "bk_switch_belong_host",
    "details": [
        {"bk_inst_id": 11, "bk_asst_inst_id": 21},
        {"bk_inst_id": 12, "bk_asst_inst_id": 22},
    ],
}


def _client(base_url: str, *, secret: str = "xxx", version: str | None = None, language=None):
    client = bkapi_open.Client(endpoint=base_url)
    if version is not None:
        client.set_bk_api_ver(version)
    if language is not None:
        client.set_language(language)
    client.update_bkapi_authorization(
        bk_app_code="esb_test", bk_app_secret=secret, bk_username="xxx"
    )
    return client


@pytest.mark.parametrize("version", [None, "v2"], ids=["default-api-version", "v2"])
def test_sdk_batch_create_with_the_seed_request(demo_server, version):
    reply = _client(demo_server, version=version).cc.batch_create_instance_association(SEED_BODY)
    assert reply["result"] is True and reply["code"] == 0
    assert reply["permission"] is None and reply["request_id"]
    assert list(reply["data"]["success_created"]) == ["0"]
    assert reply["data"]["error_msg"] == {"1": "关联实例不存在"}
    # Running it again: the first item now exists.
    again = _client(demo_server, version=version).cc.batch_create_instance_association(SEED_BODY)
    assert again["data"] == {
        "success_created": {},
        "error_msg": {"0": "关联关系 bk_switch->host 重复", "1": "关联实例不存在"},
    }


def test_sdk_siblings_and_english(demo_server):
    client = _client(demo_server, language="en")
    created = client.cc.add_instance_association(
        {"bk_obj_asst_id": "bk_switch_belong_host", "bk_inst_id": 13, "bk_asst_inst_id": 23}
    )
    assert created["result"] is True and created["data"]["id"] > 1000
    found = client.cc.find_instance_association(
        {"bk_obj_id": "bk_switch", "condition": {"bk_obj_asst_id": "bk_switch_belong_host"}}
    )
    assert [a["id"] for a in found["data"]] == [created["data"]["id"]]
    refused = client.cc.batch_create_instance_association({**SEED_BODY, "details": []})
    assert refused["result"] is False
    assert (refused["code"], refused["message"]) == (1199038, "need data details is null")
    assert refused["data"] is None
    deleted = client.cc.delete_related_inst_asso(
        {"bk_obj_id": "bk_switch", "id": [created["data"]["id"]]}
    )
    assert deleted["result"] is True and deleted["data"] == 1


def test_sdk_with_a_wrong_secret_is_refused(demo_server):
    with pytest.raises(HTTPResponseError) as refused:
        _client(demo_server, secret="wrong").cc.batch_create_instance_association(SEED_BODY)
    response = refused.value.response
    assert response.status_code == 401
    assert response.json()["code"] == 1100004


def test_sdk_lookups_with_upstreams_conditions(demo_server):
    """The lookups as the SDK sends them: an empty dict is no body at all, and conditions use
    MongoDB's operators."""
    client = _client(demo_server, language="en")
    models = client.cc.search_objects({})
    assert models["result"] is True
    assert {"host", "bk_switch"} <= {m["bk_obj_id"] for m in models["data"]}
    switch = next(m for m in models["data"] if m["bk_obj_id"] == "bk_switch")
    assert type(switch["id"]) is int and len(switch["create_time"]) == len("2006-01-02 15:04:05")

    some = client.cc.search_objects({"bk_obj_id": {"$in": ["host", "bk_switch"]}})
    assert sorted(m["bk_obj_id"] for m in some["data"]) == ["bk_switch", "host"]

    kinds = client.cc.find_object_association(
        {"condition": {"$or": [{"bk_obj_id": "host"}, {"bk_asst_obj_id": "host"}]}}
    )
    assert kinds["data"] and all(
        "host" in (m["bk_obj_id"], m["bk_asst_obj_id"]) for m in kinds["data"]
    )

    created = client.cc.add_instance_association(
        {"bk_obj_asst_id": "bk_switch_belong_host", "bk_inst_id": 14, "bk_asst_inst_id": 22}
    )["data"]["id"]
    # What upstream's UI sends, and the association read from its target's side.
    as_ui = client.cc.find_instance_association(
        {"bk_obj_id": "bk_switch", "condition": {"bk_obj_id": "bk_switch", "bk_inst_id": 14}}
    )
    from_target = client.cc.find_instance_association(
        {"bk_obj_id": "host", "condition": {"bk_asst_inst_id": {"$in": [22]}}}
    )
    assert created in [a["id"] for a in as_ui["data"]]
    assert created in [a["id"] for a in from_target["data"]]
    refused = client.cc.find_instance_association({"condition": {}})
    assert (refused["code"], refused["message"]) == (1199010, "'bk_obj_id' unassigned")


def test_sdk_searches_and_counts_instance_associations(demo_server):
    client = _client(demo_server, language="en")
    client.cc.add_instance_association(
        {"bk_obj_asst_id": "bk_switch_belong_host", "bk_inst_id": 13, "bk_asst_inst_id": 22}
    )
    conditions = {
        "condition": "AND",
        "rules": [{"field": "bk_asst_inst_id", "operator": "equal", "value": 22}],
    }
    found = client.cc.search_instance_associations(
        {"bk_obj_id": "bk_switch", "conditions": conditions, "page": {"start": 0, "limit": 10}}
    )
    assert found["result"] is True
    assert [(a["bk_inst_id"], a["bk_asst_inst_id"]) for a in found["data"]["info"]] == [(13, 22)]
    counted = client.cc.count_instance_associations(
        {"bk_obj_id": "bk_switch", "conditions": conditions}
    )
    assert counted["data"] == {"count": 1}
    refused = client.cc.search_instance_associations(
        {"bk_obj_id": "bk_switch", "conditions": conditions, "page": {"limit": 0}}
    )
    assert (refused["code"], refused["message"]) == (
        1199006,
        "'page.limit' data parameter verification does not pass",
    )


def test_sdk_reads_across_associations(demo_server):
    """find_instassociation_with_inst, search_inst_association_topo and
    search_inst_asst_object_inst_base_info as the SDK sends them."""
    client = _client(demo_server, language="en")
    created = client.cc.add_instance_association(
        {"bk_obj_asst_id": "bk_switch_connect_host", "bk_inst_id": 14, "bk_asst_inst_id": 21}
    )["data"]["id"]
    with_inst = client.cc.find_instassociation_with_inst(
        {
            "bk_obj_id": "bk_switch",
            "condition": {
                "asst_filter": {
                    "condition": "AND",
                    "rules": [{"field": "bk_inst_id", "operator": "equal", "value": 14}],
                },
                "asst_fields": ["id", "bk_asst_inst_id"],
                "dst_fields": ["bk_host_innerip"],
                "dst_detail": True,
            },
            "page": {"start": 0, "limit": 20},
        }
    )
    assert (with_inst["result"], with_inst["code"]) == (True, 0)
    assert with_inst["data"] == {
        "association": [{"id": created, "bk_asst_inst_id": 21}],
        "src": None,
        "dst": [{"bk_host_innerip": "10.0.0.1"}],
    }
    topology = client.cc.search_inst_association_topo({"bk_obj_id": "bk_switch", "bk_inst_id": 14})
    assert [
        (group["bk_obj_id"], group["count"], [(c["id"], c["asso_id"]) for c in group["children"]])
        for group in topology["data"]
    ] == [("host", 1, [("21", created)])]
    base_info = client.cc.search_inst_asst_object_inst_base_info(
        {
            "condition": {
                "bk_obj_id": "host",
                "bk_inst_id": 21,
                "association_obj_id": "bk_switch",
                "is_target_object": True,
            },
            "page": {"start": 0, "limit": 10},
        }
    )
    assert base_info["data"] == {"count": 1, "info": [{"bk_inst_id": 14, "bk_inst_name": "sw-03"}]}
    refused = client.cc.search_inst_association_topo({"bk_obj_id": "host", "bk_inst_id": 14})
    assert (refused["code"], refused["message"]) == (
        1199011,
        "'bk_host_id' the parameter is invalid or does not exist",
    )
    assert refused["data"] is None
    refused = client.cc.find_instassociation_with_inst({"bk_obj_id": "bk_switch"})
    assert (refused["code"], refused["message"]) == (
        1199011,
        "'condition.asst_filter' the parameter is invalid or does not exist",
    )


def test_sdk_instance_searches_related_deletes_and_the_change_stream(demo_server):
    """The SDK's search_inst_by_object, search_inst, search_related_inst_asso,
    delete_instance_association and resource_watch, unchanged, in both languages."""
    client = _client(demo_server)
    english = _client(demo_server, language="en")
    switches = client.cc.search_inst_by_object(
        {
            "bk_obj_id": "bk_switch",
            "condition": {"bk_inst_name": {"$in": ["sw-01", "sw-02"]}},
            "fields": ["bk_inst_id", "bk_inst_name"],
            "page": {"start": 0, "limit": 10},
        }
    )
    assert switches["data"] == {
        "count": 2,
        "info": [
            {"bk_inst_id": 11, "bk_inst_name": "sw-01"},
            {"bk_inst_id": 13, "bk_inst_name": "sw-02"},
        ],
    }
    head = client.cc.resource_watch({"bk_resource": "inst_asst"})
    assert head["result"] is True and head["data"]["bk_watched"] is False
    cursor = head["data"]["bk_events"][-1]["bk_cursor"]

    created = client.cc.add_instance_association(
        {"bk_obj_asst_id": "bk_switch_belong_host", "bk_inst_id": 13, "bk_asst_inst_id": 23}
    )["data"]["id"]
    through = client.cc.search_inst(
        {
            "bk_obj_id": "bk_switch",
            "condition": {"host": [{"field": "bk_inst_id", "operator": "$eq", "value": 23}]},
            "fields": {"bk_switch": ["bk_inst_id", "bk_inst_name"]},
            "page": {"start": 0, "limit": 10},
        }
    )
    assert through["data"]["info"] == [{"bk_inst_id": 13, "bk_inst_name": "sw-02"}]
    related = client.cc.search_related_inst_asso(
        {"condition": {"bk_inst_id": 13, "bk_obj_id": "bk_switch"}, "fields": ["id"]}
    )
    assert {"id": created} in related["data"]

    deleted = client.cc.delete_instance_association({"bk_obj_id": "bk_switch", "id": created})
    assert (deleted["result"], deleted["data"]) == (True, None)
    stream = client.cc.resource_watch(
        {"bk_resource": "inst_asst", "bk_cursor": cursor, "bk_fields": ["id"]}
    )
    assert [(e["bk_event_type"], e["bk_detail"]) for e in stream["data"]["bk_events"]] == [
        ("create", {"id": created}),
        ("delete", {"id": created}),
    ]
    refused = english.cc.resource_watch({"bk_resource": "inst_asst", "bk_cursor": "abc"})
    assert (refused["code"], refused["message"]) == (1103007, "Event chain node not exist")
