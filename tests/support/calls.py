"""Requests in each interface, as the callers send them: paths, the demo credentials, the batch
mutation, and the bodies of a batch on GraphQL and on REST."""

from __future__ import annotations

import json

import httpx

ESB_PATH = "/api/c/compapi/v2/cc/batch_create_instance_association/"
NATIVE_PATH = "/api/v3/createmany/instassociation"

# The demo credentials, as the seeds' request example carries them.
DEMO_CREDENTIALS = {
    "bk_app_code": "esb_test",
    "bk_app_secret": "xxx",
    "bk_username": "xxx",
    "bk_token": "xxx",
}

BATCH_MUTATION = """
mutation Batch($input: BatchCreateInstAssociationsInput!) {
  batchCreateInstAssociations(input: $input) {
    __typename
    ... on BatchCreateInstAssociationsPayload {
      createdCount failedCount written successCreated errorMsg
      results {
        index ok
        association { id bkObjAsstId bkAsstId bkObjId bkInstId bkAsstObjId bkAsstInstId }
        error { code bkErrorCode message }
      }
    }
    ... on RequestError { code bkErrorCode message }
    ... on PermissionDenied { code bkErrorCode message permission }
  }
}
"""


def demo_headers(**extra: str) -> dict[str, str]:
    """Headers carrying the demo credentials the way the BlueKing SDK sends them."""
    return {
        "X-Bkapi-Authorization": json.dumps(
            {"bk_app_code": "esb_test", "bk_app_secret": "xxx", "bk_username": "admin"}
        ),
        **extra,
    }


async def graphql(
    client: httpx.AsyncClient, query: str, variables: dict | None = None, **headers: str
) -> dict:
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers=demo_headers(**headers),
    )
    assert response.status_code == 200, response.text
    return response.json()


def batch_input(bk_obj_id: str, bk_asst_obj_id: str, bk_obj_asst_id: str, details) -> dict:
    return {
        "bkObjId": bk_obj_id,
        "bkAsstObjId": bk_asst_obj_id,
        "bkObjAsstId": bk_obj_asst_id,
        "details": [{"bkInstId": s, "bkAsstInstId": t} for s, t in details],
    }


def rest_body(bk_obj_id: str, bk_asst_obj_id: str, bk_obj_asst_id: str, details) -> dict:
    return {
        **DEMO_CREDENTIALS,
        "bk_obj_id": bk_obj_id,
        "bk_asst_obj_id": bk_asst_obj_id,
        "bk_obj_asst_id": bk_obj_asst_id,
        "details": [{"bk_inst_id": s, "bk_asst_inst_id": t} for s, t in details],
    }
