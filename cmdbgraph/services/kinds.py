"""Association kinds (``belong``, ``connect``, ...): what a model association means. Upstream's
search_association_type, create_association_type, update_association_type and
delete_association_type."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from cmdbgraph.db.engine import Database
from cmdbgraph.db.tables import association_kinds, model_associations
from cmdbgraph.services import audit, conditions, permissions
from cmdbgraph.services.caller import Caller
from cmdbgraph.services.errors import EN, ZH, CmdbError, ErrorCode, parameter_invalid
from cmdbgraph.services.records import AssociationKind, Page, field_names

_KIND_COLUMNS = [association_kinds.c[name] for name in field_names(AssociationKind)]
# Upstream's rule for a kind's id (Go's \w is ASCII), and its longest id and texts.
_KIND_ID = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*$")
MAX_KIND_ID = 128
MAX_TEXT = 128
DIRECTIONS = ("none", "src_to_dest", "bidirectional")
AUDITED = audit.CatalogResource("association_kind", "association_kind", "bk_asst_name")

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
KIND_CONDITION_FIELDS = conditions.table_fields(
    association_kinds,
    {
        "id": conditions.Kind.INT,
        "bk_asst_id": conditions.Kind.STR,
        "bk_asst_name": conditions.Kind.STR,
        "bk_supplier_account": conditions.Kind.STR,
        "src_des": conditions.Kind.STR,
        "dest_des": conditions.Kind.STR,
        "direction": conditions.Kind.STR,
        "ispre": conditions.Kind.BOOL,
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
    sort: Sequence[tuple[str, bool]] = (),
    language: str = ZH,
) -> Page[AssociationKind]:
    """Upstream's search_association_type: the kinds matching ``condition`` (all of them
    counted), a page of them ordered by ``sort`` ((field, descending) pairs), then by id,
    presets in ``language``'s words."""
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
            .order_by(*conditions.ordering(KIND_CONDITION_FIELDS, sort), association_kinds.c.id)
            .offset(offset)
            .limit(limit)
        )
        return Page(total, [_in_language(AssociationKind.from_row(r), language) for r in rows])


async def list_association_kinds(db: Database) -> list[AssociationKind]:
    async with db.read() as conn:
        rows = await conn.execute(select(*_KIND_COLUMNS).order_by(association_kinds.c.id))
        return [AssociationKind.from_row(row) for row in rows]


async def _kind(conn, kind_id: int) -> AssociationKind | None:
    row = (
        await conn.execute(select(*_KIND_COLUMNS).where(association_kinds.c.id == kind_id))
    ).first()
    return None if row is None else AssociationKind.from_row(row)


def _texts(values: Mapping[str, str | None]) -> dict[str, str]:
    """The texts given (None: not given), checked: 1199073 for one longer than upstream's
    columns, 1199011 for a direction this service does not draw (``""`` is ``none``: upstream
    stores it so for a caller that sends none)."""
    given = {name: value for name, value in values.items() if value is not None}
    for name, value in given.items():
        if name != "direction" and len(value) > MAX_TEXT:
            raise CmdbError(ErrorCode.EXCEEDS_MAXIMUM, (name, MAX_TEXT))
    if "direction" in given:
        given["direction"] = given["direction"] or "none"
        if given["direction"] not in DIRECTIONS:
            raise parameter_invalid("direction")
    return given


@dataclass(frozen=True, slots=True)
class NewKind:
    bk_asst_id: str
    bk_asst_name: str = ""
    src_des: str = ""
    dest_des: str = ""
    direction: str = "src_to_dest"


@dataclass(frozen=True, slots=True)
class KindTexts:
    """What update_association_type sets: upstream sets all four at once; None keeps one."""

    bk_asst_name: str | None = None
    src_des: str | None = None
    dest_des: str | None = None
    direction: str | None = None


