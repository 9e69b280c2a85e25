"""The GraphQL execution context: strawberry's, with plain fields completed without a resolver
call, and a memory of its own for each subscription event.

**Plain reads.** A field strawberry answers by reading an attribute (no resolver, no arguments,
no field extension) costs graphql-core a resolve info, a resolver call and a walk through
``complete_value`` each; a batch's 200 typed results hold about 2,400 of them. Here:

- an object's plain fields whose value is null (on a nullable field), or a plain value its
  leaf type coerces, are read and coerced directly (``execute_fields``);
- a list of objects whose selection holds only plain reads (of leaves, or of objects whose
  selection does too) is completed in one loop over its items (``complete_iterable_value``).

Both give the value graphql-core would give. Anything else takes graphql-core's own way, as
before: a null on a non-null field, a value the coercion refuses or that is awaitable, an
object that is not of its type, middleware in force, ``@stream``. For a single field that is
``execute_field``, which reads the attribute again and reports the error as it always did; for
a list, the whole list is completed again by graphql-core (plain reads have no side effects).
How a selection completes is worked out once per selection (graphql-core collects the fields
of a list's items once) and kept with it.

**A memory of its own for each subscription event.** graphql-core 3.3 runs each event of a
subscription on a shallow copy of the subscription's executor, so every copy shares one memo of
the subfields it collected, keyed by the identity of lists that are new for each event: the
memo would grow with every event (about 2 kB each) for as long as the subscription lives. The
plans of the selections go with it.
"""

from __future__ import annotations

from typing import Any, NamedTuple
from weakref import WeakKeyDictionary

from graphql import (
    GraphQLBoolean,
    GraphQLID,
    GraphQLObjectType,
    GraphQLString,
    Undefined,
    is_leaf_type,
    is_non_null_type,
)
from graphql.pyutils import Path, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import CustomGraphQLEnumType, GraphQLCoreConverter


class PlainRead(NamedTuple):
    """A field strawberry answers by reading an attribute: the attribute; the type of the
    values that are their own output (``str`` for String and ID, ``bool`` for Boolean:
    graphql-core gives them back as they are); the leaf type's output coercion (None for any
    other type); whether the field may be null; its named type."""

    attribute: str
    exact: type | None
    coerce: Any
    nullable: bool
    named: Any


class Tree(NamedTuple):
    """How an object completes when its selection holds only plain reads: the object type's
    check of a value (strawberry's ``is_type_of``, or None) and, per response key, the read,
    and the tree of the object it reads (None for a leaf)."""

    is_type_of: Any
    fields: tuple[tuple[str, PlainRead, Tree | None], ...]


# The plain reads of each object type, found the first time a request completes one.
_PLAIN_READS: WeakKeyDictionary[GraphQLObjectType, dict[str, PlainRead]] = WeakKeyDictionary()

_OWN_OUTPUT: dict[object, type] = {GraphQLString: str, GraphQLID: str, GraphQLBoolean: bool}
# Values no output coercion or awaiting needs looking at twice (strawberry's fast path too).
_PLAIN_VALUES = frozenset({bool, int, float, str, list, dict})
_ABSENT = object()
_IRREGULAR = object()  # a list the loop leaves to graphql-core

# How one object's fields complete: (response name, field details, plain read or None).
_Plan = tuple[tuple[str, Any, PlainRead | None], ...]


def _output_coercion(leaf_type: Any) -> Any:
    """The leaf type's output coercion. strawberry's enums find a member's name by comparing
    it with each of their values in turn (ErrorCode has about 40): here a member is looked up
    by its value in a table made once, the first name wins as in strawberry's loop, and
    anything the table does not answer goes to strawberry's coercion."""
    slow = leaf_type.coerce_output_value
    if not isinstance(leaf_type, CustomGraphQLEnumType):
        return slow
    names: dict[Any, str] = {}
    try:
        for name, value in leaf_type.values.items():
            names.setdefault(value.value, name)
    except TypeError:  # a value that cannot be a key
        return slow
    members = leaf_type.wrapped_cls

    def coerce(output_value: Any) -> Any:
        if isinstance(output_value, members):
            name = names.get(output_value.value)
            if name is not None:
                return name
        return slow(output_value)

    return coerce


