"""Permission, with upstream's contract: a **grant** gives a user, or everyone (``*``), the
action ``edit`` on one instance, on every instance of a model, or on every model (``*``). Writes
are authorized before anything is written, for every instance of the request, with one
statement; a denial carries upstream's permission object."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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


async def _holds(conn: AsyncConnection, caller: Caller, bk_obj_ids: Iterable[str]) -> set[str]:
    """Which of ``bk_obj_ids`` (``*`` included) the caller may edit whole."""
    rows = await conn.execute(
        select(grants.c.bk_obj_id).where(
            grants.c.subject.in_([caller.username, EVERYONE]),
            grants.c.action == EDIT,
            grants.c.bk_inst_id == 0,
            grants.c.bk_obj_id.in_([*bk_obj_ids, ALL_MODELS]),
        )
    )
    return set(rows.scalars())


async def authorize_new_instances(conn: AsyncConnection, caller: Caller, bk_obj_id: str) -> None:
    """Refuse unless ``caller`` may edit every instance of the model: creating instances of
    it (upstream's ``create_comobj_<model id>``, ``create_resource_pool_host`` for hosts)."""
    if not caller.enforce_permissions:
        return
    require_user(caller)
    if await _holds(conn, caller, [bk_obj_id]):
        return
    model = (
        await conn.execute(
            select(models.c.id, models.c.bk_obj_id, models.c.bk_obj_name).where(
                models.c.bk_obj_id == bk_obj_id
            )
        )
    ).first()
    if bk_obj_id == HOST_MODEL:
        action = CREATE_POOL_HOST
    else:
        action = _instance_action("create", ("新建", "create"), model, bk_obj_id)
    raise CmdbError(
        ErrorCode.PERMISSION_DENIED,
        permission=permission_object([(Action(action.id, action.names), ())], caller.language),
    )


async def authorize_catalog(
    conn: AsyncConnection,
    caller: Caller,
    action: Action,
    resources: Sequence[tuple[object, str]] = (),
) -> None:
    """Refuse unless ``caller`` may change the catalog (a grant on every model, ``*``). The
    denial asks for upstream's ``action`` on ``resources`` ((id, name) of each)."""
    if not caller.enforce_permissions:
        return
    require_user(caller)
    if ALL_MODELS in await _holds(conn, caller, []):
        return
    raise CmdbError(
        ErrorCode.PERMISSION_DENIED,
        permission=permission_object(
            [(action, [[(str(id_), name)] for id_, name in resources])], caller.language
        ),
    )


async def model_resources(
    conn: AsyncConnection, bk_obj_ids: Sequence[str]
) -> list[tuple[int, str]]:
    """(row id, name) of each model named that exists, in the order named, once each: the
    ``sys_model`` resources of an ``edit_sys_model`` denial."""
    rows = await conn.execute(
        select(models.c.bk_obj_id, models.c.id, models.c.bk_obj_name).where(
            models.c.bk_obj_id.in_(list(bk_obj_ids))
        )
    )
    known = {row.bk_obj_id: (row.id, row.bk_obj_name) for row in rows}
    return [known[obj] for obj in dict.fromkeys(bk_obj_ids) if obj in known]


# Upstream's IAM vocabulary (src/ac/iam): resource types and actions, their names (zh, en).


@dataclass(frozen=True, slots=True)
class ResourceType:
    id: str
    names: tuple[str, str]


@dataclass(frozen=True, slots=True)
class Action:
    id: str
    names: tuple[str, str]
    # What the action applies to; None for actions on nothing in particular (create).
    resource_type: ResourceType | None = None


SYS_MODEL = ResourceType("sys_model", ("模型", "Model"))
SYS_MODEL_GROUP = ResourceType("sys_model_group", ("模型分组", "Model Group"))
SYS_ASSOCIATION_TYPE = ResourceType("sys_association_type", ("关联类型", "Association Type"))
HOST = ResourceType("host", ("主机", "Host"))
BUSINESS = ResourceType("biz", ("业务", "Business"))

CREATE_MODEL = Action("create_sys_model", ("模型新建", "Create Model"), SYS_MODEL_GROUP)
EDIT_MODEL = Action("edit_sys_model", ("模型编辑", "Edit Model"), SYS_MODEL)
CREATE_KIND = Action("create_association_type", ("关联类型新建", "Create Association Type"))
EDIT_KIND = Action(
    "edit_association_type", ("关联类型编辑", "Edit Association Type"), SYS_ASSOCIATION_TYPE
)
DELETE_KIND = Action(
    "delete_association_type", ("关联类型删除", "Delete Association Type"), SYS_ASSOCIATION_TYPE
)
CREATE_POOL_HOST = Action("create_resource_pool_host", ("主机池主机创建", "Create Pool Hosts"))
EDIT_POOL_HOST = Action("edit_resource_pool_host", ("主机池主机编辑", "Edit Pool Hosts"), HOST)
EDIT_BUSINESS = Action("edit_business", ("业务编辑", "Edit Business"), BUSINESS)

# Built-in models whose instances have actions of their own.
HOST_MODEL = "host"
BUSINESS_MODEL = "biz"
_SYSTEM = {"system_id": "bk_cmdb"}
_SYSTEM_NAMES = ("配置平台", "cmdb")


def _instance_action(verb: str, words: tuple[str, str], model, bk_obj_id: str) -> Action:
    """Upstream's action on the instances of a model of its own: ``<verb>_comobj_<row id>``,
    named ``<model name>实例<words>`` / ``<verb> <model id> instance``."""
    type_id = f"comobj_{model.id}" if model else f"comobj_{bk_obj_id}"
    zh_name = model.bk_obj_name if model else bk_obj_id
    return Action(
        f"{verb}_{type_id}",
        (f"{zh_name}实例{words[0]}", f"{words[1]} {bk_obj_id} instance"),
        ResourceType(type_id, (zh_name, bk_obj_id)),
    )


def permission_object(
    wanted: Sequence[tuple[Action, Sequence[Sequence[tuple[str, str]]] | None]], language: str
) -> dict:
    """Upstream's ``permission``: per action, its resource type and the instances to apply
    for, each a path of (id, name) (none listed: ``instances`` left out)."""
    english = language == EN
    system_name = _SYSTEM_NAMES[english]
    actions = []
    for action, paths in wanted:
        related = []
        kind = action.resource_type
        if kind is not None:
            type_name = kind.names[english]
            entry: dict = {
                **_SYSTEM,
                "system_name": system_name,
                "type": kind.id,
                "type_name": type_name,
            }
            if paths:
                entry["instances"] = [
                    [
                        {"type": kind.id, "type_name": type_name, "id": id_, "name": name}
                        for id_, name in path
                    ]
                    for path in paths
                ]
            related.append(entry)
        actions.append(
            {"id": action.id, "name": action.names[english], "related_resource_types": related}
        )
    return {**_SYSTEM, "system_name": system_name, "actions": actions}


async def _permission_object(
    conn: AsyncConnection, missing: dict[str, list[int]], language: str
) -> dict:
    """The denial of instance edits: one action per model (hosts and businesses have their
    own), one path per instance."""
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
    wanted = []
    for obj, ids in missing.items():
        if obj == HOST_MODEL:
            action = EDIT_POOL_HOST
        elif obj == BUSINESS_MODEL:
            action = EDIT_BUSINESS
        else:
            action = _instance_action("edit", ("编辑", "edit"), known.get(obj), obj)
        wanted.append((action, [[(str(i), names.get(i, ""))] for i in ids]))
    return permission_object(wanted, language)


def instances_of_request(src_obj: str, dest_obj: str, details: Sequence) -> dict[str, set[int]]:
    """Model id -> instance ids a batch touches: every source and every target."""
    wanted: dict[str, set[int]] = {src_obj: set(), dest_obj: set()}
    for src, dest in details:
        wanted[src_obj].add(src)
        wanted[dest_obj].add(dest)
    return wanted
