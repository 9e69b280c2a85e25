"""Limits a public GraphQL endpoint needs: depth, aliases, tokens, query cost, one operation per
request, no NUL characters, introspection.

The document rules (depth, aliases, NUL) are classes made once per schema from the settings, so
every request passes the same rules tuple to validation and the validation cache keeps hitting
(strawberry's own limiters build new rule classes per request, which defeats the cache). Each
rule visits a fragment once however often it is spread, so a document cannot make validation
exponential.

The cost is computed before execution from the selected operation and its variables: every
field counts 1, and a list multiplies what is selected in it by how many items it can hold (its
``limit`` argument, or its default; a topology's by its ``maxNodes``; lists without a page size
count at their maximum). It is the most fields the reply can hold. An operation over
``max_query_cost`` is refused whole.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    ASTValidationRule,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    ValidationRule,
    VariableNode,
    get_named_type,
)
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import AddValidationRules, MaxTokensLimiter, SchemaExtension

from cmdbgraph.services.limits import Limits
from cmdbgraph.settings import Settings

log = logging.getLogger("cmdbgraph.graphql")

NUL_MESSAGE = "NUL characters are not accepted."


def _fragments(document: Any) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


class _DepthMeter:
    """Depths of selection sets; each fragment measured once."""

    def __init__(self, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self.fragments = fragments
        self.memo: dict[str, int] = {}
        self.visiting: set[str] = set()

    def depth(self, selection_set: SelectionSetNode | None) -> int:
        if selection_set is None:
            return 0
        deepest = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                if selection.name.value.startswith("__"):
                    continue  # introspection has its own switch
                deepest = max(deepest, 1 + self.depth(selection.selection_set))
            elif isinstance(selection, InlineFragmentNode):
                deepest = max(deepest, self.depth(selection.selection_set))
            elif isinstance(selection, FragmentSpreadNode):
                deepest = max(deepest, self.fragment_depth(selection.name.value))
        return deepest

    def fragment_depth(self, name: str) -> int:
        if name in self.memo:
            return self.memo[name]
        fragment = self.fragments.get(name)
        if fragment is None or name in self.visiting:
            return 0  # unknown or cyclic: reported by graphql-core's own rules
        self.visiting.add(name)
        self.memo[name] = self.depth(fragment.selection_set)
        self.visiting.discard(name)
        return self.memo[name]


def depth_rule(max_depth: int) -> type[ValidationRule]:
    class MaxDepthRule(ValidationRule):
        def enter_document(self, node: Any, *_: Any) -> None:
            self.meter = _DepthMeter(_fragments(node))

        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            depth = self.meter.depth(node.selection_set)
            if depth > max_depth:
                name = node.name.value if node.name else "anonymous"
                self.context.report_error(
                    GraphQLError(
                        f"'{name}' exceeds the maximum query depth of {max_depth} "
                        f"(it is {depth} deep).",
                        node,
                        extensions={"code": "QUERY_TOO_DEEP"},
                    )
                )

    return MaxDepthRule


def alias_rule(max_aliases: int) -> type[ValidationRule]:
    class MaxAliasesRule(ValidationRule):
        def enter_document(self, node: Any, *_: Any) -> None:
            self.aliases = 0

        def enter_field(self, node: FieldNode, *_: Any) -> None:
            if node.alias is not None:
                self.aliases += 1
                if self.aliases == max_aliases + 1:
                    self.context.report_error(
                        GraphQLError(
                            f"The document uses more than {max_aliases} aliases.",
                            node,
                            extensions={"code": "TOO_MANY_ALIASES"},
                        )
                    )

    return MaxAliasesRule


class NoNulCharactersRule(ValidationRule):
    """String literals may not hold NUL (PostgreSQL cannot store it; no field needs it).
    Variables are checked where the request body is decoded."""

    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        if "\x00" in node.value:
            self.context.report_error(
                GraphQLError(NUL_MESSAGE, node, extensions={"code": "BAD_USER_INPUT"})
            )


# ---------------------------------------------------------------------------------------------
# Cost


class CostModel:
    """How many items each list field can hold, from the limits."""

    def __init__(self, limits: Limits) -> None:
        # Lists whose length is bounded by the input that made them.
        self.bounded = {
            ("BatchCreateInstAssociationsPayload", "results"): limits.max_batch_size,
            ("CreateInstancesPayload", "instances"): limits.max_create,
            ("DeleteInstAssociationsPayload", "deleted"): limits.max_delete_ids,
        }
        nested = (limits.default_nested_page_size, limits.max_nested_page_size)
        # Lists paged by their own ``limit`` argument: (default, maximum).
        self.nested_pages = {
            ("Instance", "associationsAsSource"): nested,
            ("Instance", "associationsAsTarget"): nested,
        }
        # Connections sized by their own ``first``/``last`` (for their ``edges``), nested ones
        # with the nested page sizes.
        self.nested_connections = {
            ("Instance", "associationsAsSourceConnection"): nested,
            ("Instance", "associationsAsTargetConnection"): nested,
        }
        self.page = (limits.default_page_size, limits.max_page_size)
        # Fields whose lists are capped by their ``maxNodes`` (default: the setting's default).
        nodes = (
            min(limits.topology_default_nodes, limits.topology_max_nodes),
            limits.topology_max_nodes,
        )
        self.node_caps = {("Instance", "topology"): nodes, ("Query", "impact"): nodes}
        self.capped_lists = {("Topology", "nodes"), ("Topology", "edges"), ("Impact", "nodes")}


class _CostMeter:
    def __init__(
        self,
        schema: GraphQLSchema,
        model: CostModel,
        fragments: dict[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
    ) -> None:
        self.schema = schema
        self.model = model
        self.fragments = fragments
        self.variables = variables
        self.memo: dict[tuple[str, int], int] = {}
        self.visiting: set[str] = set()

    def _size(
        self, field: FieldNode, bounds: tuple[int, int], names: tuple[str, ...] = ("limit",)
    ) -> int:
        default, maximum = bounds
        for argument in field.arguments or ():
            if argument.name.value not in names:
                continue
            value: object = None
            if isinstance(argument.value, IntValueNode):
                value = int(argument.value.value)
            elif isinstance(argument.value, VariableNode):
                # Left out (and no declared default): null, so the field's default.
                value = self.variables.get(argument.value.name.value)
            if type(value) is not int:
                return maximum if value is not None else default
            return max(0, min(value, maximum))
        return default

    def cost(self, selection_set: SelectionSetNode | None, parent: Any, page: int) -> int:
        """The cost of ``selection_set`` on type ``parent``; ``page`` is the page size of the
        field that returned ``parent`` (for its ``items``)."""
        if selection_set is None:
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field_cost(selection, parent, page)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                total += self.cost(selection.selection_set, target, page)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragment_cost(selection.name.value, page)
        return total

    def fragment_cost(self, name: str, page: int) -> int:
        key = (name, page)
        if key in self.memo:
            return self.memo[key]
        fragment = self.fragments.get(name)
        if fragment is None or name in self.visiting:
            return 0
        self.visiting.add(name)
        target = self.schema.get_type(fragment.type_condition.name.value)
        self.memo[key] = self.cost(fragment.selection_set, target, page)
        self.visiting.discard(name)
        return self.memo[key]

    def field_cost(self, field: FieldNode, parent: Any, page: int) -> int:
        name = field.name.value
        if name.startswith("__"):
            return 1  # __typename; introspection is bounded by the schema and has its switch
        definition = parent.fields.get(name) if isinstance(parent, GraphQLObjectType) else None
        if definition is None:
            # On an interface or union, or unknown: validation has vetted the document.
            definition = getattr(parent, "fields", {}).get(name)
            if definition is None:
                return 1
        field_type = definition.type
        named: GraphQLNamedType = get_named_type(field_type)
        key = (parent.name, name)
        child_page = page
        if key in self.model.node_caps:  # sizes its ``nodes`` and ``edges``
            child_page = self._size(field, self.model.node_caps[key], ("maxNodes",))
        elif "limit" in definition.args and key not in self.model.nested_pages:
            child_page = self._size(field, self.model.page)  # a page: sizes its ``items``
        elif "first" in definition.args:  # a connection: sizes its ``edges``
            bounds = self.model.nested_connections.get(key, self.model.page)
            child_page = self._size(field, bounds, ("first", "last"))
        children = self.cost(field.selection_set, named, child_page)
        if isinstance(field_type, GraphQLNonNull):
            field_type = field_type.of_type
        if not isinstance(field_type, GraphQLList):
            return 1 + children
        if key in self.model.nested_pages:
            size = self._size(field, self.model.nested_pages[key])
        elif key in self.model.bounded:
            size = self.model.bounded[key]
        elif key in self.model.capped_lists or name in ("items", "edges"):
            size = page
        else:
            size = self.model.page[1]
        return 1 + size * max(children, 1)


def _single_operation(document: Any, provided_name: str | None) -> GraphQLError | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if provided_name is None and len(operations) > 1:
        return GraphQLError(
            "The document holds several operations: name the one to run in `operationName`.",
            extensions={"code": "OPERATION_RESOLUTION_FAILURE"},
        )
    return None


def _selected(document: Any, name: str | None) -> OperationDefinitionNode | None:
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and (
            name is None or (definition.name is not None and definition.name.value == name)
        ):
            return definition
    return None


def query_cost(
    schema: GraphQLSchema,
    model: CostModel,
    document: Any,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any] | None,
) -> int:
    """The most fields the reply to ``operation`` can hold. A variable the request leaves out
    counts at its declared default."""
    root = schema.get_root_type(operation.operation)
    values: dict[str, Any] = {}
    for definition in operation.variable_definitions or ():
        default = definition.default_value
        if isinstance(default, IntValueNode):
            values[definition.variable.name.value] = int(default.value)
    values.update(variables or {})
    meter = _CostMeter(schema, model, _fragments(document), values)
    return meter.cost(operation.selection_set, root, model.page[0])


def cost_extension(settings: Settings) -> type[SchemaExtension]:
    model = CostModel(Limits.from_settings(settings))
    budget = settings.max_query_cost

    class OperationLimits(SchemaExtension):
        """Refuses, before anything runs, a document holding several operations without an
        ``operationName`` (the spec's rule: strawberry would run the first) and an operation
        costing more than the budget."""

        def on_execute(self) -> Iterator[None]:
            execution = self.execution_context
            document = execution.graphql_document
            if document is not None and execution.result is None:
                provided = execution._provided_operation_name
                error = _single_operation(document, provided)
                operation = _selected(document, provided) if error is None else None
                if operation is not None:
                    try:
                        cost = query_cost(
                            execution.schema._schema,
                            model,
                            document,
                            operation,
                            execution.variables,
                        )
                    except Exception:  # fail closed: nothing runs unmeasured
                        log.exception("measuring the cost of a query failed")
                        cost = budget + 1
                    if cost > budget:
                        error = GraphQLError(
                            f"The query costs {cost}, more than the limit of {budget}: ask for "
                            "smaller pages (limit, first, last, maxNodes) or fewer nested "
                            "lists.",
                            extensions={"code": "QUERY_TOO_COSTLY", "cost": cost, "limit": budget},
                        )
                if error is not None:
                    execution.result = ExecutionResult(data=None, errors=[error])
            yield

    return OperationLimits


def limit_extensions(settings: Settings) -> list:
    """Extension factories enforcing the limits of ``settings``."""
    rules: list[type[ASTValidationRule]] = [
        depth_rule(settings.max_query_depth),
        alias_rule(settings.max_aliases),
        NoNulCharactersRule,
    ]
    if not settings.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    max_tokens = settings.max_tokens
    return [
        lambda: MaxTokensLimiter(max_token_count=max_tokens),
        lambda: AddValidationRules(rules),
        cost_extension(settings),
    ]
