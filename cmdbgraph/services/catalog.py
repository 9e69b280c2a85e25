"""Models, association kinds and model associations: what instance associations point at."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from cmdbgraph.db.engine import Database
from cmdbgraph.db.tables import (
    MAPPINGS,
    ON_DELETE,
    association_kinds,
    model_associations,
    models,
    text_length,
)
from cmdbgraph.services import conditions, permissions
from cmdbgraph.services.caller import Caller
from cmdbgraph.services.errors import EN, ZH, CmdbError, ErrorCode, parameter_invalid
from cmdbgraph.services.records import AssociationKind, Model, ModelAssociation, Page, field_names

# Upstream: an id is letters, digits and underscores, starting with a letter.
_ID_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_MODEL_COLUMNS = [models.c[name] for name in field_names(Model)]
_KIND_COLUMNS = [association_kinds.c[name] for name in field_names(AssociationKind)]
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


def _condition_fields(table, kinds: Mapping[str, conditions.Kind]) -> conditions.Fields:
    return conditions.Fields(columns={name: (table.c[name], kind) for name, kind in kinds.items()})


_STR, _INT, _BOOL, _TIME = (
    conditions.Kind.STR,
    conditions.Kind.INT,
    conditions.Kind.BOOL,
    conditions.Kind.TIME,
)
# Where a condition's names point (services/conditions.py): upstream's fields of a model.
MODEL_CONDITION_FIELDS = _condition_fields(
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
MODEL_ASSOCIATION_CONDITION_FIELDS = _condition_fields(
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
            await permissions.authorize_models(conn, caller, [permissions.ALL_MODELS])
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


# Upstream's words for its preset kinds, which its reads put in place of the stored ones, by
# language (resources/language/{default,en}/association.json): name, src_des, dest_des.
PRESET_KIND_WORDS: dict[str, dict[str, tuple[str, str, str]]] = {
    ZH: {
        "run": ("运行", "运行于", "运行"),
        "group": ("组成", "组成", "组成于"),
        "default": ("默认关联", "关联", "关联"),
        "cover": ("覆盖", "覆盖", "被覆盖"),
        "connect": ("上联", "上联", "下联"),
        "bk_mainline": ("拓扑组成", "组成", "组成于"),
        "belong": ("属于", "属于", "包含"),
    },
    EN: {
        "run": ("run on", "run on", "run"),
        "group": ("group", "group", "group by"),
        "default": ("default association", "associate", "associate"),
        "cover": ("cover", "cover", "be covered"),
        "connect": ("connect", "connect", "connected"),
        "bk_mainline": ("mainline", "group", "group by"),
        "belong": ("belong", "belong", "contain"),
    },
}
# Where a condition's names point (services/conditions.py): upstream's fields of a kind.
KIND_CONDITION_FIELDS = _condition_fields(
    association_kinds,
    {
        "id": _INT,
        "bk_asst_id": _STR,
        "bk_asst_name": _STR,
        "bk_supplier_account": _STR,
        "src_des": _STR,
        "dest_des": _STR,
        "direction": _STR,
        "ispre": _BOOL,
    },
)


def _in_language(kind: AssociationKind, language: str) -> AssociationKind:
    words = PRESET_KIND_WORDS.get(language, PRESET_KIND_WORDS[ZH]).get(kind.bk_asst_id)
    if not kind.ispre or words is None:
        return kind
    name, src_des, dest_des = words
    return replace(kind, bk_asst_name=name, src_des=src_des, dest_des=dest_des)


async def search_association_kinds(
    db: Database,
    condition: conditions.Node | None,
    *,
    offset: int = 0,
    limit: int | None = None,
    language: str = ZH,
) -> Page[AssociationKind]:
    """Upstream's search_association_type: the kinds matching ``condition`` (all of them
    counted), a page of them in id order, presets in ``language``'s words."""
    where = (
        [conditions.compile_condition(condition, KIND_CONDITION_FIELDS, db.dialect)]
        if condition is not None
        else []
    )
    async with db.read() as conn:
        total = (
            await conn.execute(select(func.count()).select_from(association_kinds).where(*where))
        ).scalar_one()
        rows = await conn.execute(
            select(*_KIND_COLUMNS)
            .where(*where)
            .order_by(association_kinds.c.id)
            .offset(offset)
            .limit(limit)
        )
        return Page(total, [_in_language(AssociationKind.from_row(r), language) for r in rows])


async def list_association_kinds(db: Database) -> list[AssociationKind]:
    async with db.read() as conn:
        rows = await conn.execute(select(*_KIND_COLUMNS).order_by(association_kinds.c.id))
        return [AssociationKind.from_row(row) for row in rows]


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


async def create_model_association(
    db: Database, caller: Caller, new: NewModelAssociation
) -> ModelAssociation:
    """Create a model association.

    Its id defaults to the convention ``{bk_obj_id}_{bk_asst_id}_{bk_asst_obj_id}``.
    """
    _check_id("bk_obj_id", new.bk_obj_id)
    _check_id("bk_asst_obj_id", new.bk_asst_obj_id)
    _check_id("bk_asst_id", new.bk_asst_id)
    if new.bk_asst_id == "bk_mainline":
        raise CmdbError(ErrorCode.MAINLINE_NOT_ALLOWED)
    if new.mapping not in MAPPINGS:
        raise parameter_invalid("mapping")
    if new.on_delete not in ON_DELETE:
        raise parameter_invalid("on_delete")
    check_length(
        "bk_obj_asst_name",
        new.bk_obj_asst_name,
        text_length(model_associations.c.bk_obj_asst_name),
    )
    bk_obj_asst_id = new.bk_obj_asst_id or f"{new.bk_obj_id}_{new.bk_asst_id}_{new.bk_asst_obj_id}"
    if len(bk_obj_asst_id) > 128 or not _ID_PATTERN.match(bk_obj_asst_id[:64]):
        raise CmdbError(ErrorCode.PARAMETER_CHECK_FAILED, ("bk_obj_asst_id",))
    if not bk_obj_asst_id.startswith(new.bk_obj_id) or not bk_obj_asst_id.endswith(
        new.bk_asst_obj_id
    ):
        # The batch create call relies on this convention to check its arguments.
        raise CmdbError(ErrorCode.PARAMETER_CHECK_FAILED, ("bk_obj_asst_id",))
    try:
        async with db.write() as conn:
            await permissions.authorize_models(conn, caller, [permissions.ALL_MODELS])
            known_models = set(
                (
                    await conn.execute(
                        select(models.c.bk_obj_id).where(
                            models.c.bk_obj_id.in_([new.bk_obj_id, new.bk_asst_obj_id])
                        )
                    )
                ).scalars()
            )
            if new.bk_obj_id not in known_models:
                raise parameter_invalid("bk_obj_id")
            if new.bk_asst_obj_id not in known_models:
                raise parameter_invalid("bk_asst_obj_id")
            kind = (
                await conn.execute(
                    select(association_kinds.c.bk_asst_id).where(
                        association_kinds.c.bk_asst_id == new.bk_asst_id
                    )
                )
            ).first()
            if kind is None:
                raise parameter_invalid("bk_asst_id")
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
                        on_delete=new.on_delete,
                        ispre=False,
                        bk_supplier_account=caller.supplier_account,
                        create_time=datetime.now(UTC),
                    )
                    .returning(*_MODEL_ASSOCIATION_COLUMNS)
                )
            ).one()
    except IntegrityError:
        raise CmdbError(ErrorCode.DUPLICATED, ("bk_obj_asst_id",)) from None
    return ModelAssociation.from_row(row)
