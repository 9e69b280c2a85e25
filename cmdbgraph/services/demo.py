"""The demo dataset: the ids the README's examples and the tests rely on."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert, select

from cmdbgraph.db.engine import Database
from cmdbgraph.db.sequences import raise_id_floor
from cmdbgraph.db.tables import apps, inst_associations, instances, model_associations, users
from cmdbgraph.services import accounts, permissions

DEMO_MODEL_ASSOCIATIONS = [
    # bk_obj_asst_id, bk_obj_id, bk_asst_id, bk_asst_obj_id, mapping
    ("bk_switch_belong_host", "bk_switch", "belong", "host", "n:n"),
    ("bk_router_default_bk_firewall", "bk_router", "default", "bk_firewall", "1:1"),
]

DEMO_INSTANCES = [
    # bk_inst_id, bk_obj_id, bk_inst_name; there is deliberately no instance 12.
    (11, "bk_switch", "sw-01"),
    (13, "bk_switch", "sw-02"),
    (14, "bk_switch", "sw-03"),
    (21, "host", "10.0.0.1"),
    (22, "host", "10.0.0.2"),
    (23, "host", "10.0.0.3"),
    (31, "bk_router", "rt-01"),
    (32, "bk_router", "rt-02"),
    (41, "bk_firewall", "fw-01"),
    (42, "bk_firewall", "fw-02"),
]

# Ids generated after the demo data start above this.
ID_FLOOR = 1000

# The seeds' request example carries these, so it works verbatim against a demo database.
DEMO_APP_CODE, DEMO_APP_SECRET = "esb_test", "xxx"
DEMO_USERS = ("admin", "xxx")
DEMO_TOKEN, DEMO_TOKEN_USER = "xxx", "xxx"


async def seed_demo(db: Database) -> bool:
    """Install the demo dataset unless it is there already. Returns whether it wrote anything."""
    now = datetime.now(UTC)
    async with db.write() as conn:
        existing = set(
            (
                await conn.execute(
                    select(instances.c.bk_inst_id).where(
                        instances.c.bk_inst_id.in_([i for i, _, _ in DEMO_INSTANCES])
                    )
                )
            ).scalars()
        )
        known_assts = set(
            (
                await conn.execute(
                    select(model_associations.c.bk_obj_asst_id).where(
                        model_associations.c.bk_obj_asst_id.in_(
                            [a for a, *_ in DEMO_MODEL_ASSOCIATIONS]
                        )
                    )
                )
            ).scalars()
        )
        new_assts = [a for a in DEMO_MODEL_ASSOCIATIONS if a[0] not in known_assts]
        if new_assts:
            await conn.execute(
                insert(model_associations),
                [
                    {
                        "bk_obj_asst_id": asst,
                        "bk_obj_asst_name": "",
                        "bk_obj_id": obj,
                        "bk_asst_id": kind,
                        "bk_asst_obj_id": asst_obj,
                        "mapping": mapping,
                        "on_delete": "none",
                        "ispre": False,
                        "bk_supplier_account": "0",
                        "create_time": now,
                    }
                    for asst, obj, kind, asst_obj, mapping in new_assts
                ],
            )
        new_instances = [i for i in DEMO_INSTANCES if i[0] not in existing]
        if new_instances:
            await conn.execute(
                insert(instances),
                [
                    {
                        "bk_inst_id": inst_id,
                        "bk_obj_id": obj,
                        "bk_inst_name": name,
                        "attributes": {"bk_inst_name": name},
                        "bk_supplier_account": "0",
                        "creator": "admin",
                        "create_time": now,
                        "last_time": now,
                    }
                    for inst_id, obj, name in new_instances
                ],
            )
        for table in (instances, inst_associations):
            await raise_id_floor(conn, table, ID_FLOOR)
        has_app = (
            await conn.execute(select(apps.c.id).where(apps.c.app_code == DEMO_APP_CODE))
        ).first()
        known_users = set(
            (
                await conn.execute(
                    select(users.c.bk_username).where(users.c.bk_username.in_(DEMO_USERS))
                )
            ).scalars()
        )
    wrote_credentials = False
    if has_app is None:
        await accounts.create_app(db, DEMO_APP_CODE, DEMO_APP_SECRET)
        wrote_credentials = True
    for user in DEMO_USERS:
        if user not in known_users:
            await accounts.create_user(db, user)
            await accounts.add_grant(db, user, permissions.ALL_MODELS)
            wrote_credentials = True
            if user == DEMO_TOKEN_USER:
                await accounts.create_token(db, user, ttl=None, token=DEMO_TOKEN)
    return bool(new_assts or new_instances or wrote_credentials)
