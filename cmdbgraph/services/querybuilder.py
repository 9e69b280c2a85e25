"""Upstream's querybuilder filters, as search_instance_associations and
count_instance_associations take them: ``{"condition": "AND"|"OR", "rules": [...]}`` with atoms
``{"field", "operator", "value"}`` (``src/common/querybuilder``). Checked as upstream checks
them (the key of the first fault, e.g. ``conditions.rules[0].value``, answered as 1199006), then
read into the condition tree of ``services/conditions.py``, which runs them as SQL."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cmdbgraph.services import conditions
from cmdbgraph.services.conditions import And, Node, Not, Or, Test
from cmdbgraph.services.errors import (
    CmdbError,
    ErrorCode,
    exceeds_limit,
    parameter_check_failed,
)

MAX_DEPTH = 3  # querybuilder's MaxDeep: an atom is 1 deep, combined rules 1 + their deepest
MAX_VALUES = 500  # values of one in / not_in
MAX_OR_RULES = 20  # rules of one OR

_FIELD = re.compile(r"^[a-zA-Z0-9][\w\-.]*$")
_COMPARE = {
    "equal": "$eq",
    "not_equal": "$ne",
    "less": "$lt",
    "less_or_equal": "$lte",
    "greater": "$gt",
    "greater_or_equal": "$gte",
}
_DATETIME = {
    "datetime_less": "lt",
    "datetime_less_or_equal": "lte",
    "datetime_greater": "gt",
    "datetime_greater_or_equal": "gte",
}
_TEXT = ("begins_with", "not_begins_with", "contains", "not_contains", "ends_with", "not_ends_with")
_NO_VALUE = ("is_empty", "is_not_empty", "is_null", "is_not_null", "exist", "not_exist")
OPERATORS = frozenset({*_COMPARE, "in", "not_in", *_DATETIME, *_TEXT, *_NO_VALUE})


@dataclass(frozen=True, slots=True)
class RuleOption:
    """What a call checks of a filter beyond its form (upstream's querybuilder.RuleOption,
    and the depth its search calls check). A depth of None: upstream sets no limits, and this
    service's own apply (``OWN_MAX_DEPTH``, ``OWN_MAX_RULES``, ``OWN_MAX_VALUES``)."""

    max_depth: int | None = MAX_DEPTH
    max_values: int | None = MAX_VALUES  # of one in / not_in
    max_or_rules: int | None = MAX_OR_RULES


SEARCH = RuleOption()  # search_instance_associations, count_instance_associations
ELEMENT_TYPES_ONLY = RuleOption(None, None, None)  # find_instassociation_with_inst

# This service's own limits where upstream sets none: levels, rules and in / not_in values,
# all of them, so that one request's filter stays bounded.
OWN_MAX_DEPTH = conditions.MAX_DEPTH
OWN_MAX_RULES = 500
OWN_MAX_VALUES = conditions.MAX_VALUES


class QueryFilterMalformed(Exception):
    """Not a querybuilder filter at all: upstream's decoder refuses the body (1199000)."""


def decode(value: object) -> dict | None:
    """``value`` as upstream's decoder reads a filter (``QueryFilter.UnmarshalJSON``): None
    for ``null``; a copy without the rules given as ``null`` (the decoder drops them); raises
    ``QueryFilterMalformed`` for what it cannot decode: not an object, a rule neither combined
    (``condition``) nor atom (``operator``), a ``condition``, ``rules``, ``field`` or
    ``operator`` of the wrong type. Walked without recursion: a body may nest as deep as the
    JSON decoder allows."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise QueryFilterMalformed
    root = dict(value)
    pending = [root]
    while pending:
        rule = pending.pop()
        if "condition" in rule:
            rules = rule.get("rules")
            if not isinstance(rule["condition"], str | None) or not isinstance(rules, list | None):
                raise QueryFilterMalformed
            kept = []
            for child in rules or ():
                if child is None:
                    continue
                if not isinstance(child, dict):
                    raise QueryFilterMalformed
                kept.append(dict(child))
            pending.extend(kept)
            rule["rules"] = kept if rules is not None else None
        elif "operator" in rule:
            if not isinstance(rule["operator"], str | None) or not isinstance(
                rule.get("field"), str | None
            ):
                raise QueryFilterMalformed
        else:
            raise QueryFilterMalformed  # "no query filter found"
    return root


def _basic(value: object) -> bool:
    return isinstance(value, bool | int | float | str)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    for layout in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, layout).replace(tzinfo=UTC)
        except ValueError:
            pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def read(
    filter_: object,
    fields: conditions.Fields,
    *,
    name: str = "conditions",
    option: RuleOption = SEARCH,
) -> Node:
    """The tree of the querybuilder filter ``filter_`` (None: everything), checked as
    ``option`` says; raises ``QueryFilterMalformed``, ``CmdbError`` 1199006 naming the faulty
    key, or 1199035 beyond this service's own limits."""
    if filter_ is None:
        return conditions.EVERYTHING
    if not isinstance(filter_, dict) or "condition" not in filter_:
        if isinstance(filter_, dict) and "operator" in filter_:
            # A single atom decodes, but upstream wants combined rules at the top.
            raise parameter_check_failed(name)
        raise QueryFilterMalformed
    if option.max_depth is None:
        _within_own_limits(filter_, name)
    elif _depth(filter_, option.max_depth + 1) > option.max_depth:
        raise parameter_check_failed(f"{name}.rules")
    return _Reader(fields, option).combined(filter_, name)


