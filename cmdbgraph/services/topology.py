"""An instance's neighbourhood along its associations (topology), and what depends on it
(impact), each in ONE recursive SQL statement.

Direction: an association ``A <kind> B`` (``bk_inst_id`` A, ``bk_asst_inst_id`` B) is followed
from A to B going OUT, from B to A going IN, and either way going BOTH. In BlueKing's terms the
source depends on the target (``host belong rack``, ``app connect db``: the host needs the rack,
the app needs the database), so what depends on an instance, the blast radius of taking it
down, is everything that reaches it following associations forwards: found from it going IN.

The traversal is a breadth-first search in which every row of the recursive query is one
whole level: the instances first reached at that depth (the frontier) and those reached
before (seen), carried as a set in the row (an array on PostgreSQL, comma-wrapped text on
SQLite). The next level is the frontier's neighbours minus both sets (a set difference, one
sort or hash), so every instance is entered once, at its shortest distance, and expanded once:
the work is the associations of the instances reached, whatever the cycles and however many
paths lead to an instance. A level keeps at most as many new instances as the node cap leaves
room for, the lowest ids first, and one more to tell that some were left out. The walk stops
at the depth, at the cap or at an empty level (a cycle ends in one); then the same statement
answers the instances reached with their depth, the associations between them (at most the
cap, by id, one more to tell), and whether anything was left out: a level that did not fit,
or an association from the last level to an instance not reached.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    CTE,
    BigInteger,
    ColumnElement,
    CompoundSelect,
    Integer,
    Select,
    String,
    bindparam,
    cast,
    except_,
    exists,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    true,
    union,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY, array
from sqlalchemy.types import TypeEngine

from cmdbgraph.db.engine import Database
from cmdbgraph.db.tables import inst_associations, instances
from cmdbgraph.services.errors import exceeds_limit, parameter_invalid
from cmdbgraph.services.records import Instance, InstAssociation, build_all, field_names


class Direction(enum.Enum):
    OUT = "out"  # from the source to the target: what an instance depends on
    IN = "in"  # from the target to the source: what depends on an instance
    BOTH = "both"


@dataclass(frozen=True, slots=True)
class Node:
    instance: Instance
    depth: int  # the fewest associations between the start and this instance


@dataclass(frozen=True, slots=True)
class Topology:
    # The start first (depth 0), then by depth and id.
    nodes: list[Node]
    # The associations between the nodes (of the kinds asked for), each once, by id.
    edges: list[InstAssociation]
    # Something was left out: more instances than the node cap, more associations between
    # them than the cap, or instances beyond the depth.
    truncated: bool


@dataclass(frozen=True, slots=True)
class Impact:
    # What depends on the instance (not the instance itself), by depth and id.
    nodes: list[Node]
    truncated: bool


def topology_bounds(
    depth: int | None,
    max_nodes: int | None,
    *,
    max_depth: int,
    nodes_limit: int,
    default_nodes: int | None = None,
    depth_name: str = "depth",
    nodes_name: str = "max_nodes",
) -> tuple[int | None, int]:
    """``(depth, max_nodes)`` checked as page sizes are (services/limits.page_bounds): below
    the range 1199011 naming the parameter, above it 1199035 naming it and the limit. No
    ``max_nodes`` is ``default_nodes`` (the limit when not given, or above it); no ``depth``
    stays None (no depth limit: impact)."""
    if depth is not None:
        if depth < 0:
            raise parameter_invalid(depth_name)
        if depth > max_depth:
            raise exceeds_limit(depth_name, max_depth)
    if max_nodes is None:
        max_nodes = min(default_nodes or nodes_limit, nodes_limit)
    if max_nodes < 1:
        raise parameter_invalid(nodes_name)
    if max_nodes > nodes_limit:
        raise exceeds_limit(nodes_name, nodes_limit)
    return depth, max_nodes


async def topology(
    db: Database,
    bk_inst_id: int,
    *,
    depth: int | None,
    max_nodes: int,
    direction: Direction = Direction.BOTH,
    bk_asst_ids: Sequence[str] | None = None,
    bk_obj_ids: Sequence[str] | None = None,
    edges: bool = True,
) -> Topology | None:
    """The instances within ``depth`` associations of ``bk_inst_id`` (None: any number),
    following ``direction``, at most ``max_nodes`` of them (the start included), and the
    associations between them (at most ``max_nodes``; none unless ``edges``). Only
    associations of the kinds ``bk_asst_ids`` are followed, and only instances of the models
    ``bk_obj_ids`` are entered (the start is always there); None for either: all of them.
    None when the instance does not exist. One statement; bounds are the caller's to check
    (``topology_bounds``)."""
    statement = _statement(
        db.dialect,
        direction,
        bounded=depth is not None,
        kinds=bk_asst_ids is not None,
        models=bk_obj_ids is not None,
        edges=edges,
    )
    values: dict[str, object] = {"start": bk_inst_id, "max_nodes": max_nodes}
    if depth is not None:
        values["depth"] = depth
    if bk_asst_ids is not None:
        values["kinds"] = list(bk_asst_ids)
    if bk_obj_ids is not None:
        values["models"] = list(bk_obj_ids)
    async with db.read() as conn:
        rows = await build_all(await conn.execute(statement, values), _parse)
    nodes = [row for row in rows if isinstance(row, Node)]
    found = [row for row in rows if isinstance(row, InstAssociation)]
    truncated = any(row is None for row in rows)
    nodes.sort(key=lambda node: (node.depth, node.instance.bk_inst_id))
    if not nodes or nodes[0].depth != 0:
        return None
    found.sort(key=lambda association: association.id)
    if len(found) > max_nodes:
        del found[max_nodes:]
        truncated = True
    return Topology(nodes=nodes, edges=found, truncated=truncated)


async def impact(
    db: Database, bk_inst_id: int, *, max_nodes: int, direction: Direction = Direction.IN
) -> Impact | None:
    """What depends on ``bk_inst_id``, transitively (going IN; going OUT: what it depends on),
    at any depth: at most ``max_nodes`` instances, each with its distance. None when the
    instance does not exist. One statement."""
    found = await topology(
        db, bk_inst_id, depth=None, max_nodes=max_nodes + 1, direction=direction, edges=False
    )
    if found is None:
        return None
    return Impact(nodes=found.nodes[1:], truncated=found.truncated)


# ---------------------------------------------------------------------------------------------
# The statement


# The values of a statement, bound when it runs: a statement is built once per shape.
_START = bindparam("start", type_=BigInteger)
_DEPTH = bindparam("depth", type_=Integer)
_MAX_NODES = bindparam("max_nodes", type_=Integer)
_KINDS = bindparam("kinds", type_=String, expanding=True)
_MODELS = bindparam("models", type_=String, expanding=True)


class _Sets:
    """A set of instance ids carried in a column of the recursive query, per database."""

    def start(self) -> ColumnElement:
        """The set of the instance asked about."""
        raise NotImplementedError

    def empty(self) -> ColumnElement:
        raise NotImplementedError

    def size(self, ids: ColumnElement) -> ColumnElement:
        raise NotImplementedError

    def has(self, ids: ColumnElement, column: ColumnElement) -> ColumnElement[bool]:
        """``column`` is in ``ids``, as an index can serve it."""
        raise NotImplementedError

    def aggregate(self, column: ColumnElement) -> ColumnElement:
        """The set of ``column`` over the rows (the empty set for none)."""
        raise NotImplementedError

    def union(self, a: ColumnElement, b: ColumnElement) -> ColumnElement:
        """``a`` and ``b``, which have nothing in common."""
        raise NotImplementedError

    def members(self, ids: ColumnElement):
        """A table of the members (column ``value``), to join after the table of ``ids``."""
        raise NotImplementedError


class _PostgresSets(_Sets):
    """bigint[] arrays."""

    type = ARRAY(BigInteger)

    def start(self) -> ColumnElement:
        return cast(array([_START]), self.type)

    def empty(self) -> ColumnElement:
        return cast(literal_column("'{}'"), self.type)

    def size(self, ids: ColumnElement) -> ColumnElement:
        return func.cardinality(ids, type_=Integer)

    def has(self, ids: ColumnElement, column: ColumnElement) -> ColumnElement[bool]:
        return column == func.any(ids)

    def aggregate(self, column: ColumnElement) -> ColumnElement:
        return func.coalesce(func.array_agg(column, type_=self.type), self.empty())

    def union(self, a: ColumnElement, b: ColumnElement) -> ColumnElement:
        return a.op("||")(b)

    def members(self, ids: ColumnElement):
        return func.unnest(ids).table_valued("value").render_derived(name="member")


class _SqliteSets(_Sets):
    """Text of the ids between commas (``,3,14,15,``; the empty set ``,``): read as a JSON
    array by json_each, counted by its commas, added to by a concatenation."""

    def start(self) -> ColumnElement:
        return "," + cast(_START, String) + ","

    def empty(self) -> ColumnElement:
        return literal_column("','", String)

    def size(self, ids: ColumnElement) -> ColumnElement:
        return func.length(ids) - func.length(func.replace(ids, ",", "")) - 1

    def has(self, ids: ColumnElement, column: ColumnElement) -> ColumnElement[bool]:
        return column.in_(select(self.members(ids).c.value))

    def aggregate(self, column: ColumnElement) -> ColumnElement:
        return func.coalesce("," + func.group_concat(column, ",") + ",", ",")

    def union(self, a: ColumnElement, b: ColumnElement) -> ColumnElement:
        return a + func.substr(b, 2)

    def members(self, ids: ColumnElement):
        as_json = "[" + func.trim(ids, ",") + "]"
        return func.json_each(as_json).table_valued("value")


_SETS: dict[str, _Sets] = {"postgresql": _PostgresSets(), "sqlite": _SqliteSets()}

_ia = inst_associations.c
_INSTANCE_FIELDS = field_names(Instance)
_ASSOCIATION_FIELDS = field_names(InstAssociation)
# The columns of the answer: what it is ("n" a node, "e" an edge, "t" something was left
# out), a node's depth, an instance's fields, an association's (prefixed).
_SLOTS: list[tuple[str, TypeEngine]] = [
    ("kind", String()),
    ("depth", Integer()),
    *((name, instances.c[name].type) for name in _INSTANCE_FIELDS),
    *((f"a_{name}", inst_associations.c[name].type) for name in _ASSOCIATION_FIELDS),
]


def _row(kind: str, values: dict[str, ColumnElement]) -> list[ColumnElement]:
    """The answer's columns, ``values`` where given and typed NULLs elsewhere."""
    values = {"kind": literal(kind, String), **values}
    return [
        (values[name] if name in values else cast(null(), type_)).label(name)
        for name, type_ in _SLOTS
    ]


