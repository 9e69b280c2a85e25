"""Permission, with upstream's contract: a **grant** gives a user, or everyone (``*``), the
action ``edit`` on one instance, on every instance of a model, or on every model (``*``). Writes
are authorized before anything is written, for every instance of the request, with one
statement; a denial carries upstream's permission object."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from cmdbgraph.db.tables import grants, instances, models
from cmdbgraph.services.auth import require_user
from cmdbgraph.services.caller import Caller
from cmdbgraph.services.errors import EN, CmdbError, ErrorCode

EDIT = "edit"
EVERYONE = "*"
ALL_MODELS = "*"
ACTIONS = (EDIT,)


async def authorize_instances(
    conn: AsyncConnection,
    caller: Caller,
    wanted: dict[str, set[int]],
) -> None:
    """Refuse (9900403, with upstream's permission object) unless ``caller`` may edit every
    instance in ``wanted`` (model id -> instance ids). One statement when everything is
    covered; two more to name the missing resources otherwise."""
    if not caller.enforce_permissions:
        return
    require_user(caller)
    wanted = {obj: ids for obj, ids in wanted.items() if ids}
    if not wanted:
        return
    rows = await conn.execute(
        select(grants.c.bk_obj_id, grants.c.bk_inst_id).where(
            grants.c.subject.in_([caller.username, EVERYONE]),
            grants.c.action == EDIT,
            grants.c.bk_obj_id.in_([*wanted, ALL_MODELS]),
        )
    )
    whole_models: set[str] = set()
    granted: set[tuple[str, int]] = set()
    for obj, inst in rows:
        if inst == 0:
            whole_models.add(obj)
        else:
            granted.add((obj, inst))
    if ALL_MODELS in whole_models:
        return
    missing = {
        obj: sorted(i for i in ids if (obj, i) not in granted)
        for obj, ids in wanted.items()
        if obj not in whole_models
    }
    missing = {obj: ids for obj, ids in missing.items() if ids}
    if missing:
        raise CmdbError(
            ErrorCode.PERMISSION_DENIED,
            permission=await _permission_object(conn, missing, caller.language),
        )


async def authorize_models(
    conn: AsyncConnection, caller: Caller, bk_obj_ids: Iterable[str]
) -> None:
    """Refuse unless ``caller`` may edit every instance of each model (``*`` for the catalog)."""
    if not caller.enforce_permissions:
        return
    require_user(caller)
    wanted = set(bk_obj_ids)
    rows = await conn.execute(
        select(grants.c.bk_obj_id).where(
            grants.c.subject.in_([caller.username, EVERYONE]),
            grants.c.action == EDIT,
            grants.c.bk_inst_id == 0,
            grants.c.bk_obj_id.in_([*wanted, ALL_MODELS]),
        )
    )
    held = set(rows.scalars())
    if ALL_MODELS in held:
        return
    lacking = wanted - held
    if lacking:
        raise CmdbError(
            ErrorCode.PERMISSION_DENIED,
            permission=await _permission_object(
                conn, {obj: [] for obj in sorted(lacking)}, caller.language
            ),
        )


async def _permission_object(
    conn: AsyncConnection, missing: dict[str, list[int]], language: str
) -> dict:
    """Upstream's ``permission``: what to apply for, one action per model, one path per
    instance (none for a model-wide or catalog permission)."""
    model_rows = await conn.execute(
        select(models.c.id, models.c.bk_obj_id, models.c.bk_obj_name).where(
            models.c.bk_obj_id.in_(list(missing))
        )
    )
    known = {row.bk_obj_id: row for row in model_rows}
    inst_ids = [i for ids in missing.values() for i in ids]
    names: dict[int, str] = {}
    if inst_ids:
        rows = await conn.execute(
            select(instances.c.bk_inst_id, instances.c.bk_inst_name).where(
                instances.c.bk_inst_id.in_(inst_ids)
            )
        )
        names = {inst_id: name for inst_id, name in rows}
    system_name = "CMDB" if language == EN else "配置平台"
    actions = []
    for obj, ids in missing.items():
        model = known.get(obj)
        resource_type = f"comobj_{model.id}" if model else f"comobj_{obj}"
        type_name = model.bk_obj_name if model else obj
        action_name = f"{type_name} instance edit" if language == EN else f"{type_name}实例编辑"
        actions.append(
            {
                "id": f"edit_{resource_type}",
                "name": action_name,
                "related_resource_types": [
                    {
                        "system_id": "bk_cmdb",
                        "system_name": system_name,
                        "type": resource_type,
                        "type_name": type_name,
                        "instances": [
                            [
                                {
                                    "type": resource_type,
                                    "type_name": type_name,
                                    "id": str(inst_id),
                                    "name": names.get(inst_id, ""),
                                }
                            ]
                            for inst_id in ids
                        ],
                    }
                ],
            }
        )
    return {"system_id": "bk_cmdb", "system_name": system_name, "actions": actions}


def instances_of_request(src_obj: str, dest_obj: str, details: Sequence) -> dict[str, set[int]]:
    """Model id -> instance ids a batch touches: every source and every target."""
    wanted: dict[str, set[int]] = {src_obj: set(), dest_obj: set()}
    for src, dest in details:
        wanted[src_obj].add(src)
        wanted[dest_obj].add(dest)
    return wanted