def _within_own_limits(filter_: Mapping[str, Any], name: str) -> None:
    """This service's limits on a filter upstream does not limit, walked without recursion."""
    rules = values = 0
    pending: list[tuple[object, int]] = [(filter_, 1)]
    while pending:
        rule, depth = pending.pop()
        if depth > OWN_MAX_DEPTH:
            raise exceeds_limit(f"{name} depth", OWN_MAX_DEPTH)
        if not isinstance(rule, dict):
            continue
        children = rule.get("rules") if "condition" in rule else None
        if isinstance(children, list):
            rules += len(children)
            if rules > OWN_MAX_RULES:
                raise exceeds_limit(f"{name} rules", OWN_MAX_RULES)
            pending.extend((child, depth + 1) for child in children)
        elif rule.get("operator") in ("in", "not_in") and isinstance(rule.get("value"), list):
            values += len(rule["value"])
            if values > OWN_MAX_VALUES:
                raise exceeds_limit(f"{name} values", OWN_MAX_VALUES)


def _depth(rule: object, most: int) -> int:
    """querybuilder's GetDeep (anything not a combined rule counts as an atom), counted no
    further than ``most``: a filter may nest as deep as the JSON decoder allows."""
    if most > 1 and isinstance(rule, dict) and "condition" in rule:
        children = rule.get("rules")
        if isinstance(children, list):
            return 1 + max((_depth(child, most - 1) for child in children), default=0)
    return 1


class _Reader:
    def __init__(self, fields: conditions.Fields, option: RuleOption = SEARCH) -> None:
        self.fields = fields
        self.option = option

    def rule(self, rule: object, key: str) -> Node:
        if not isinstance(rule, dict):
            raise QueryFilterMalformed
        if "condition" in rule:
            return self.combined(rule, key)
        if "operator" in rule:
            return self.atom(rule, key)
        raise QueryFilterMalformed  # "no query filter found"

    def combined(self, rule: Mapping[str, Any], key: str) -> Node:
        kind = rule.get("condition")
        if kind not in ("AND", "OR"):
            raise parameter_check_failed(f"{key}.condition")
        rules = rule.get("rules")
        if not isinstance(rules, list) or not rules:
            raise parameter_check_failed(f"{key}.rules")
        most = self.option.max_or_rules
        if kind == "OR" and most is not None and len(rules) > most:
            raise parameter_check_failed(f"{key}.rules")
        children = tuple(
            self.rule(child, f"{key}.rules[{index}]") for index, child in enumerate(rules)
        )
        return And(children) if kind == "AND" else Or(children)

    def atom(self, rule: Mapping[str, Any], key: str) -> Node:
        operator, field, value = rule.get("operator"), rule.get("field"), rule.get("value")
        if not isinstance(operator, str) or operator not in OPERATORS:
            raise parameter_check_failed(f"{key}.operator")
        if not isinstance(field, str) or not _FIELD.match(field):
            raise parameter_check_failed(f"{key}.field")
        value_key = f"{key}.value"
        path = tuple(field.split("."))
        if operator in _COMPARE:
            if not _basic(value) or (operator not in ("equal", "not_equal") and not _number(value)):
                raise parameter_check_failed(value_key)
            return self._mongo({field: {_COMPARE[operator]: value}})
        if operator in ("in", "not_in"):
            most = self.option.max_values
            if (
                not isinstance(value, list)
                or (most is not None and len(value) > most)
                or not all(_basic(v) for v in value)
                or len({type(v) if not _number(v) else float for v in value}) > 1
            ):
                raise parameter_check_failed(value_key)
            return self._mongo({field: {"$in" if operator == "in" else "$nin": value}})
        if operator in _DATETIME:
            moment = _moment(value)
            if moment is None:
                raise parameter_check_failed(value_key)
            return Test(path, _DATETIME[operator], moment)
        if operator in _TEXT:
            if not isinstance(value, str) or not value:
                raise parameter_check_failed(value_key)
            pattern, options = {
                "begins_with": ("^" + value, ""),
                "not_begins_with": ("^" + value, ""),
                "contains": (value, "i"),
                "not_contains": (value, ""),
                "ends_with": (value + "$", ""),
                "not_ends_with": (value + "$", ""),
            }[operator]
            found = self._mongo({field: {"$regex": pattern, "$options": options}})
            return Not(found) if operator.startswith("not_") else found
        presence: dict[str, dict] = {
            "is_empty": {field: {"$eq": []}},
            "is_not_empty": {field: {"$ne": []}},
            "is_null": {field: {"$eq": None}},
            "is_not_null": {field: {"$ne": None}},
            "exist": {field: {"$exists": True}},
            "not_exist": {field: {"$exists": False}},
        }
        return self._mongo(presence[operator])

    def _mongo(self, condition: dict) -> Node:
        try:
            return conditions.parse(condition, self.fields)
        except conditions.ConditionError as error:
            # What MongoDB would refuse (an invalid regular expression...).
            raise CmdbError(
                ErrorCode.PARAMETER_CHECK_FAILED, texts=(error.text, error.text)
            ) from None