async def create_kind(db: Database, caller: Caller, new: NewKind) -> AssociationKind:
    """Upstream's create_association_type: its checks in its order (the id taken 1199014, longer
    than 128 1199073, not a letter then letters, digits or underscores 1199011 naming it), then
    this service's on the texts; audited."""
    texts = {
        "bk_asst_name": new.bk_asst_name,
        "src_des": new.src_des,
        "dest_des": new.dest_des,
        "direction": new.direction,
    }
    try:
        async with db.write() as conn:
            await permissions.authorize_catalog(conn, caller, permissions.CREATE_KIND)
            taken = (
                await conn.execute(
                    select(association_kinds.c.id).where(
                        association_kinds.c.bk_asst_id == new.bk_asst_id
                    )
                )
            ).first()
            if taken is not None:
                raise CmdbError(ErrorCode.DUPLICATED, (new.bk_asst_id,))
            if len(new.bk_asst_id) > MAX_KIND_ID:
                raise CmdbError(ErrorCode.EXCEEDS_MAXIMUM, ("bk_asst_id", MAX_KIND_ID))
            if not _KIND_ID.match(new.bk_asst_id):
                raise parameter_invalid(new.bk_asst_id)
            row = (
                await conn.execute(
                    insert(association_kinds)
                    .values(
                        bk_asst_id=new.bk_asst_id,
                        ispre=False,
                        bk_supplier_account=caller.supplier_account,
                        **_texts(texts),
                    )
                    .returning(*_KIND_COLUMNS)
                )
            ).one()
            created = AssociationKind.from_row(row)
            await audit.record_catalog_change(conn, caller, AUDITED, "create", None, created)
    except IntegrityError:
        # Another request took the id between the check and the insert.
        raise CmdbError(ErrorCode.DUPLICATED, (new.bk_asst_id,)) from None
    return created


async def update_kind(
    db: Database, caller: Caller, kind_id: int, texts: KindTexts
) -> AssociationKind | None:
    """Upstream's update_association_type: the texts given set; a kind that does not exist is
    no error (None). Presets may be edited, as upstream allows: reads still show
    upstream's words for them."""
    values = _texts(asdict(texts))
    async with db.write() as conn:
        before = await _kind(conn, kind_id)
        await permissions.authorize_catalog(
            conn,
            caller,
            permissions.EDIT_KIND,
            [(kind_id, before.bk_asst_name if before else "")],
        )
        if before is None or not values:
            return before
        row = (
            await conn.execute(
                update(association_kinds)
                .where(association_kinds.c.id == kind_id)
                .values(**values)
                .returning(*_KIND_COLUMNS)
            )
        ).one()
        after = AssociationKind.from_row(row)
        await audit.record_catalog_change(conn, caller, AUDITED, "update", before, after)
        return after


async def delete_kind(db: Database, caller: Caller, kind_id: int) -> AssociationKind | None:
    """Upstream's delete_association_type: a kind that does not exist is no error (None); a
    preset answers 1101051, a kind a model association uses 1101060."""
    try:
        async with db.write() as conn:
            found = await _kind(conn, kind_id)
            await permissions.authorize_catalog(
                conn,
                caller,
                permissions.DELETE_KIND,
                [(kind_id, found.bk_asst_name if found else "")],
            )
            if found is None:
                return None
            if found.ispre:
                raise CmdbError(ErrorCode.PRESET_KIND_NOT_DELETABLE)
            used = (
                await conn.execute(
                    select(model_associations.c.id)
                    .where(model_associations.c.bk_asst_id == found.bk_asst_id)
                    .limit(1)
                )
            ).first()
            if used is not None:
                raise CmdbError(ErrorCode.KIND_IN_USE)
            await conn.execute(delete(association_kinds).where(association_kinds.c.id == kind_id))
            await audit.record_catalog_change(conn, caller, AUDITED, "delete", found, None)
    except IntegrityError:
        # A model association took the kind between the check and the delete.
        raise CmdbError(ErrorCode.KIND_IN_USE) from None
    return found
