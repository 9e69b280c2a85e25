"""The GraphQL execution context (cmdbgraph/schema/execution.py) completes plain fields without
a resolver call: these tests check that it answers exactly what strawberry's own execution
context answers, irregular values included, and count the work it saves (no resolve info per
item of a batch's results). Nothing here is timed."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import NewType

import pytest
import strawberry
from strawberry.extensions.parser_cache import _get_parse_cache
from strawberry.extensions.validation_cache import _get_validate_cache
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from cmdbgraph.api import build_schema
from cmdbgraph.schema import payloads, types
from cmdbgraph.schema.context import GraphQLContext
from cmdbgraph.schema.execution import ExecutionContext, strawberry_is_type_of
from cmdbgraph.schema.scalars import SCALARS, BigInt
from cmdbgraph.services import associations, records
from cmdbgraph.services.caller import Caller
from cmdbgraph.services.errors import ErrorCode
from cmdbgraph.services.limits import Limits
from cmdbgraph.settings import Settings
from tests.support.calls import BATCH_MUTATION, batch_input

# --- a small schema, run by both execution contexts ------------------------------------------


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Hue(enum.Enum):  # the same values in another enum
    RED = "red"


@strawberry.interface
class Named:
    name: str


# A scalar whose output coercion can answer null: graphql-core calls that an error.
Sometimes = NewType("Sometimes", int)
SOMETIMES = strawberry.scalar(
    name="Sometimes",
    serialize=lambda value: None if value == 0 else value,
    parse_value=lambda value: value,
)


@strawberry.type
class Leaf(Named):  # an interface: strawberry gives it an is_type_of
    name: str
    count: int
    flag: bool
    colour: Colour
    big: BigInt
    ident: strawberry.ID
    maybe: str | None
    sometimes: Sometimes = Sometimes(1)


@strawberry.type
class Plain:  # no interface: no is_type_of
    text: str


def _raised_with_text() -> ValueError:
    error = ValueError("boom")
    error.text = "t"  # type: ignore[attr-defined]
    return error


@strawberry.type
class Item:
    index: int
    leaf: Leaf | None
    required: Leaf
    plain: Plain | None


DATA: dict[str, object] = {}


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item]:
        return DATA["items"]  # type: ignore[return-value]

    @strawberry.field
    def maybe_items(self) -> list[Item | None]:
        return DATA["items"]  # type: ignore[return-value]

    @strawberry.field
    def item(self) -> Item:
        return DATA["items"][0]  # type: ignore[index]


def _schema(context_class) -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        execution_context_class=context_class,
        config=StrawberryConfig(scalar_map={**SCALARS, Sometimes: SOMETIMES}),
    )


OURS = _schema(ExecutionContext)
STRAWBERRY = _schema(StrawberryGraphQLCoreExecutionContext)

SELECTION = """
  index
  leaf { name count flag colour big ident maybe sometimes }
  required { __typename name n: count flag colour big ident maybe }
  plain { text }