def _follow(
    direction: Direction,
    kinds: bool,
    models: bool,
    here: Callable[[ColumnElement], ColumnElement[bool]],
    there: Callable[[ColumnElement], ColumnElement[bool]] | None = None,
) -> list[Select]:
    """The instances one association away (column ``value``) from the instances ``here``
    accepts, following ``direction``, associations of the kinds asked for and instances of
    the models asked for only (``kinds``, ``models``: whether they were), among those
    ``there`` accepts: a select per direction."""
    ends = []
    if direction in (Direction.OUT, Direction.BOTH):
        ends.append((_ia.bk_inst_id, _ia.bk_asst_inst_id, _ia.bk_asst_obj_id))
    if direction in (Direction.IN, Direction.BOTH):
        ends.append((_ia.bk_asst_inst_id, _ia.bk_inst_id, _ia.bk_obj_id))
    steps = []
    for near, far, far_model in ends:
        step = select(far.label("value")).where(here(near))
        if kinds:
            step = step.where(_ia.bk_asst_id.in_(_KINDS))
        if models:
            step = step.where(far_model.in_(_MODELS))
        if there is not None:
            step = step.where(there(far))
        steps.append(step)
    return steps


def _levels(sets: _Sets, direction: Direction, *, bounded: bool, kinds: bool, models: bool) -> CTE:
    """The breadth-first search, one row per level: ``depth``, ``frontier`` (the instances
    first reached at that depth, lowest ids first, at most ``allowed`` + 1 of them), ``seen``
    (those of the levels before) and ``allowed`` (how many the level may keep). A level that
    holds more than it may keep is the last one; so is the level at ``depth``, and the level
    that fills the cap."""
    anchor = select(
        literal_column("0", Integer).label("depth"),
        sets.start().label("frontier"),
        sets.empty().label("seen"),
        _MAX_NODES.label("allowed"),
    )
    levels = anchor.cte("levels", recursive=True)
    previous = levels.alias("previous")
    frontier, seen = previous.c.frontier, previous.c.seen

    steps = [
        step.correlate(previous)
        for step in _follow(direction, kinds, models, lambda column: sets.has(frontier, column))
    ]
    reached = (union(*steps) if len(steps) > 1 else steps[0]).subquery("reached")
    # The instances reached for the first time: a set difference (one sort or hash, where a
    # membership test per candidate would cost the size of the sets each).
    fresh = except_(
        select(reached.c.value).correlate(previous),
        select(sets.members(seen).c.value).correlate(previous),
        select(sets.members(frontier).c.value).correlate(previous),
    ).subquery("fresh")
    room = _MAX_NODES - (sets.size(seen) + sets.size(frontier))
    # As many as the level may keep, lowest ids first, and one more to tell whether any were
    # left out (by rank: on SQLite a LIMIT cannot depend on the row).
    ranked = select(
        fresh.c.value, func.row_number().over(order_by=fresh.c.value).label("rank")
    ).subquery("ranked")
    new = (
        select(ranked.c.value).where(ranked.c.rank <= room + 1).correlate(previous).subquery("new")
    )
    following = select(
        (previous.c.depth + 1).label("depth"),
        select(sets.aggregate(new.c.value)).scalar_subquery().label("frontier"),
        sets.union(seen, frontier).label("seen"),
        room.label("allowed"),
    ).where(sets.size(frontier) > 0, sets.size(frontier) <= previous.c.allowed, room > 0)
    if bounded:
        following = following.where(previous.c.depth < _DEPTH)
    return levels.union_all(following)


