"""Models, association kinds and model associations: what instance associations point at."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from cmdbgraph.db.engine import Database
from cmdbgraph.db.tables import (
    MAPPINGS,
    ON_DELETE,
    association_kinds,
    inst_associations,
    model_associations,
    models,
    text_length,
)
from cmdbgraph.services import audit, conditions, permissions
from cmdbgraph.services.caller import Caller
from cmdbgraph.services.errors import (
    EN,
    ZH,
    CmdbError,
    ErrorCode,
    parameter_invalid,
    parameter_unassigned,
)
from cmdbgraph.services.records import Model, ModelAssociation, field_names

# Upstream: an id is letters, digits and underscores, starting with a letter.
_ID_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_MODEL_COLUMNS = [models.c[name] for name in field_names(Model)]
_MODEL_ASSOCIATION_COLUMNS = [model_associations.c[name] for name in field_names(ModelAssociation)]


def _check_id(name: str, value: str | None) -> str:
    if not value:
        raise parameter_invalid(name)
    if not _ID_PATTERN.match(value):
        raise CmdbError(ErrorCode.PARAMETER_CHECK_FAILED, (name,))
    return value


def check_length(name: str, value: str, most: int) -> str:
    """``value``, or 1199006 when it is longer than its column holds."""
    if len(value) > most:
        raise CmdbError(ErrorCode.PARAMETER_CHECK_FAILED, (name,))
    return value


def check_text(name: str, value: str, most: int) -> str:
    """``value`` stripped; 1199011 when empty, 1199006 when longer than its column holds."""
    value = value.strip() if value else ""
    if not value:
        raise parameter_invalid(name)
    return check_length(name, value, most)


_STR, _INT, _BOOL, _TIME = (
    conditions.Kind.STR,
    conditions.Kind.INT,
    conditions.Kind.BOOL,
    conditions.Kind.TIME,
)
# Where a condition's names point (services/conditions.py): upstream's fields of a model.
MODEL_CONDITION_FIELDS = conditions.table_fields(
    models,
    {
        "id": _INT,
        "bk_obj_id": _STR,
        "bk_obj_name": _STR,
        "bk_classification_id": _STR,
        "bk_obj_icon": _STR,
        "ispre": _BOOL,
        "bk_ispaused": _BOOL,
        "bk_ishidden": _BOOL,
        "position": _STR,
        "description": _STR,
        "obj_sort_number": _INT,
        "bk_supplier_account": _STR,
        "creator": _STR,
        "modifier": _STR,
        "create_time": _TIME,
        "last_time": _TIME,
    },
)
# ... and of a model association.
MODEL_ASSOCIATION_CONDITION_FIELDS = conditions.table_fields(
    model_associations,
    {
        "id": _INT,
        "bk_obj_asst_id": _STR,
        "bk_obj_asst_name": _STR,
        "bk_obj_id": _STR,
        "bk_asst_obj_id": _STR,
        "bk_asst_id": _STR,
        "mapping": _STR,
        "on_delete": _STR,
        "ispre": _BOOL,
        "bk_supplier_account": _STR,
        "create_time": _TIME,
    },
)


async def list_models(
    db: Database,
    bk_obj_ids: Sequence[str] | None = None,
    *,
    condition: conditions.Node | None = None,
) -> list[Model]:
    """Models, optionally restricted to ``bk_obj_ids`` and to those matching ``condition``
    (upstream's language), in id order."""
    query = select(*_MODEL_COLUMNS).order_by(models.c.id)
    if bk_obj_ids is not None:
        query = query.where(models.c.bk_obj_id.in_(list(bk_obj_ids)))
    if condition is not None:
        query = query.where(
            conditions.compile_condition(condition, MODEL_CONDITION_FIELDS, db.dialect)
        )
    async with db.read() as conn:
        return [Model.from_row(row) for row in await conn.execute(query)]


# Upstream's names of its built-in models, which its model reads put in place of the stored
# ones, by language (resources/language/{default,en}/object.json).
BUILT_IN_MODEL_NAMES = {
    ZH: {
        "host": "主机",
        "biz": "业务",
        "set": "集群",
        "module": "模块",
        "process": "进程",
        "plat": "管控区域",
        "bk_switch": "交换机",
        "bk_router": "路由器",
        "bk_load_balance": "负载均衡",
        "bk_firewall": "防火墙",
        "bk_biz_set_obj": "业务集",
        "bk_project": "项目",
    },
    EN: {
        "host": "Host",
        "biz": "Business",
        "set": "Set",
        "module": "Module",
        "process": "Process",
        "plat": "Plat",
        "bk_switch": "Switch",
        "bk_router": "Router",
        "bk_load_balance": "Load Balance",
        "bk_firewall": "Firewall",
        "bk_biz_set_obj": "Business set",
        "bk_project": "Project",
    },
}


def model_in_language(model: Model, language: str) -> Model:
    """``model`` with upstream's name for it in ``language`` when it is a built-in one."""
    name = BUILT_IN_MODEL_NAMES.get(language, BUILT_IN_MODEL_NAMES[ZH]).get(model.bk_obj_id)
    return model if name is None else replace(model, bk_obj_name=name)


async def require_models(conn: AsyncConnection, named: Mapping[str, str | None]) -> None:
    """Refuse with 1199011 naming the parameter unless each model named exists.

    ``named`` maps a parameter name (``bk_obj_id``) to the model id it carries. Reads call it
    only when they found nothing: any row found proves its model, so the common path costs no
    extra statement."""
    wanted = {name: value for name, value in named.items() if value is not None}
    if not wanted:
        return
    rows = await conn.execute(
        select(models.c.bk_obj_id).where(models.c.bk_obj_id.in_(set(wanted.values())))
    )
    known = set(rows.scalars())
    for name, value in wanted.items():
        if value not in known:
            raise parameter_invalid(name)


async def models_by_id(db: Database, bk_obj_ids: Sequence[str]) -> dict[str, Model]:
    return {model.bk_obj_id: model for model in await list_models(db, bk_obj_ids)}


# Upstream's preset model groups (classifications) and their names; this service keeps no
# table of them.
CLASSIFICATION_NAMES = {
    "bk_host_manage": "主机管理",
    "bk_biz_topo": "业务拓扑",
    "bk_organization": "组织架构",
    "bk_network": "网络",
    "bk_uncategorized": "未分类",
}


def classification(bk_classification_id: str) -> tuple[str, str]:
    """A model group as a resource of a denial: its id, and its name where upstream presets
    one."""
    return bk_classification_id, CLASSIFICATION_NAMES.get(
        bk_classification_id, bk_classification_id
    )


@dataclass(frozen=True, slots=True)
class NewModel:
    bk_obj_id: str
    bk_obj_name: str
    bk_classification_id: str = "bk_uncategorized"
    bk_obj_icon: str = "icon-cc-default"


async def create_model(db: Database, caller: Caller, new: NewModel) -> Model:
    _check_id("bk_obj_id", new.bk_obj_id)
    name = check_text("bk_obj_name", new.bk_obj_name, text_length(models.c.bk_obj_name))
    icon = check_length(
        "bk_obj_icon", new.bk_obj_icon or "icon-cc-default", text_length(models.c.bk_obj_icon)
    )
    _check_id("bk_classification_id", new.bk_classification_id)
    now = datetime.now(UTC)
    user = caller.username or "cc_system"
    try:
        async with db.write() as conn:
            await permissions.authorize_catalog(
                conn,
                caller,
                permissions.CREATE_MODEL,
                [classification(new.bk_classification_id)],
            )
            row = (
                await conn.execute(
                    insert(models)
                    .values(
                        bk_obj_id=new.bk_obj_id,
                        bk_obj_name=name,
                        bk_classification_id=new.bk_classification_id,
                        bk_obj_icon=icon,
                        ispre=False,
                        bk_ispaused=False,
                        bk_supplier_account=caller.supplier_account,
                        creator=user,
                        modifier=user,
                        create_time=now,
                        last_time=now,
                    )
                    .returning(*_MODEL_COLUMNS)
                )
            ).one()
    except IntegrityError:
        raise CmdbError(ErrorCode.DUPLICATED, ("bk_obj_id",)) from None
    return Model.from_row(row)


@dataclass(frozen=True, slots=True)
class ModelAssociationFilter:
    bk_obj_id: str | None = None
    bk_asst_obj_id: str | None = None
    bk_asst_id: str | None = None
    bk_obj_asst_id: str | None = None
    mapping: str | None = None
    # Upstream's condition (services/conditions.py), on top of the fields above.
    condition: conditions.Node | None = None


async def list_model_associations(
    db: Database, flt: ModelAssociationFilter = ModelAssociationFilter()
) -> list[ModelAssociation]:
    where = [
        model_associations.c[name] == getattr(flt, name)
        for name in ("bk_obj_id", "bk_asst_obj_id", "bk_asst_id", "bk_obj_asst_id", "mapping")
        if getattr(flt, name) is not None
    ]
    if flt.condition is not None:
        where.append(
            conditions.compile_condition(
                flt.condition, MODEL_ASSOCIATION_CONDITION_FIELDS, db.dialect
            )
        )
    async with db.read() as conn:
        rows = await conn.execute(
            select(*_MODEL_ASSOCIATION_COLUMNS).where(*where).order_by(model_associations.c.id)
        )
        return [ModelAssociation.from_row(row) for row in rows]


@dataclass(frozen=True, slots=True)
class NewModelAssociation:
    bk_obj_id: str
    bk_asst_obj_id: str
    bk_asst_id: str
    mapping: str = "n:n"
    on_delete: str = "none"
    bk_obj_asst_id: str | None = None
    bk_obj_asst_name: str = ""


MODEL_ASSOCIATION_AUDITED = audit.CatalogResource("model", "model_association", "bk_obj_asst_id")


async def _authorize_model_association(
    conn: AsyncConnection, caller: Caller, bk_obj_ids: Sequence[str]
) -> None:
    """Changing a model association is editing both models (upstream's ``edit_sys_model``)."""
    if caller.enforce_permissions:
        resources = await permissions.model_resources(conn, bk_obj_ids)
        await permissions.authorize_catalog(conn, caller, permissions.EDIT_MODEL, resources)


async def create_model_association(
    db: Database, caller: Caller, new: NewModelAssociation
) -> ModelAssociation:
    """Create a model association: upstream's create_object_association, its checks in its
    order (a ``bk_mainline`` kind 1101082; a model or the kind not named 1101045; the same two
    models and kind already associated 1101038; a model that does not exist 1199011; no
    ``bk_obj_asst_id`` 1199010, one taken 1199014), then this service's own (the kind, mapping
    and on_delete exist, the id follows the convention the batch create relies on); audited.

    ``bk_obj_asst_id`` None is the convention ``{bk_obj_id}_{bk_asst_id}_{bk_asst_obj_id}``.
    """
    if new.bk_asst_id == "bk_mainline":
        raise CmdbError(ErrorCode.MAINLINE_NOT_ALLOWED)
    if not (new.bk_asst_id and new.bk_asst_obj_id and new.bk_obj_id):
        raise CmdbError(ErrorCode.MODEL_ASSOCIATION_MISSING_PARAMETERS)
    on_delete = new.on_delete or "none"
    bk_obj_asst_id = (
        f"{new.bk_obj_id}_{new.bk_asst_id}_{new.bk_asst_obj_id}"
        if new.bk_obj_asst_id is None
        else new.bk_obj_asst_id
    )
    pair = (new.bk_obj_id, new.bk_asst_obj_id)
    try:
        async with db.write() as conn:
            await _authorize_model_association(conn, caller, pair)
            same = await conn.execute(
                select(model_associations.c.id).where(
                    model_associations.c.bk_obj_id == new.bk_obj_id,
                    model_associations.c.bk_asst_obj_id == new.bk_asst_obj_id,
                    model_associations.c.bk_asst_id == new.bk_asst_id,
                )
            )
            if same.first() is not None:
                raise CmdbError(ErrorCode.ASSOCIATION_ALREADY_EXISTS, pair)
            known_models = set(
                (
                    await conn.execute(
                        select(models.c.bk_obj_id).where(models.c.bk_obj_id.in_(pair))
                    )
                ).scalars()
            )
            if new.bk_obj_id not in known_models and new.bk_asst_obj_id not in known_models:
                raise parameter_invalid("bk_obj_id&bk_asst_obj_id")
            if new.bk_obj_id not in known_models:
                raise parameter_invalid("bk_obj_id")
            if new.bk_asst_obj_id not in known_models:
                raise parameter_invalid("bk_asst_obj_id")
            if not bk_obj_asst_id:
                raise parameter_unassigned("bk_obj_asst_id")
            taken = await conn.execute(
                select(model_associations.c.id).where(
                    model_associations.c.bk_obj_asst_id == bk_obj_asst_id
                )
            )
            if taken.first() is not None:
                raise CmdbError(ErrorCode.DUPLICATED, (bk_obj_asst_id,))
            kind = await conn.execute(
                select(association_kinds.c.id).where(
                    association_kinds.c.bk_asst_id == new.bk_asst_id
                )
            )
            if kind.first() is None:
                raise parameter_invalid("bk_asst_id")
            if new.mapping not in MAPPINGS:
                raise parameter_invalid("mapping")
            if on_delete not in ON_DELETE:
                raise parameter_invalid("on_delete")
            check_length(
                "bk_obj_asst_name",
                new.bk_obj_asst_name,
                text_length(model_associations.c.bk_obj_asst_name),
            )
            if (
                len(bk_obj_asst_id) > text_length(model_associations.c.bk_obj_asst_id)
                or not _ID_PATTERN.match(bk_obj_asst_id[:64])
                or not bk_obj_asst_id.startswith(new.bk_obj_id)
                or not bk_obj_asst_id.endswith(new.bk_asst_obj_id)
            ):
                # The batch create call relies on this convention to check its arguments.
                raise CmdbError(ErrorCode.PARAMETER_CHECK_FAILED, ("bk_obj_asst_id",))
            row = (
                await conn.execute(
                    insert(model_associations)
                    .values(
                        bk_obj_asst_id=bk_obj_asst_id,
                        bk_obj_asst_name=new.bk_obj_asst_name,
                        bk_obj_id=new.bk_obj_id,
                        bk_asst_obj_id=new.bk_asst_obj_id,
                        bk_asst_id=new.bk_asst_id,
                        mapping=new.mapping,
                        on_delete=on_delete,
                        ispre=False,
                        bk_supplier_account=caller.supplier_account,
                        create_time=datetime.now(UTC),
                    )
                    .returning(*_MODEL_ASSOCIATION_COLUMNS)
                )
            ).one()
            created = ModelAssociation.from_row(row)
            await audit.record_catalog_change(
                conn, caller, MODEL_ASSOCIATION_AUDITED, "create", None, created
            )
    except IntegrityError:
        # Another request took the id, or removed the kind or a model, between the checks and
        # the insert: say which, as the checks would have.
        raise await _lost_race(db, new, bk_obj_asst_id) from None
    return created


async def _lost_race(db: Database, new: NewModelAssociation, bk_obj_asst_id: str) -> CmdbError:
    async with db.read() as conn:
        kind = await conn.execute(
            select(association_kinds.c.id).where(association_kinds.c.bk_asst_id == new.bk_asst_id)
        )
        if kind.first() is None:
            return parameter_invalid("bk_asst_id")
        known = set(
            (
                await conn.execute(
                    select(models.c.bk_obj_id).where(
                        models.c.bk_obj_id.in_([new.bk_obj_id, new.bk_asst_obj_id])
                    )
                )
            ).scalars()
        )
    for name, value in (("bk_obj_id", new.bk_obj_id), ("bk_asst_obj_id", new.bk_asst_obj_id)):
        if value not in known:
            return parameter_invalid(name)
    return CmdbError(ErrorCode.DUPLICATED, (bk_obj_asst_id,))


async def _model_association(conn: AsyncConnection, association_id: int) -> ModelAssociation | None:
    row = (
        await conn.execute(
            select(*_MODEL_ASSOCIATION_COLUMNS).where(model_associations.c.id == association_id)
        )
    ).first()
    return None if row is None else ModelAssociation.from_row(row)


async def update_model_association(
    db: Database, caller: Caller, association_id: int, bk_obj_asst_name: str | None
) -> ModelAssociation:
    """Upstream's update_object_association: only the name changes (None: nothing does). One
    that does not exist answers 1101046, a preset 1101054; audited."""
    if bk_obj_asst_name is not None:
        check_length(
            "bk_obj_asst_name",
            bk_obj_asst_name,
            text_length(model_associations.c.bk_obj_asst_name),
        )
    async with db.write() as conn:
        before = await _model_association(conn, association_id)
        if before is None:
            raise CmdbError(ErrorCode.MODEL_ASSOCIATION_NOT_FOUND)
        await _authorize_model_association(conn, caller, (before.bk_obj_id, before.bk_asst_obj_id))
        if before.ispre:
            raise CmdbError(ErrorCode.PRESET_ASSOCIATION_NOT_UPDATABLE)
        if bk_obj_asst_name is None:
            return before
        row = (
            await conn.execute(
                update(model_associations)
                .where(model_associations.c.id == association_id)
                .values(bk_obj_asst_name=bk_obj_asst_name)
                .returning(*_MODEL_ASSOCIATION_COLUMNS)
            )
        ).one()
        after = ModelAssociation.from_row(row)
        await audit.record_catalog_change(
            conn, caller, MODEL_ASSOCIATION_AUDITED, "update", before, after
        )
        return after


async def delete_model_association(
    db: Database, caller: Caller, association_id: int
) -> ModelAssociation | None:
    """Upstream's delete_object_association: an id that is not positive answers 1101041; one
    that does not exist is no error (None); ``bk_mainline`` answers 1101082, a preset 1101055,
    one with instance associations 1101043; audited."""
    if association_id <= 0:
        raise CmdbError(ErrorCode.MODEL_ASSOCIATION_ID_INVALID)
    try:
        async with db.write() as conn:
            found = await _model_association(conn, association_id)
            if found is None:
                return None
            await _authorize_model_association(
                conn, caller, (found.bk_obj_id, found.bk_asst_obj_id)
            )
            if found.bk_asst_id == "bk_mainline":
                raise CmdbError(ErrorCode.MAINLINE_NOT_ALLOWED)
            if found.ispre:
                raise CmdbError(ErrorCode.PRESET_ASSOCIATION_NOT_DELETABLE)
            used = await conn.execute(
                select(inst_associations.c.id)
                .where(inst_associations.c.bk_obj_asst_id == found.bk_obj_asst_id)
                .limit(1)
            )
            if used.first() is not None:
                raise CmdbError(ErrorCode.MODEL_ASSOCIATION_INSTANTIATED)
            await conn.execute(
                delete(model_associations).where(model_associations.c.id == association_id)
            )
            await audit.record_catalog_change(
                conn, caller, MODEL_ASSOCIATION_AUDITED, "delete", found, None
            )
    except IntegrityError:
        # An instance association was created between the check and the delete.
        raise CmdbError(ErrorCode.MODEL_ASSOCIATION_INSTANTIATED) from None
    return found