"""
QUERIES = [
    "{ items { index required { name count flag colour big ident maybe sometimes } "
    "plain { text } } }",
    "{ maybeItems { leaf { name count flag colour big ident maybe } required { name } } }",
    f"{{ items {{ {SELECTION} }} }}",
    f"{{ maybeItems {{ {SELECTION} }} }}",
    f"{{ item {{ {SELECTION} }} }}",
    "{ items { index leaf { name } again: leaf { count } } }",
    "query($no: Boolean = true) { items { index leaf @skip(if: $no) { name } plain { text } } }",
    "{ items { index ...F } } fragment F on Item { leaf { ... on Leaf { name big } } }",
]


def leaf(**changes) -> SimpleNamespace:
    values = {
        "name": "n",
        "count": 3,
        "flag": True,
        "colour": Colour.BLUE,
        "big": 2**40,
        "ident": "id-1",
        "maybe": None,
    }
    return Leaf(**{**values, **changes})


def item(index: int = 0, **changes) -> Item:
    values = {"index": index, "leaf": leaf(), "required": leaf(), "plain": Plain(text="t")}
    return Item(**{**values, **changes})


class Later:
    """An awaitable value (no warning if nobody awaits it)."""

    def __await__(self):
        return "later"
        yield  # a generator: what ``await`` iterates


# Each case: the items, built anew for each run (a coroutine is awaited once).
CASES = {
    "regular": lambda: [item(i) for i in range(5)],
    "null leaf object": lambda: [item(0, leaf=None), item(1)],
    "null on a non-null field": lambda: [item(0), item(1, required=leaf(name=None))],
    "string where an Int goes": lambda: [item(0, leaf=leaf(count="3"))],
    "Int out of range": lambda: [item(0, leaf=leaf(count=2**40))],
    "BigInt out of range": lambda: [item(0, leaf=leaf(big=2**70))],
    "int where a String goes": lambda: [item(0, leaf=leaf(name=12))],
    "float where a Boolean goes": lambda: [item(0, leaf=leaf(flag=1.0))],
    "not an enum member": lambda: [item(0, leaf=leaf(colour="purple"))],
    "an enum's value": lambda: [item(0, leaf=leaf(colour="red"))],
    "a member of another enum": lambda: [item(0, leaf=leaf(colour=Hue.RED))],
    "an awaitable value": lambda: [item(0, leaf=leaf(name=Later()))],
    "an exception as value": lambda: [item(0, leaf=leaf(maybe=ValueError("boom")))],
    "an object of another type": lambda: [item(0, required=Plain(text="x"))],
    "another type with the same fields": lambda: [
        item(0, required=SimpleNamespace(**vars(leaf())))
    ],
    "an exception with the fields": lambda: [item(0, plain=_raised_with_text())],
    "an awaitable object": lambda: [item(0, plain=Later())],
    "a coercion answering null": lambda: [item(0, required=leaf(sometimes=0))],
    "a missing attribute": lambda: [item(0, plain=SimpleNamespace())],
    "a null item": lambda: [item(0), None],
    "no items": lambda: [],
}


def _formatted(result) -> tuple:
    errors = sorted((error.formatted for error in result.errors or ()), key=repr)
    return result.data, errors


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("case", list(CASES))
async def test_plain_reads_answer_what_strawberry_answers(case, query):
    answers = []
    for schema in (OURS, STRAWBERRY):
        DATA["items"] = CASES[case]()
        answers.append(_formatted(await schema.execute(query)))
    assert answers[0] == answers[1]


def test_strawberrys_is_type_of_is_recognized():
    # If strawberry changes how it writes is_type_of, lists of objects that implement an
    # interface fall back to graphql-core (slower, still right): this says so.
    schema = build_schema(Settings())._schema
    checkable, check = strawberry_is_type_of(schema.get_type("InstAssociation"))
    assert checkable and check is not None
    assert strawberry_is_type_of(schema.get_type("BatchItemResult")) == (True, None)


# --- the batch mutation -----------------------------------------------------------------------

WHEN = datetime(2026, 11, 29, 8, 30, tzinfo=UTC)


def _outcome(size: int) -> associations.BatchCreateResult:
    model = records.ModelAssociation(
        id=1,
        bk_obj_asst_id="a_belong_b",
        bk_obj_asst_name="",
        bk_obj_id="a",
        bk_asst_obj_id="b",
        bk_asst_id="belong",
        mapping="n:n",
        on_delete="none",
        ispre=False,
        bk_supplier_account="0",
    )
    items = []
    for index in range(size):
        detail = associations.Detail(10 + index, 1000 + index)
        if index % 3 == 2:
            items.append(
                associations.ItemOutcome(index, detail, ErrorCode.SOURCE_INSTANCE_NOT_FOUND, ())
            )
            continue
        created = records.InstAssociation(
            id=500 + index,
            bk_obj_asst_id="a_belong_b",
            bk_asst_id="belong",
            bk_obj_id="a",
            bk_inst_id=detail[0],
            bk_asst_obj_id="b",
            bk_asst_inst_id=detail[1],
            bk_supplier_account="0",
            bk_biz_id=0,
            creator="admin",
            create_time=WHEN,
        )
        items.append(associations.ItemOutcome(index, detail, association=created))
    return associations.BatchCreateResult(model, items, written=True)


def _context(settings: Settings) -> GraphQLContext:
    return GraphQLContext(
        request=SimpleNamespace(headers={}),  # type: ignore[arg-type]
        response=None,
        db=None,  # type: ignore[arg-type]
        settings=settings,
        limits=Limits.from_settings(settings),
        caller=Caller(username="admin", language="en"),
    )


@pytest.fixture
def decided(monkeypatch):
    """``associations.batch_create`` answers a ready result (no database)."""
    outcome = _outcome(200)

    async def batch_create(*args, **kwargs):
        return outcome

    monkeypatch.setattr(associations, "batch_create", batch_create)
    return outcome


def _variables(size: int = 200) -> dict:
    return {"input": batch_input("a", "b", "a_belong_b", [(10 + i, 1000 + i) for i in range(size)])}


async def test_batch_results_need_no_resolve_info_per_item(decided, monkeypatch):
    settings = Settings()
    ours = build_schema(settings)
    built = []
    original = StrawberryGraphQLCoreExecutionContext.build_resolve_info

    def counting(self, *args, **kwargs):
        built.append(args[0])
        return original(self, *args, **kwargs)

    # Ours inherits it: both contexts count.
    monkeypatch.setattr(StrawberryGraphQLCoreExecutionContext, "build_resolve_info", counting)
    result = await ours.execute(BATCH_MUTATION, _variables(), context_value=_context(settings))
    assert result.errors is None
    payload = result.data["batchCreateInstAssociations"]
    assert len(payload["results"]) == 200
    # The mutation and its payload's `results`: not one per item or per field of an item.
    assert len(built) <= 3
    ours = len(built)

    # The same answer as strawberry's own execution context gives.
    theirs = build_schema(settings)
    theirs.execution_context_class = StrawberryGraphQLCoreExecutionContext
    expected = await theirs.execute(BATCH_MUTATION, _variables(), context_value=_context(settings))
    # strawberry's own context took graphql-core's way: one per field (about 1,900 here)
    assert len(built) - ours > 1_500
    assert result.data == expected.data
    first, failed = payload["results"][0], payload["results"][2]
    assert first["association"]["id"] == 500 and first["error"] is None
    assert failed["association"] is None and failed["error"]["code"] == "SOURCE_INSTANCE_NOT_FOUND"


MINIMAL = """
mutation Batch($input: BatchCreateInstAssociationsInput!) {
  batchCreateInstAssociations(input: $input) {
    ... on BatchCreateInstAssociationsPayload { createdCount failedCount successCreated }
  }
}
"""


async def test_results_are_built_only_when_selected(decided, monkeypatch):
    settings = Settings()
    schema = build_schema(settings)
    built = []
    original = payloads.item_results

    def counting(*args):
        built.append(args)
        return original(*args)

    monkeypatch.setattr(payloads, "item_results", counting)
    result = await schema.execute(MINIMAL, _variables(), context_value=_context(settings))
    assert result.errors is None
    assert result.data["batchCreateInstAssociations"]["createdCount"] == 134
    assert built == []
    result = await schema.execute(BATCH_MUTATION, _variables(), context_value=_context(settings))
    assert len(built) == 1


async def test_the_batch_input_converts_as_strawberry_converts_it(monkeypatch):
    settings = Settings()
    schema = build_schema(settings)
    received = []

    async def batch_create(db, caller, request, **kwargs):
        received.append(request)
        return _outcome(0)

    monkeypatch.setattr(associations, "batch_create", batch_create)
    variables = _variables(3)
    variables["input"] |= {"dryRun": True, "errorPolicy": "ALL_OR_NOTHING", "idempotencyKey": "k"}
    for given in (variables, _variables(2)):
        result = await schema.execute(MINIMAL, given, context_value=_context(settings))
        assert result.errors is None
    full, plain = received
    assert full.details == [(10, 1000), (11, 1001), (12, 1002)]
    assert all(type(d) is associations.Detail for d in full.details)
    assert (full.dry_run, full.policy, full.idempotency_key) == (
        True,
        associations.ErrorPolicy.ALL_OR_NOTHING,
        "k",
    )
    assert (plain.dry_run, plain.policy, plain.idempotency_key) == (
        False,
        associations.ErrorPolicy.PARTIAL,
        None,
    )


async def test_a_repeated_document_is_parsed_and_validated_once(decided):
    settings = Settings()
    schema = build_schema(settings)
    parse_cache, validate_cache = _get_parse_cache(1024), _get_validate_cache(1024)
    document = BATCH_MUTATION + "\n# test_a_repeated_document_is_parsed_and_validated_once"
    await schema.execute(document, _variables(), context_value=_context(settings))
    parsed, validated = parse_cache.cache_info(), validate_cache.cache_info()
    for _ in range(3):
        result = await schema.execute(document, _variables(), context_value=_context(settings))
        assert result.errors is None
    assert parse_cache.cache_info().misses == parsed.misses
    assert parse_cache.cache_info().hits == parsed.hits + 3
    assert validate_cache.cache_info().misses == validated.misses
    assert validate_cache.cache_info().hits == validated.hits + 3


def test_from_record_copies_every_plain_field():
    created = _outcome(1).items[0].association
    built = types.InstAssociation.from_record(created)
    assert type(built) is types.InstAssociation
    assert vars(built) == {name: getattr(created, name) for name in vars(built)}
    assert set(vars(built)) == set(records.InstAssociation.__slots__)