@functools.lru_cache(maxsize=128)
def _statement(
    dialect: str, direction: Direction, *, bounded: bool, kinds: bool, models: bool, edges: bool
) -> CompoundSelect:
    """The statement of one shape (built once: building it costs more than running it on a
    small neighbourhood). ``bounded``: whether a depth was given; ``kinds``, ``models``:
    whether those filters were; ``edges``: whether the associations are wanted."""
    sets = _SETS[dialect]
    levels = _levels(sets, direction, bounded=bounded, kinds=kinds, models=models)
    member = sets.members(levels.c.frontier)
    ranked = (
        select(
            member.c.value.label("id"),
            levels.c.depth,
            levels.c.allowed,
            func.row_number()
            .over(partition_by=levels.c.depth, order_by=member.c.value)
            .label("rank"),
        )
        .select_from(levels)
        .join(member, true())
        .subquery("ranked")
    )
    # The instances reached, each with its depth: those each level may keep.
    kept = select(ranked.c.id, ranked.c.depth).where(ranked.c.rank <= ranked.c.allowed).cte("kept")
    last = select(func.max(levels.c.depth)).scalar_subquery()
    # Instances left out: a level held more than it could keep, or the last level (the one
    # at the depth, or the one that filled the cap) leads to instances not reached.
    beyond = _follow(
        direction,
        kinds,
        models,
        lambda column: column.in_(select(kept.c.id).where(kept.c.depth == last)),
        lambda column: column.not_in(select(kept.c.id)),
    )
    left_out = or_(
        exists().where(sets.size(levels.c.frontier) > levels.c.allowed),
        *(step.exists() for step in beyond),
    )
    parts = [
        select(
            *_row(
                "n",
                {"depth": kept.c.depth, **{name: instances.c[name] for name in _INSTANCE_FIELDS}},
            )
        ).select_from(kept.join(instances, instances.c.bk_inst_id == kept.c.id)),
        select(*_row("t", {})).where(left_out),
    ]
    if edges:
        between = select(*(_ia[name] for name in _ASSOCIATION_FIELDS)).where(
            _ia.bk_inst_id.in_(select(kept.c.id)), _ia.bk_asst_inst_id.in_(select(kept.c.id))
        )
        if kinds:
            between = between.where(_ia.bk_asst_id.in_(_KINDS))
        # One more than the cap: whether any were left out.
        between_page = between.order_by(_ia.id).limit(_MAX_NODES + 1).subquery("between")
        parts.append(
            select(*_row("e", {f"a_{name}": between_page.c[name] for name in _ASSOCIATION_FIELDS}))
        )
    return union_all(*parts)


def _parse(row) -> Node | InstAssociation | None:
    """A node, an edge, or None: something was left out."""
    values = row._mapping
    kind = values["kind"]
    if kind == "n":
        instance = Instance(**{name: values[name] for name in _INSTANCE_FIELDS})
        return Node(instance=instance, depth=values["depth"])
    if kind == "e":
        return InstAssociation(**{name: values[f"a_{name}"] for name in _ASSOCIATION_FIELDS})
    return None