def plain_reads(parent_type: GraphQLObjectType) -> dict[str, PlainRead]:
    """The fields of ``parent_type`` strawberry answers by reading an attribute."""
    reads = _PLAIN_READS.get(parent_type)
    if reads is None:
        reads = {}
        for name, field in parent_type.fields.items():
            definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if (
                definition is None
                or field.args
                or not getattr(field.resolve, "_is_default", False)  # strawberry's basic read
                or getattr(definition, "default_resolver", None) is not getattr
                or not getattr(definition, "is_basic_field", False)
            ):
                continue
            nullable = not is_non_null_type(field.type)
            named = field.type if nullable else field.type.of_type
            leaf = is_leaf_type(named)
            reads[name] = PlainRead(
                definition.python_name,
                _OWN_OUTPUT.get(named) if leaf else None,
                _output_coercion(named) if leaf else None,
                nullable,
                named,
            )
        _PLAIN_READS[parent_type] = reads
    return reads


def strawberry_is_type_of(object_type: GraphQLObjectType) -> tuple[bool, Any]:
    """Whether values of ``object_type`` can be checked without a resolve info, and the check:
    strawberry's own ``is_type_of`` (an ``isinstance``, which ignores the info) or none."""
    check = object_type.is_type_of
    if check is None:
        return True, None
    code = getattr(check, "__code__", None)
    known = (
        getattr(check, "__module__", None) == "strawberry.schema.schema_converter"
        and getattr(check, "__qualname__", "").endswith("_get_is_type_of.<locals>.is_type_of")
        and code is not None
        and code.co_varnames[:2] == ("obj", "_info")
    )
    return known, check if known else None


def _is_plain_value(value: Any, is_awaitable) -> bool:
    return type(value) in _PLAIN_VALUES or not (isinstance(value, Exception) or is_awaitable(value))


class ExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context with plain reads and a memory per subscription event
    (see the module's text)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        manager = self.middleware_manager
        # Middleware wraps every resolver: then every field takes graphql-core's way.
        self.plain_reads = not (manager is not None and manager._middleware_resolvers)
        # id(grouped field set) -> (the set, kept alive so the id stays its own; its plan)
        self.plans: dict[int, tuple[Any, _Plan | None]] = {}
        # (object type, id(field details)) -> (the details, kept alive; the tree or None)
        self.trees: dict[tuple[GraphQLObjectType, int], tuple[Any, Tree | None]] = {}

    def build_per_event_executor(self, payload):
        executor = super().build_per_event_executor(payload)
        if isinstance(getattr(executor, "_relevant_sub_fields", None), dict):
            executor._relevant_sub_fields = {}
        if isinstance(executor, ExecutionContext):
            executor.plans = {}
            executor.trees = {}
        return executor

    # --- one object's fields ------------------------------------------------------------

    def _plan(self, parent_type: GraphQLObjectType, grouped_field_set) -> _Plan | None:
        """How the fields of ``grouped_field_set`` complete on ``parent_type``; None when none
        of them is a plain read."""
        kept = self.plans.get(id(grouped_field_set))
        if kept is not None and kept[0] is grouped_field_set:
            return kept[1]
        reads = plain_reads(parent_type) if self.plain_reads else {}
        plan = tuple(
            (name, details, reads.get(details[0].node.name.value))
            for name, details in grouped_field_set.items()
        )
        found = plan if any(read is not None for _, _, read in plan) else None
        self.plans[id(grouped_field_set)] = (grouped_field_set, found)
        return found

    def execute_fields(  # noqa: C901  (graphql-core's loop, with the plain reads inlined)
        self, parent_type, source_value, path, grouped_field_set, position_context
    ):
        plan = self._plan(parent_type, grouped_field_set)
        if plan is None:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        type_name = parent_type.name
        try:
            for response_name, field_details_list, read in plan:
                if read is not None:
                    value = getattr(source_value, read.attribute, _ABSENT)
                    if value is None:
                        if read.nullable:
                            results[response_name] = None
                            continue
                    elif type(value) is read.exact:
                        results[response_name] = value
                        continue
                    elif (
                        read.coerce is not None
                        and value is not _ABSENT
                        and _is_plain_value(value, is_awaitable)
                    ):
                        try:
                            coerced = read.coerce(value)
                        except Exception:  # reported by graphql-core's way below
                            coerced = None
                        if coerced is not None and coerced is not Undefined:
                            results[response_name] = coerced
                            continue
                result = self.execute_field(
                    parent_type,
                    source_value,
                    field_details_list,
                    Path(path, response_name, type_name),
                    position_context,
                )
                if result is not Undefined:
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[field] for field in awaitable_fields])
            raise
        if not awaitable_fields:
            return results
        return self._gather_fields(results, awaitable_fields)

    @staticmethod
    async def _gather_fields(results: dict[str, Any], awaitable_fields: list[str]):
        if len(awaitable_fields) == 1:
            field = awaitable_fields[0]
            results[field] = await results[field]
        else:
            awaited = await gather_with_cancel(*(results[field] for field in awaitable_fields))
            results.update(zip(awaitable_fields, awaited, strict=True))
        return results

    # --- lists of objects -----------------------------------------------------------------

    def _tree(self, object_type: GraphQLObjectType, field_details_list) -> Tree | None:
        """How a value of ``object_type`` selected by ``field_details_list`` completes when
        every field of its selection is a plain read; None otherwise."""
        key = (object_type, id(field_details_list))
        kept = self.trees.get(key)
        if kept is not None and kept[0] is field_details_list:
            return kept[1]
        self.trees[key] = (field_details_list, None)  # a cycle is no tree
        tree = self._build_tree(object_type, field_details_list)
        self.trees[key] = (field_details_list, tree)
        return tree

    def _build_tree(self, object_type: GraphQLObjectType, field_details_list) -> Tree | None:
        checkable, is_type_of = strawberry_is_type_of(object_type)
        if not checkable or not self.plain_reads:
            return None
        grouped_field_set, new_defer_usages, _ = self.collect_subfields(
            object_type, field_details_list
        )
        if new_defer_usages:
            return None
        reads = plain_reads(object_type)
        fields = []
        for response_name, details in grouped_field_set.items():
            read = reads.get(details[0].node.name.value)
            if read is None:
                return None
            subtree = None
            if read.coerce is None:  # an object, or a list
                if not isinstance(read.named, GraphQLObjectType):
                    return None
                subtree = self._tree(read.named, details)
                if subtree is None:
                    return None
            fields.append((response_name, read, subtree))
        return Tree(is_type_of, tuple(fields))

    def _complete_plain(self, tree: Tree, value: Any, info: Any) -> Any:
        """``value`` completed by ``tree``; ``_IRREGULAR`` when graphql-core must do it."""
        is_awaitable = self.is_awaitable
        if tree.is_type_of is not None:
            if not tree.is_type_of(value, info):
                return _IRREGULAR
        elif not _is_plain_value(value, is_awaitable):
            return _IRREGULAR
        completed: dict[str, Any] = {}
        for response_name, read, subtree in tree.fields:
            field_value = getattr(value, read.attribute, _ABSENT)
            if field_value is None:
                if not read.nullable:
                    return _IRREGULAR
                completed[response_name] = None
            elif type(field_value) is read.exact:
                completed[response_name] = field_value
            elif subtree is not None:
                if field_value is _ABSENT:
                    return _IRREGULAR
                inner = self._complete_plain(subtree, field_value, info)
                if inner is _IRREGULAR:
                    return _IRREGULAR
                completed[response_name] = inner
            else:
                if field_value is _ABSENT or not _is_plain_value(field_value, is_awaitable):
                    return _IRREGULAR
                try:
                    coerced = read.coerce(field_value)
                except Exception:
                    return _IRREGULAR
                if coerced is None or coerced is Undefined:
                    return _IRREGULAR
                completed[response_name] = coerced
        return completed

    def complete_iterable_value(
        self, item_type, field_details_list, info, path, items, position_context
    ):
        if type(items) is list and self.plain_reads:
            nullable = not is_non_null_type(item_type)
            object_type = item_type if nullable else item_type.of_type
            if (
                isinstance(object_type, GraphQLObjectType)
                and self.get_stream_usage(field_details_list, path) is None
            ):
                tree = self._tree(object_type, field_details_list)
                if tree is not None:
                    completed = self._complete_list(tree, items, info, nullable)
                    if completed is not _IRREGULAR:
                        return completed
        return super().complete_iterable_value(
            item_type, field_details_list, info, path, items, position_context
        )

    def _complete_list(self, tree: Tree, items: list, info: Any, nullable: bool) -> Any:
        completed: list[Any] = []
        append = completed.append
        complete = self._complete_plain
        for item in items:
            if item is None:
                if not nullable:
                    return _IRREGULAR
                append(None)
                continue
            value = complete(tree, item, info)
            if value is _IRREGULAR:
                return _IRREGULAR
            append(value)
        return completed
