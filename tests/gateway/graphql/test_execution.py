"""FastExecutionContext answers exactly as strawberry's own execution context does.

Each test runs the same operation on two schemas that differ only in their execution context
class and compares the results: data (with the order of its keys) and the formatted errors
(messages, paths, locations, codes). Hypothesis draws the operations: selections over the
read schema on talks ingested through the webhook (the documented example among them, and
copies full of nulls) for a caller with and without customers:pii; and every shape of value
a plain field may hold, wrong ones included, on a small schema of its own. Loader fields
(customer, agent, channel, user...) are drawn among the others, over a store whose by-id
lookups work, fail or answer broken documents, and both schemas must make the same store
calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import gc
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, cast

import orjson
import pytest
import strawberry
from graphql import (
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    get_named_type,
    is_leaf_type,
)
from hypothesis import given, reject, settings
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.dataloader import DataLoader
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types import ExecutionResult

from gateway.auth import Principal
from gateway.demo import example_talk
from gateway.graphql.execution import FastExecutionContext, codegen, direct, planning, plans
from gateway.graphql.schema_assembly import build_schema
from gateway.graphql.view import GraphQLView
from gateway.http.app import create_app
from gateway.storage import TalkStore
from gateway.storage.documents import Doc
from gateway.storage.protocol import StoreUnavailable
from resolvers.context import RequestContext, Services
from schema.building import build
from schema.contracts import frozen_snapshots
from schema.inputs import built_directly
from schema.loaded import loaded_by
from schema.permissions import HasScope
from schema.scalars import SCALARS, UtcDateTime
from schema.types import (
    agent_from_doc,
    channel_from_doc,
    customer_from_doc,
    event_from_doc,
    history_from_doc,
    talk_from_doc,
)
from schema.values import Bot, Telephone
from tests.factories import talk
from tests.strategies import served_examples
from tests.support import READ_KEY, gql, make_settings, push, serving

PROPERTIES = served_examples(60, shrink=False)
READER = Principal("reader", frozenset({"talks:read"}))
PII_READER = Principal("pii-reader", frozenset({"talks:read", "customers:pii"}))
VARIABLES = {"yes": True, "no": False}


def operation(selection: str, fragments: str = "") -> str:
    """A query of `selection` declaring the variables it uses (an unused one is an error)."""
    used = [f"${name}: Boolean!" for name in VARIABLES if f"${name}" in selection + fragments]
    declared = f"({', '.join(used)})" if used else ""
    return f"query Q{declared} {{ {selection} }} {fragments}"


# A non-null field's error cancels its parent's other fields, some before their task ever
# ran: the coroutines such a task was handed are then never awaited, and warn when collected,
# some only during a later test. Warnings only (the answers are compared), and older than
# per-object loads (the fast path's _LOAD_EACH): the loaded-fields test below shows them with
# those turned off too.
pytestmark = pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")


def same(
    fast: ExecutionResult, plain: ExecutionResult, *, ordered: bool = True, nulled: bool = False
) -> None:
    """Equal data, keys in the same order, and equal formatted errors in the same order
    (in any order when not `ordered`). `nulled`: but for errors beneath a position an error
    nulled, which graphql-core reports only if they came before that error (so as its
    tasks happen to finish)."""
    assert orjson.dumps(fast.data) == orjson.dumps(plain.data)
    errors = [[e.formatted for e in result.errors or ()] for result in (fast, plain)]
    if nulled:
        errors = [
            [e for e in each if not _beneath_a_null(fast.data, e.get("path"))] for each in errors
        ]
    if not ordered:
        errors = [sorted(each, key=orjson.dumps) for each in errors]
    assert errors[0] == errors[1]


def _beneath_a_null(data: Any, path: list[str | int] | None) -> bool:
    """Whether a position above `path` (not `path` itself) is null in `data`."""
    if path is None:  # a request error
        return False
    node = data
    for key in path[:-1]:
        if node is None:
            return True
        node = node[key]
    return node is None


def with_plain_execution(schema: strawberry.Schema) -> strawberry.Schema:
    schema.execution_context_class = StrawberryGraphQLCoreExecutionContext
    return schema


# -- the read schema on ingested talks ------------------------------------------------------


def dirty_talks() -> list[dict[str, Any]]:
    """The documented example as PipeRun sends it, and copies with nulls wherever allowed."""
    nulls = talk(
        2,
        agent_id=None,
        queue_id=None,
        finished_at=None,
        external_protocol=None,
        score=None,
        latitude=None,
        client_ip=None,
        url_viewer=None,
        bot=None,
        service_catalog=None,
        bot_variables=[{"var_name": None, "value": None}],
        talk_events=[],
    )
    nulls["customer"] = {**nulls["customer"], "name": None, "created_at": None}
    for key in ("telephones", "emails", "custom_fields"):
        nulls["customer"][key] = []
    for history in nulls["talk_histories"]:
        history.update(message=None, sent_at=None, user_id=None, channel_id=None)
    waiting = talk(3, is_waiting=True, finished_at=None, initiation_type="c")
    return [example_talk(), talk(1), nulls, waiting, copy.deepcopy(talk(4, score=0))]


BY_ID = ("customers_by_id", "agents_by_id", "channels_by_id")
FAILURES = [None, "unavailable", "broken", "missing"]


class ObservedStore:
    """The app's store, counting the calls made to it, with its by-id lookups (customers,
    agents, channels) failing as `failure` says: StoreUnavailable ("unavailable"), documents
    without their non-null id ("broken"), nothing found ("missing"). With a failure, pages
    of talks come without their customers, which are then read through the failing lookup."""

    def __init__(self, store: TalkStore, failure: str | None) -> None:
        self.store = store
        self.failure = failure
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)
        if not callable(method):
            return method

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            if name in BY_ID and self.failure is not None:
                return self._failing(*args)
            if name == "talk_pages" and self.failure is not None:
                kwargs["with_customers"] = False
            return method(*args, **kwargs)

        return counted

    async def _failing(self, ids: Sequence[int]) -> dict[int, Doc]:
        # Answered at once, without I/O: which loader answers first is then not a race.
        if self.failure == "unavailable":
            raise StoreUnavailable("the store is down")
        if self.failure == "missing":
            return {}
        return {i: {"id": None, "name": f"no id {i}", "login": None} for i in ids}


@dataclass
class Schemas:
    fast: strawberry.Schema
    plain: strawberry.Schema
    services: Services

    def context(self, caller: Principal) -> RequestContext:
        return RequestContext(caller=caller, services=self.services, request_id=None)

    async def both(
        self,
        document: str,
        caller: Principal,
        failure: str | None = None,
        *,
        same_calls: bool = True,
    ) -> tuple[ExecutionResult, ...]:
        """Both schemas' results; the same store calls made by each (unless not
        `same_calls`)."""
        results = []
        calls = []
        for schema in (self.fast, self.plain):
            store = ObservedStore(self.services.store, failure)
            services = dataclasses.replace(self.services, store=cast(TalkStore, store))
            context = RequestContext(caller=caller, services=services, request_id=None)
            results.append(
                await schema.execute(document, variable_values=VARIABLES, context_value=context)
            )
            calls.append(store.calls)
        if same_calls:
            assert calls[0] == calls[1]
        return tuple(results)


@pytest.fixture
async def schemas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Schemas]:
    """Both schemas over one store holding the dirty talks, with the app's services."""
    settings_ = make_settings(tmp_path)
    contexts: list[RequestContext] = []
    get_context = GraphQLView.get_context

    async def recorded(
        view: GraphQLView, request: Request | WebSocket, response: Response | WebSocket
    ) -> RequestContext:
        context = await get_context(view, request, response)
        contexts.append(context)
        return context

    monkeypatch.setattr(GraphQLView, "get_context", recorded)
    async with serving(create_app(settings_)) as client:
        assert (await push(client, dirty_talks())).status_code == 202
        assert "errors" not in await gql(client, "{ __typename }", key=READ_KEY)
        yield Schemas(
            fast=build_schema(settings_),
            plain=with_plain_execution(build_schema(settings_)),
            services=contexts[0].services,
        )


def _readable_fields(schema: GraphQLSchema, type_name: str) -> list[str]:
    named = schema.type_map[type_name]
    assert isinstance(named, GraphQLObjectType)
    # `recording` asks Talk.me, which these tests do not run.
    return sorted(name for name in named.fields if name != "recording")


DIRECTIVES = ["", "", "", " @include(if: $yes)", " @skip(if: $yes)", " @include(if: $no)"]


@st.composite
def selection_set(
    draw: st.DrawFn, schema: GraphQLSchema, type_name: str, depth: int, *, spread: bool = True
) -> str:
    """Fields of `type_name` (aliased or not, under @skip/@include or not), __typename,
    inline fragments and the TalkBits fragment, objects down to `depth` levels."""
    named = schema.type_map[type_name]
    assert isinstance(named, GraphQLObjectType)
    fields = _readable_fields(schema, type_name)
    parts: list[str] = []
    for i in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["field", "field", "field", "typename", "fragment"]))
        directive = draw(st.sampled_from(DIRECTIVES))
        if kind == "typename":
            parts.append(draw(st.sampled_from(["", f"t{i}: "])) + "__typename" + directive)
            continue
        if kind == "fragment":
            if spread and type_name == "Talk" and draw(st.booleans()):
                parts.append("...TalkBits" + directive)
            elif depth > 0:
                inner = draw(selection_set(schema, type_name, depth - 1, spread=spread))
                parts.append(f"... on {type_name}{directive} {{ {inner} }}")
            continue
        name = draw(st.sampled_from(fields))
        definition = named.fields[name]
        arguments = ""
        if "first" in definition.args and draw(st.booleans()):
            arguments = f"(first: {draw(st.integers(0, 3))})"
        # Aliases unique within the document, so that fields do not conflict.
        alias = f"a{draw(st.integers(0, 10**6))}: " if arguments or draw(st.booleans()) else ""
        inner_type = get_named_type(definition.type)
        if is_leaf_type(inner_type):
            parts.append(f"{alias}{name}{arguments}{directive}")
        elif depth > 0:
            inner = draw(selection_set(schema, inner_type.name, depth - 1, spread=spread))
            parts.append(f"{alias}{name}{arguments}{directive} {{ {inner} }}")
    return " ".join(parts) or "__typename"


@st.composite
def read_documents(draw: st.DrawFn, schema: GraphQLSchema) -> str:
    talk_selection = draw(selection_set(schema, "Talk", 3))
    single = draw(selection_set(schema, "Talk", 2))
    selection = (
        f"talks(first: {draw(st.integers(1, 6))}) {{"
        f" edges {{ cursor node {{ {talk_selection} }} }} pageInfo {{ hasNextPage }} }}"
        f' one: talk(id: "114603") {{ {single} }}'
    )
    fragments = ""
    if "...TalkBits" in selection:
        bits = draw(selection_set(schema, "Talk", 2, spread=False))
        fragments = f"fragment TalkBits on Talk {{ {bits} }}"
    return operation(selection, fragments)


READ_SCHEMA = build_schema()._schema


@PROPERTIES
@given(
    document=read_documents(READ_SCHEMA),
    caller=st.sampled_from([READER, PII_READER]),
    failure=st.sampled_from(FAILURES),
)
async def test_any_read_selection_answers_as_graphql_core_does(
    schemas: Schemas, document: str, caller: Principal, failure: str | None
) -> None:
    # Two root fields read the store at once, and reader threads decide which read ends
    # first; so, with graphql-core alone too, whether their talks' messages and events are
    # asked for in one batch or two, and in which order errors under them come. The tests of
    # one root field below compare the store calls and the order of errors as well.
    fast, plain = await schemas.both(document, caller, failure, same_calls=False)
    same(fast, plain, ordered=False)


EVERYTHING_OF_A_TALK = """
query Everything {
  talks(first: 10) { edges { node { ...T customer { ...C talks(first: 2) { totalCount } } } } }
}
fragment T on Talk {
  __typename id: databaseId customerId agentId queueId channelId priorityId finishedAt wasSuccess
  createdAt hasSchedule isCritical score ratingSurveyId startedAt latitude longitude
  initialSenderChannel isWaiting wasExpired deliveredAt lastWaitingMessageAt isShopping isAds
  scaledToId clientIp clientUserAgent surveyId talkCategoryId talkServiceId initiationType
  deliveredToId externalProtocol trackingNumber urlViewer status rawPayloads
  botVariables { varName value } bot { id description } serviceCatalog { id description }
  agent { id: databaseId name login email isBot isActive levelId branchId languageId
  queueStatus { status } }
  channel { id: databaseId description isActive priority primaryColor }
  events { id: databaseId talkId eventId isSuccess createdAt reactionType event { id description } }
  histories(first: 5) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { id: databaseId message from type to sentAt hasAttachment attachmentType
      user { id: databaseId name } channel { id: databaseId } } }
  }
}
fragment C on Customer {
  id: databaseId name externalId documentNumber createdAt mainSms isPriority isActive
  profileInfo { id name isVerifiedUser followerCount }
  customFields { name value } telephones { id number hasWhatsapp sessionExpiresAt }
  emails { id email unsubscribedAt }
}
"""


@pytest.mark.parametrize("caller", [READER, PII_READER], ids=["reader", "pii-reader"])
async def test_every_field_of_the_dirty_talks_answers_as_graphql_core_does(
    schemas: Schemas, caller: Principal
) -> None:
    fast, plain = await schemas.both(EVERYTHING_OF_A_TALK, caller)
    # The same errors. The fast path settles a list's loaded fields after its items;
    # graphql-core each item's as its coroutine ends, and customers read with the page end
    # at once: the customers' PII errors come earlier there.
    same(fast, plain, ordered=False)
    assert fast.data is not None
    assert len(fast.data["talks"]["edges"]) == len(dirty_talks())
    codes = {(e.extensions or {}).get("code") for e in fast.errors or ()}
    assert codes == {"FORBIDDEN"}  # rawPayloads always; the PII fields for the reader


@pytest.mark.parametrize("failure", FAILURES[1:])
async def test_failing_loaders_answer_as_graphql_core_does(schemas: Schemas, failure: str) -> None:
    fast, plain = await schemas.both(EVERYTHING_OF_A_TALK, PII_READER, failure)
    # The same errors. graphql-core lists them as its tasks settle (one loader's batch after
    # another); the fast path settles a list's loads together, in the order of the items.
    same(fast, plain, ordered=False)
    assert fast.data is not None
    nodes = [edge["node"] for edge in fast.data["talks"]["edges"]]
    assert len(nodes) == len(dirty_talks())
    assert all(node["customer"] is None and node["channel"] is None for node in nodes)
    customer = [e.path for e in fast.errors or () if e.path and "customer" in e.path]
    at = {"missing": [], "unavailable": ["customer"], "broken": ["customer", "id"]}[failure]
    # At each talk's customer (or its id), in the order of the talks.
    assert customer == (
        [["talks", "edges", i, "node", *at] for i in range(len(nodes))] if at else []
    )


W3 = """
query W3 { talks(first: 20) { edges { node { id: databaseId createdAt customer { id:
databaseId name }
  agent { id: databaseId name queueStatus { status } } channel { id: databaseId description }
  histories(first: 50) { edges { node { id: databaseId message sentAt type from user { id:
  databaseId name }
    channel { id: databaseId } } } }
  events { id: databaseId eventId createdAt agentId agent { id: databaseId login } } } } } }
"""


async def test_loader_fields_cost_one_store_call_per_level_as_with_graphql_core(
    schemas: Schemas,
) -> None:
    calls = []
    for schema in (schemas.fast, schemas.plain):
        store = ObservedStore(schemas.services.store, None)
        services = dataclasses.replace(schemas.services, store=cast(TalkStore, store))
        context = RequestContext(caller=PII_READER, services=services, request_id=None)
        result = await schema.execute(W3, context_value=context)
        assert result.errors is None
        calls.append(dict(store.calls))
    assert calls[0] == calls[1]
    # The messages' users and the events' agents are the talks' agents: already loaded;
    # the customers were read with the page of talks.
    assert calls[0] == {
        "talk_pages": 1,
        "agents_by_id": 1,
        "agent_statuses": 1,
        "channels_by_id": 1,
        "message_pages": 1,
        "events_by_talk": 1,
    }


W1 = """
query W1 { talks(first: 100) { edges { node {
  id: databaseId customerId agentId queueId channelId createdAt finishedAt wasSuccess isCritical
  isWaiting status trackingNumber externalProtocol score customer { id: databaseId name } } } } }
"""
# node, its 14 plain fields, its customer (a loaded field), that customer's id and name
W1_FAST_VALUES_PER_TALK = 18


async def test_the_fast_path_completes_the_plain_fields_of_a_talks_page(
    schemas: Schemas,
) -> None:
    executors: list[FastExecutionContext] = []
    plans_run: list[str] = []

    class Recorded(FastExecutionContext):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            executors.append(self)

        def _execute_plan(self, parent_type: GraphQLObjectType, *args: Any) -> Any:
            plans_run.append(parent_type.name)
            return super()._execute_plan(parent_type, *args)

    schemas.fast.execution_context_class = Recorded
    fast, plain = await schemas.both(W1, PII_READER)
    same(fast, plain)
    assert fast.data is not None
    talks = len(fast.data["talks"]["edges"])
    assert talks == len(dirty_talks())
    # and the list of edges itself
    assert [e.fast_values for e in executors] == [W1_FAST_VALUES_PER_TALK * talks + 1]
    # The customers came with the page: each edge, its talk and that talk's customer are
    # completed by one generated function, not a plan run per object.
    assert plans_run == ["TalkConnection"]


# -- plans shared by the requests of a document (execution/sharing.py's _SharedPlans) ------


def _entries_made(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the fields FastExecutionContext plans from now on (`_entry` calls)."""
    made: list[str] = []
    entry = plans._entry

    def counted(context: Any, parent_type: Any, response_name: str, group: Any) -> Any:
        made.append(response_name)
        return entry(context, parent_type, response_name, group)

    monkeypatch.setattr(planning, "_entry", counted)  # where plans are made
    return made


async def test_a_document_sent_again_reuses_its_plans(
    schemas: Schemas, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = _entries_made(monkeypatch)
    first, plain = await schemas.both(EVERYTHING_OF_A_TALK, PII_READER)
    same(first, plain, ordered=False)
    assert made, "the first request plans its fields"
    made.clear()
    again, plain = await schemas.both(EVERYTHING_OF_A_TALK, PII_READER)
    same(again, plain, ordered=False)
    assert made == []


@pytest.mark.parametrize("order", [[READER, PII_READER] * 2, [PII_READER, READER] * 2])
async def test_callers_of_other_scopes_in_turn_get_their_own_plans(
    schemas: Schemas, order: list[Principal]
) -> None:
    """A plan decides which fields are masked: the same document, asked in turn by a caller
    with customers:pii and one without, answers each as graphql-core does."""
    for caller in order:
        fast, plain = await schemas.both(EVERYTHING_OF_A_TALK, caller)
        same(fast, plain, ordered=False)  # the order of errors: as in the test above


SKIPPED = """
query Skipped($pii: Boolean!, $plain: Boolean!) {
  talks(first: 10) { edges { node {
    id: databaseId trackingNumber @skip(if: $plain)
    customer { id: databaseId ...Pii @include(if: $pii) name @include(if: $plain) }
  } } }
}
fragment Pii on Customer { documentNumber emails { email } }
"""


async def test_directives_that_read_variables_are_collected_again_for_each_request(
    schemas: Schemas, monkeypatch: pytest.MonkeyPatch
) -> None:
    """@skip and @include decide the fields from each request's variables: such a
    document's plans are its own request's, and each answer is graphql-core's."""
    made = _entries_made(monkeypatch)
    for pii, plain_ in [(True, False), (False, True), (True, True), (False, False), (True, False)]:
        made.clear()
        results = []
        for schema in (schemas.fast, schemas.plain):
            context = RequestContext(caller=PII_READER, services=schemas.services, request_id=None)
            results.append(
                await schema.execute(
                    SKIPPED, variable_values={"pii": pii, "plain": plain_}, context_value=context
                )
            )
        same(*results)
        assert made, "each request plans its own fields"


async def test_a_finished_query_is_freed_without_the_cycle_collector(schemas: Schemas) -> None:
    # graphql-core's context holds bound methods of itself: until FastExecutionContext broke
    # that cycle, a request's context, loaders, loads and objects all waited for the cycle
    # collector. Freed by reference counting, they go as soon as the answer is made.
    executed: list[weakref.ref[FastExecutionContext]] = []

    class Watched(FastExecutionContext):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            executed.append(weakref.ref(self))

    schemas.fast.execution_context_class = Watched
    context = RequestContext(caller=PII_READER, services=schemas.services, request_id=None)
    loaders = weakref.ref(context.loaders)
    gc.collect()
    gc.disable()
    try:
        result = await schemas.fast.execute(W1, variable_values=VARIABLES, context_value=context)
        assert result.errors is None
        del context
        [execution] = executed
        assert execution() is None
        assert loaders() is None
    finally:
        gc.enable()


_SETTLED_IN_BACKGROUND: list[str] = []


@strawberry.type
class _HelpedQuery:
    @strawberry.field
    async def total(self, info: strawberry.Info[None, None]) -> int:
        async def value(n: int) -> int:
            await asyncio.sleep(0)
            return n

        async def late() -> None:
            _SETTLED_IN_BACKGROUND.append("late")

        helpers = info._raw_info.async_helpers  # graphql-core's; strawberry does not expose it
        helpers.track([late()])  # not awaited here: graphql-core settles it in the background
        return sum(await helpers.gather([value(1), value(2), value(3)]))


async def test_resolvers_can_gather_and_track_work_through_the_fast_context() -> None:
    schema = strawberry.Schema(query=_HelpedQuery, execution_context_class=FastExecutionContext)
    _SETTLED_IN_BACKGROUND.clear()

    result = await schema.execute("{ total }")
    for _ in range(3):
        await asyncio.sleep(0)

    assert result.errors is None
    assert result.data == {"total": 6}
    assert _SETTLED_IN_BACKGROUND == ["late"]


# -- every shape of value on a schema of its own --------------------------------------------


@strawberry.enum
class Shade(Enum):
    LIGHT = "l"
    DARK = "d"


@strawberry.type
class Leaf:
    name: str
    size: int | None


@strawberry.interface
class Named:
    name: str | None


@strawberry.type
class Pet(Named):
    legs: int | None


@strawberry.type
class Sample:
    text: str
    maybe_text: str | None
    number: int
    maybe_number: int | None
    ratio: float | None
    flag: bool
    maybe_flag: bool | None
    key: strawberry.ID
    maybe_key: strawberry.ID | None
    shade: Shade
    maybe_shade: Shade | None
    moment: UtcDateTime | None
    tags: list[str]
    maybe_tags: list[str | None] | None
    leaf: Leaf | None
    needed_leaf: Leaf
    leaves: list[Leaf]
    pet: Pet | None
    from_: str | None = strawberry.field(name="from")


@strawberry.type
class SampleQuery:
    @strawberry.field
    def samples(self, info: strawberry.Info[list[Sample | None], None]) -> list[Sample | None]:
        return info.context


def _sample_schemas() -> tuple[strawberry.Schema, strawberry.Schema]:
    def one() -> strawberry.Schema:
        return strawberry.Schema(
            query=SampleQuery,
            config=StrawberryConfig(scalar_map=SCALARS),
            execution_context_class=FastExecutionContext,
        )

    return one(), with_plain_execution(one())


SAMPLE_FAST, SAMPLE_PLAIN = _sample_schemas()
MISSING = object()  # the attribute is not there at all


class Odd:
    """A value of no builtin type, printed its own way."""

    def __str__(self) -> str:
        return "odd"


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.sampled_from([2**31 - 1, 2**31, -(2**31), -(2**31) - 1]),
    st.floats(),
    st.text(max_size=4),
    st.sampled_from([*Shade, "l", "DARK", Odd(), MISSING, ValueError("stored error"), b"x"]),
    st.just(datetime(2025, 9, 8, 14, 1, 17, tzinfo=UTC)),
)


def built(cls: type[Any], fields: dict[str, Any]) -> Any:
    """An instance of `cls` holding exactly `fields`, whatever their types."""
    instance = object.__new__(cls)
    instance.__dict__.update({k: v for k, v in fields.items() if v is not MISSING})
    return instance


def objects(cls: type[Any], names: list[str], inner: st.SearchStrategy[Any]) -> Any:
    return st.fixed_dictionaries(dict.fromkeys(names, inner)).map(lambda f: built(cls, f))


leaves = objects(Leaf, ["name", "size"], values)
field_values = st.one_of(
    values,
    st.lists(st.one_of(st.text(max_size=3), values), max_size=3),
    leaves,
    st.lists(st.one_of(leaves, values), max_size=3),
    objects(Pet, ["name", "legs"], values),
)
SAMPLE_FIELDS = {
    "text": "text",
    "maybe_text": "maybeText",
    "number": "number",
    "maybe_number": "maybeNumber",
    "ratio": "ratio",
    "flag": "flag",
    "maybe_flag": "maybeFlag",
    "key": "key",
    "maybe_key": "maybeKey",
    "shade": "shade",
    "maybe_shade": "maybeShade",
    "moment": "moment",
    "tags": "tags",
    "maybe_tags": "maybeTags",
    "leaf": "leaf { name size __typename }",
    "needed_leaf": "neededLeaf { size name }",
    "leaves": "leaves { name }",
    "pet": "pet { name legs }",
    "from_": "from",
}
samples = st.lists(
    st.one_of(st.none(), objects(Sample, list(SAMPLE_FIELDS), field_values)), max_size=3
)


@settings(max_examples=300, deadline=None, database=None)
@given(
    items=samples,
    selected=st.permutations(list(SAMPLE_FIELDS.values())).flatmap(
        lambda fields: st.integers(1, len(fields)).map(lambda n: fields[:n])
    ),
    aliased=st.booleans(),
)
def test_any_value_of_a_plain_field_completes_as_graphql_core_does(
    items: list[Any], selected: list[str], aliased: bool
) -> None:
    fields = [f"f{i}: {s}" if aliased else s for i, s in enumerate(selected)]
    document = "{ samples { __typename " + " ".join(fields) + " } }"
    fast = SAMPLE_FAST.execute_sync(document, context_value=items)
    plain = SAMPLE_PLAIN.execute_sync(document, context_value=items)
    same(fast, plain)


# Values of each field's own type, most of the time: then a list's items get through the
# generated completion (gateway.graphql.execution.codegen._completer) until the odd value
# that makes it hand an item back to the plan, at any field of any item.
valid_leaves = objects(Leaf, ["name", "size"], st.text(max_size=2)).map(
    lambda leaf: built(Leaf, {"name": leaf.name, "size": len(leaf.name) or None})
)
VALID_SAMPLE_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "text": st.text(max_size=3),
    "maybe_text": st.one_of(st.none(), st.text(max_size=3)),
    "number": st.integers(-(2**31), 2**31 - 1),
    "maybe_number": st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1)),
    "ratio": st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
    "flag": st.booleans(),
    "maybe_flag": st.one_of(st.none(), st.booleans()),
    "key": st.one_of(st.text(max_size=3), st.integers(0, 99)),
    "maybe_key": st.one_of(st.none(), st.text(max_size=3), st.integers(0, 99)),
    "shade": st.sampled_from(Shade),
    "maybe_shade": st.one_of(st.none(), st.sampled_from(Shade)),
    "moment": st.one_of(st.none(), st.just(datetime(2025, 9, 8, 14, 1, 17, tzinfo=UTC))),
    "tags": st.lists(st.text(max_size=2), max_size=2),
    "maybe_tags": st.one_of(st.none(), st.lists(st.text(max_size=2), max_size=2)),
    "leaf": st.one_of(st.none(), valid_leaves),
    "needed_leaf": valid_leaves,
    "leaves": st.lists(valid_leaves, max_size=2),
    "pet": st.none(),
    "from_": st.one_of(st.none(), st.text(max_size=3)),
}
mostly_valid_samples = st.lists(
    st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {
                name: st.one_of(*[valid] * 9, field_values)
                for name, valid in VALID_SAMPLE_VALUES.items()
            }
        ).map(lambda fields: built(Sample, fields)),
    ),
    max_size=4,
)


@settings(max_examples=300, deadline=None, database=None)
@given(
    items=mostly_valid_samples,
    selected=st.permutations([v for k, v in SAMPLE_FIELDS.items() if k != "leaves"]).flatmap(
        lambda fields: st.integers(1, len(fields)).map(lambda n: fields[:n])
    ),
)
def test_items_completed_by_generated_code_answer_as_graphql_core_does(
    items: list[Any], selected: list[str]
) -> None:
    document = "{ samples { " + " ".join(selected) + " } }"
    fast = SAMPLE_FAST.execute_sync(document, context_value=items)
    plain = SAMPLE_PLAIN.execute_sync(document, context_value=items)
    same(fast, plain)


def test_an_item_the_generated_code_cannot_complete_goes_the_plan_s_way() -> None:
    def sample(name: Any) -> Any:
        needed = None if name is None else built(Leaf, {"name": name, "size": 1})
        return built(Sample, {"text": "t", "needed_leaf": needed, "leaf": None})

    document = "{ samples { text leaf { name } neededLeaf { name size } } }"
    # Null in a non-null field; an int, which String turns into text; a value it refuses.
    items = [sample("n"), sample(None), sample(5), sample(b"x")]
    fast = SAMPLE_FAST.execute_sync(document, context_value=items)
    same(fast, SAMPLE_PLAIN.execute_sync(document, context_value=items))
    assert fast.data == {
        "samples": [
            {"text": "t", "leaf": None, "neededLeaf": {"name": "n", "size": 1}},
            None,
            {"text": "t", "leaf": None, "neededLeaf": {"name": "5", "size": 1}},
            None,
        ]
    }
    assert fast.errors is not None
    assert [e.path for e in fast.errors] == [
        ["samples", 1, "neededLeaf"],
        ["samples", 3, "neededLeaf", "name"],
    ]


@settings(max_examples=200, deadline=None, database=None)
@given(text=st.text())
def test_datetime_s_coercion_returns_the_strings_it_is_declared_to_keep(text: str) -> None:
    # schema.scalars declares it with `strings_unchanged`: the fast path skips the call.
    coerce = SAMPLE_FAST._schema.type_map["DateTime"].coerce_output_value  # type: ignore[attr-defined]
    assert coerce(text) is text


def test_a_null_in_a_non_null_plain_field_gets_graphql_core_s_error() -> None:
    sample = built(Sample, {"text": None, "needed_leaf": built(Leaf, {"name": None})})
    document = "{ samples { text } more: samples { neededLeaf { name } } }"
    fast = SAMPLE_FAST.execute_sync(document, context_value=[sample])
    same(fast, SAMPLE_PLAIN.execute_sync(document, context_value=[sample]))
    assert fast.data == {"samples": [None], "more": [None]}
    assert [e.message for e in fast.errors or ()] == [
        "Cannot return null for non-nullable field Sample.text.",
        "Cannot return null for non-nullable field Leaf.name.",
    ]


class CountResolves(SchemaExtension):
    """Middleware: it must see every field, plain ones included."""

    calls: ClassVar[list[str]] = []

    def resolve(
        self,
        _next: Callable[..., Any],
        root: Any,
        info: GraphQLResolveInfo[Any],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        self.calls.append(info.field_name)
        return _next(root, info, *args, **kwargs)


def test_with_middleware_every_field_goes_through_it() -> None:
    def counted(context: type[StrawberryGraphQLCoreExecutionContext]) -> list[str]:
        schema = strawberry.Schema(
            query=SampleQuery,
            config=StrawberryConfig(scalar_map=SCALARS),
            extensions=[CountResolves],
            execution_context_class=context,
        )
        CountResolves.calls.clear()
        sample = built(Sample, {"text": "a", "leaf": built(Leaf, {"name": "b", "size": 1})})
        result = schema.execute_sync("{ samples { text leaf { name } } }", context_value=[sample])
        assert result.data == {"samples": [{"text": "a", "leaf": {"name": "b"}}]}
        return list(CountResolves.calls)

    calls = counted(FastExecutionContext)
    assert calls == counted(StrawberryGraphQLCoreExecutionContext)
    assert calls == ["samples", "text", "leaf", "name"]


# -- loaded fields on a schema of their own ---------------------------------------------------

BROKEN = 13  # the owners loader answers this key with an error


@strawberry.type
class Owner:
    name: str | None
    boss_id: strawberry.Private[Any]

    @strawberry.field
    @loaded_by("owners", "boss_id")
    async def boss(self, info: strawberry.Info[Any, None]) -> Owner | None: ...


def _pals_key(owner_id: int, first: int, tag: str | None) -> tuple[int, int, str | None]:
    return (owner_id, first, tag)


def _chief_key(owner_id: int, rank: int) -> tuple[int, int, str | None]:
    return (owner_id, rank, "chief")


@strawberry.type
class Thing:
    name: str | None
    owner_id: strawberry.Private[Any]
    helpers: list[Thing | None]

    @strawberry.field
    @loaded_by("owners", "owner_id")
    async def owner(self, info: strawberry.Info[Any, None]) -> Owner | None: ...

    # Loaded fields of other types, loaded per object (the fast path's _LOAD_EACH): a
    # non-null list keyed with arguments, a non-null object, a list of non-null items.
    @strawberry.field
    @loaded_by("pals", "owner_id", keyed=_pals_key)
    async def pals(  # type: ignore[empty-body]
        self, info: strawberry.Info[Any, None], first: int = 2, tag: str | None = None
    ) -> list[Owner | None]: ...

    @strawberry.field
    @loaded_by("pals", "owner_id", keyed=_chief_key)
    async def chief(self, info: strawberry.Info[Any, None], rank: int = 1) -> Owner: ...  # type: ignore[empty-body]

    @strawberry.field
    @loaded_by("owned", "owner_id")
    async def owned(self, info: strawberry.Info[Any, None]) -> list[Owner] | None: ...

    @strawberry.field
    async def tag(self) -> str:  # an awaitable item next to the deferred loads
        return f"tag of {self.name}"


@strawberry.type
class ThingQuery:
    @strawberry.field
    def things(self, info: strawberry.Info[Any, None]) -> list[Thing | None]:
        return cast(list[Thing | None], info.context.things)

    @strawberry.field
    def thing(self, info: strawberry.Info[Any, None]) -> Thing | None:
        return cast(Thing | None, info.context.things[0] if info.context.things else None)


class PeekableLoader(DataLoader[int, Any]):
    """A DataLoader that tells what it holds already, as the app's ByIdLoader does: then the
    fast path completes those loaded objects in its generated code."""

    def peek(self, key: int, default: Any) -> Any:
        known = self.cache_map.get(key)
        if known is None or not known.done() or known.cancelled() or known.exception():
            return default
        return known.result()


def _owner(owners_by_id: dict[int, Owner], key: int) -> Owner | Exception | None:
    return ValueError(f"owner {key} is broken") if key == BROKEN else owners_by_id.get(key)


def _pals(owners_by_id: dict[int, Owner], key: tuple[int, int, str | None]) -> Any:
    """A keyed load: `first` owners of the known ones (a None among them for tag "n"), an
    error for the broken owner or a negative `first`, None for an unknown owner; with the
    tag "chief", the owner of that rank (None past the last)."""
    owner_id, first, tag = key
    if owner_id == BROKEN or first < 0:
        return ValueError(f"pals of {owner_id} are broken")
    if owner_id not in owners_by_id:
        return None
    pals: list[Owner | None] = [owners_by_id[i] for i in sorted(owners_by_id)]
    if tag == "chief":
        return pals[first - 1] if 0 < first <= len(pals) else None
    if tag == "n":
        pals.insert(1, None)
    return pals[:first]


@dataclass
class OwnerLoaders:
    owners_by_id: dict[int, Owner]
    down: bool = False  # every batch fails as a whole
    batches: list[list[str]] = dataclasses.field(default_factory=list)  # keys' reprs
    peekable: bool = False

    def __post_init__(self) -> None:
        async def load(ids: list[int]) -> list[Owner | Exception | None]:
            self.batches.append([repr(i) for i in ids])
            if self.down:
                raise StoreUnavailable("the owners are gone")
            return [_owner(self.owners_by_id, i) for i in ids]

        self.owners: DataLoader[int, Any] = (PeekableLoader if self.peekable else DataLoader)(
            load_fn=load
        )

        async def load_pals(keys: list[tuple[int, int, str | None]]) -> list[Any]:
            self.batches.append([repr(key) for key in keys])
            if self.down:
                raise StoreUnavailable("the pals are gone")
            return [_pals(self.owners_by_id, key) for key in keys]

        async def load_owned(ids: list[int]) -> list[Any]:
            # Each owned list: the owner's boss and the owner, None for an unknown boss.
            self.batches.append([repr(i) for i in ids])
            owners = [_owner(self.owners_by_id, i) for i in ids]
            return [
                [self.owners_by_id.get(o.boss_id), o] if isinstance(o, Owner) else o for o in owners
            ]

        # Uncached: a load of graphql-core's that an error cancels cancels the future a
        # cached loader shares with every other load of its key.
        self.pals: DataLoader[tuple[int, int, str | None], Any] = DataLoader(
            load_fn=load_pals, cache=False
        )
        self.owned: DataLoader[int, Any] = DataLoader(load_fn=load_owned, cache=False)


@dataclass
class ThingContext:
    things: list[Any]  # things, or the rows of the schema of shared objects
    loaders: OwnerLoaders


def _thing_schemas() -> tuple[strawberry.Schema, strawberry.Schema]:
    def one() -> strawberry.Schema:
        return strawberry.Schema(query=ThingQuery, execution_context_class=FastExecutionContext)

    return one(), with_plain_execution(one())


THINGS_FAST, THINGS_PLAIN = _thing_schemas()
# Keys: known owners, unknown ones, None, a broken owner, not an int at all.
owner_keys = st.sampled_from([1, 2, 3, "2", None, 404, BROKEN, "x", 2.5])
thing_objects = st.recursive(
    st.builds(
        lambda name, key: built(Thing, {"name": name, "owner_id": key, "helpers": []}),
        st.one_of(st.none(), st.text(max_size=2)),
        owner_keys,
    ),
    lambda inner: st.builds(
        lambda name, key, helpers: built(
            Thing, {"name": name, "owner_id": key, "helpers": helpers}
        ),
        st.one_of(st.none(), st.text(max_size=2)),
        owner_keys,
        st.lists(st.one_of(st.none(), inner), max_size=3),
    ),
    max_leaves=6,
)
owners = st.dictionaries(
    st.sampled_from([1, 2, 3]),
    st.builds(
        lambda name, boss: built(Owner, {"name": name, "boss_id": boss}),
        st.one_of(st.none(), st.text(max_size=2)),
        owner_keys,
    ),
)
THING_SELECTIONS = [
    "name",
    "owner { name }",
    "owner { __typename }",
    "owner { boss { name boss { name } } }",
    "helpers { name owner { name } }",
    "helpers { helpers { owner { boss { name } } } tag }",
    "tag",
    "__typename",
    "pals { name }",
    'tagged: pals(first: 3, tag: "n") { name boss { name } }',
    "few: pals(first: 1) { name } broken: pals(first: -1) { name }",
    "chief { name owner: boss { name } }",
    "second: chief(rank: 2) { name }",
    "owned { name }",
    "helpers { pals { name } owned { boss { name } } }",
]


def _run_things(
    schema: strawberry.Schema,
    document: str,
    things: list[Any],
    by_id: dict[int, Owner],
    down: bool,
    primed: frozenset[int] = frozenset(),
) -> tuple[ExecutionResult, list[list[str]]]:
    """The document on `things`; the owners of the keys `primed` are in the loader before it
    runs (the broken one as its error), as a page's customers are after the page's read."""
    loaders = OwnerLoaders(by_id, down, peekable=True)
    context = ThingContext(things, loaders)

    async def run() -> ExecutionResult:
        loaders.owners.prime_many({key: _owner(by_id, key) for key in primed})
        return await schema.execute(document, context_value=context)

    with _its_garbage_collected():  # what the run left unawaited warns now, under the filters
        return asyncio.run(run()), loaders.batches


@contextlib.contextmanager
def _its_garbage_collected() -> Iterator[None]:
    """Collect the cycles the block made when it ends. The heap from before it is frozen
    meanwhile: the collection walks only what the block allocated (a full one costs ~90 ms
    in this suite's heap, and these tests run hundreds of examples). Nested, the outermost
    block thaws the heap."""
    outermost = not _FROZEN
    gc.freeze()
    _FROZEN.append(True)
    try:
        yield
    finally:
        _FROZEN.pop()
        gc.collect()
        if outermost:
            gc.unfreeze()


_FROZEN: list[bool] = []


@settings(max_examples=150, deadline=None, database=None)
@given(
    things=st.lists(st.one_of(st.none(), thing_objects), max_size=4),
    by_id=owners,
    down=st.booleans(),
    selected=st.permutations(THING_SELECTIONS).flatmap(
        lambda fields: st.integers(1, len(fields)).map(lambda n: fields[:n])
    ),
    single=st.booleans(),
    primed=st.frozensets(st.sampled_from([1, 2, 3, 404, BROKEN])),
)
def test_loaded_fields_answer_as_their_resolvers_do_under_graphql_core(
    things: list[Thing | None],
    by_id: dict[int, Owner],
    down: bool,
    selected: list[str],
    single: bool,
    primed: frozenset[int],
) -> None:
    root = "thing" if single else "things"  # one object, or a list whose loads are deferred
    document = f"{{ {root} {{ {' '.join(selected)} }} }}"
    fast, fast_batches = _run_things(THINGS_FAST, document, things, by_id, down, primed)
    plain_run = None
    # graphql-core's own hazard (the fast path's `_apart`): a non-null field's error
    # cancelled a task awaiting an owner's future that other fields shared. The aborted
    # run's coroutines, freed with its traceback, warn as the block ends.
    with _its_garbage_collected(), contextlib.suppress(asyncio.CancelledError):
        plain_run = _run_things(THINGS_PLAIN, document, things, by_id, down, primed)
    if plain_run is None:
        reject()
    plain, plain_batches = plain_run
    # Errors come in another order: graphql-core's follows its tasks, the fast path's its items.
    same(fast, plain, ordered=False, nulled=True)
    propagated = any(_beneath_a_null(plain.data, e.path) for e in plain.errors or ())
    if propagated:
        # A non-null field's error nulled a parent: graphql-core cancels the loads beneath
        # it that had not started, the fast path made them already. Both answer the same.
        return
    # The same keys loaded, each once. graphql-core starts a nested list's resolvers a turn
    # of the loop later than its parent's, so its batches may be split where the fast path
    # sends one: never more batches.
    assert sorted(k for b in fast_batches for k in b) == sorted(k for b in plain_batches for k in b)
    assert len(fast_batches) <= len(plain_batches)


def test_loads_already_done_complete_in_generated_code_errors_included() -> None:
    by_id = {1: built(Owner, {"name": "o", "boss_id": None})}
    things: list[Thing | None] = [
        built(Thing, {"name": str(i), "owner_id": key, "helpers": []})
        for i, key in enumerate([1, BROKEN, 1, None, 404])
    ]
    # Only __typename, which an error object would not refuse as a name field would.
    document = "{ things { name owner { __typename } } }"
    # Every owner loaded already, the broken one as its error: nothing left to fetch.
    primed = frozenset({1, BROKEN, 404})
    fast, fast_batches = _run_things(THINGS_FAST, document, things, by_id, False, primed)
    plain, plain_batches = _run_things(THINGS_PLAIN, document, things, by_id, False, primed)
    same(fast, plain, ordered=False)
    assert fast_batches == plain_batches == []
    owner = {"__typename": "Owner"}
    assert fast.data == {
        "things": [
            {"name": "0", "owner": owner},
            {"name": "1", "owner": None},
            {"name": "2", "owner": owner},
            {"name": "3", "owner": None},
            {"name": "4", "owner": None},
        ]
    }
    assert fast.errors is not None
    assert [(e.message, e.path) for e in fast.errors] == [
        (f"owner {BROKEN} is broken", ["things", 1, "owner"])
    ]


def test_loads_still_to_make_stay_in_generated_code_and_go_out_in_one_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    by_id = {
        1: built(Owner, {"name": "o", "boss_id": 2}),
        2: built(Owner, {"name": "b", "boss_id": None}),
    }
    things: list[Thing | None] = [
        built(Thing, {"name": str(i), "owner_id": key, "helpers": []})
        for i, key in enumerate([1, BROKEN, 1, None, 404, 1])
    ]
    document = "{ things { name owner { name boss { name } } } }"
    planned: list[str] = []
    plan_way = FastExecutionContext._execute_plan

    def counted(self: FastExecutionContext, parent_type: Any, *args: Any) -> Any:
        planned.append(parent_type.name)
        return plan_way(self, parent_type, *args)

    # Nothing loaded before: every owner is a load the generated code leaves to the list.
    with monkeypatch.context() as patched:
        patched.setattr(FastExecutionContext, "_execute_plan", counted)
        fast, fast_batches = _run_things(THINGS_FAST, document, things, by_id, False)
    # No thing went the plan's way: only the root, and the loaded owners as they settle.
    assert "Thing" not in planned
    plain, plain_batches = _run_things(THINGS_PLAIN, document, things, by_id, False)
    same(fast, plain, ordered=False)
    assert fast_batches == [["1", "13", "404"], ["2"]]
    assert len(fast_batches) <= len(plain_batches)
    assert fast.errors is not None
    assert [(e.message, e.path) for e in fast.errors] == [
        (f"owner {BROKEN} is broken", ["things", 1, "owner"])
    ]
    boss = {"name": "o", "boss": {"name": "b"}}
    assert fast.data is not None
    assert [t["owner"] for t in fast.data["things"]] == [boss, None, boss, None, None, boss]


# -- objects shared between requests, their completed fields kept on them --------------------


@strawberry.type
class Card:
    title: str | None
    size: int | None
    leaf: Leaf | None
    owner_id: strawberry.Private[Any]

    @strawberry.field
    @loaded_by("owners", "owner_id")
    async def owner(self, info: strawberry.Info[Any, None]) -> Owner | None: ...


@strawberry.type
class Row:
    card: Card | None


@strawberry.type
class RowQuery:
    @strawberry.field
    def rows(self, info: strawberry.Info[Any, None]) -> list[Row]:
        return cast(list[Row], info.context.things)


frozen_snapshots(Card, Owner)
ROWS_FAST = strawberry.Schema(query=RowQuery, execution_context_class=FastExecutionContext)
ROWS_PLAIN = with_plain_execution(
    strawberry.Schema(query=RowQuery, execution_context_class=FastExecutionContext)
)
CARD_SELECTIONS = [
    "title",
    "size",
    "__typename",
    "leaf { name }",
    "owner { name }",
    "title2: title",
]
cards = st.builds(
    lambda title, size, leaf, owner: built(
        Card, {"title": title, "size": size, "leaf": leaf, "owner_id": owner}
    ),
    st.one_of(st.none(), st.text(max_size=2), st.integers(0, 3)),
    st.one_of(st.none(), st.integers(0, 9), st.text(max_size=1)),
    st.one_of(st.none(), valid_leaves),
    st.sampled_from([1, 2, None]),
)


def _run_rows(
    schema: strawberry.Schema, document: str, rows: list[Row], owners: dict[int, Owner]
) -> ExecutionResult:
    """The document on `rows`, every owner already in the loader."""
    return _run_things(schema, document, rows, owners, False, frozenset(owners))[0]


@settings(max_examples=100, deadline=None, database=None)
@given(
    shared=st.lists(cards, min_size=1, max_size=3),
    picks=st.lists(st.lists(st.integers(0, 2), min_size=1, max_size=4), min_size=2, max_size=5),
    selections=st.lists(
        st.permutations(CARD_SELECTIONS).flatmap(
            lambda fields: st.integers(1, len(fields)).map(lambda n: fields[:n])
        ),
        min_size=2,
        max_size=5,
    ),
    owner_names=st.lists(st.one_of(st.none(), st.text(max_size=2)), min_size=2, max_size=2),
)
def test_shared_objects_read_again_answer_as_graphql_core_does(
    shared: list[Any],
    picks: list[list[int]],
    selections: list[list[str]],
    owner_names: list[str | None],
) -> None:
    # The same cards, read again and again in other rows, other selections, next to other
    # owners: what was kept on them must never show through where it does not belong.
    for pick, selected in zip(picks, selections, strict=False):
        rows = [built(Row, {"card": shared[i % len(shared)]}) for i in pick]
        owners = {
            key: built(Owner, {"name": name, "boss_id": None})
            for key, name in zip([1, 2], owner_names, strict=True)
        }
        document = "{ rows { card { " + " ".join(selected) + " } } }"
        fast = _run_rows(ROWS_FAST, document, rows, owners)
        same(fast, _run_rows(ROWS_PLAIN, document, rows, owners))
        owner_names = owner_names[::-1]  # a loaded field is never kept: it changes


def test_what_an_object_keeps_is_not_changed_by_the_fields_completed_after_it() -> None:
    card = built(Card, {"title": "t", "size": 1, "leaf": None, "owner_id": 1})
    rows = [built(Row, {"card": card}), built(Row, {"card": card})]
    owners = {1: built(Owner, {"name": "o", "boss_id": None})}
    # title and size are kept on the card; the owner, a load, is completed after them.
    with_owner = _run_rows(
        ROWS_FAST, "{ rows { card { title size owner { name } } } }", rows, owners
    )
    assert with_owner.data == {
        "rows": [{"card": {"title": "t", "size": 1, "owner": {"name": "o"}}}] * 2
    }
    without = _run_rows(ROWS_FAST, "{ rows { card { title size } } }", rows, owners)
    assert without.data == {"rows": [{"card": {"title": "t", "size": 1}}] * 2}


def test_a_loaded_field_is_never_kept_on_the_object_that_loads_it() -> None:
    card = built(Card, {"title": "t", "size": 1, "leaf": None, "owner_id": 1})
    rows = [built(Row, {"card": card})]
    document = "{ rows { card { owner { name } title size } } }"
    for name in ("first owner", "second owner"):
        owners = {1: built(Owner, {"name": name, "boss_id": None})}
        result = _run_rows(ROWS_FAST, document, rows, owners)
        assert result.data == {
            "rows": [{"card": {"owner": {"name": name}, "title": "t", "size": 1}}]
        }


def test_an_object_keeps_a_bounded_number_of_selections() -> None:
    card = built(Card, {"title": "t", "size": 1, "leaf": None, "owner_id": None})
    rows = [built(Row, {"card": card})]
    for n in range(1, 40):
        aliases = " ".join(f"t{i}: title" for i in range(n))
        result = _run_rows(ROWS_FAST, f"{{ rows {{ card {{ size {aliases} }} }} }}", rows, {})
        assert result.data == {"rows": [{"card": {"size": 1} | {f"t{i}": "t" for i in range(n)}}]}
    kept = vars(card)[codegen._MEMO]
    assert 1 <= len(kept) <= codegen._MEMO_KEPT


def test_a_list_s_loads_are_awaited_together_not_one_task_per_item() -> None:
    owner = built(Owner, {"name": "o", "boss_id": 2})
    by_id = {1: owner, 2: built(Owner, {"name": "boss", "boss_id": None})}
    things: list[Thing | None] = [
        built(Thing, {"name": str(i), "owner_id": 1, "helpers": []}) for i in range(50)
    ]
    document = "{ things { name owner { name boss { name } } } }"

    def tasks_made(schema: strawberry.Schema) -> tuple[int, ExecutionResult]:
        made = 0

        async def run() -> ExecutionResult:
            loop = asyncio.get_running_loop()

            def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
                nonlocal made
                made += 1
                return asyncio.Task(coro, loop=loop, **kwargs)

            loop.set_task_factory(counting)
            return await schema.execute(document, context_value=ThingContext(things, loaders))

        loaders = OwnerLoaders(by_id)
        result = asyncio.run(run())
        assert loaders.batches == [["1"], ["2"]]  # one load per level, either way
        return made, result

    fast_tasks, fast = tasks_made(THINGS_FAST)
    plain_tasks, plain = tasks_made(THINGS_PLAIN)
    same(fast, plain)
    assert plain_tasks >= 50  # graphql-core: a task per item at least
    assert fast_tasks <= 4  # the loaders' two batches, and no task per item


def test_build_makes_the_objects_their_dataclass_init_makes() -> None:
    doc = example_talk()
    made = [
        talk_from_doc(doc),
        customer_from_doc(doc["customer"]),
        history_from_doc(doc["talk_histories"][0]),
        event_from_doc(doc["talk_events"][0]),
        agent_from_doc({"id": 7, "name": None}),
        channel_from_doc({"id": 1}),
        build(Telephone, doc["customer"]["telephones"][0]),
        build(Bot, {}),
    ]
    for instance in made:
        kind: type = type(instance)
        given = {f.name: getattr(instance, f.name) for f in dataclasses.fields(kind) if f.init}
        by_init = vars(kind(**given))
        # A Node's global id is encoded when first read (schema.node.GlobalIdOnRead), as
        # `given` just did: the same value, kept last rather than first.
        assert vars(instance).get("global_id") == by_init.get("global_id")
        assert [kv for kv in vars(instance).items() if kv[0] != "global_id"] == [
            kv for kv in by_init.items() if kv[0] != "global_id"
        ]
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        build(Bot, {}, nope=1)


def test_the_app_s_schema_executes_with_the_fast_context() -> None:
    assert build_schema().execution_context_class is FastExecutionContext


# -- resolvers called directly --------------------------------------------------------------

NOBODY = Principal("nobody", frozenset())
ROOT_DOCUMENTS = [
    "{ talks(first: 2, orderBy: CREATED_AT_ASC) { edges { cursor node { id: databaseId } }"
    " totalCount } }",
    '{ talks(filter: {status: FINISHED, createdTo: "2030-01-01T00:00:00Z", wasSuccess: true})'
    " { edges { node { id: databaseId status } } pageInfo { hasNextPage endCursor } } }",
    '{ talks(filter: {customerId: "not a number"}) { edges { node { id: databaseId } } } }',
    "{ talks(first: 101) { edges { node { id: databaseId } } } }",
    "{ talks(first: 1, filter: null) { edges { node { id: databaseId } } } }",
    '{ talks(after: "garbage") { edges { node { id: databaseId } } } }',
    '{ talks(orderBy: ID_DESC, filter: {text: "ol\\u00e1 mundo"}) { edges { node { id:'
    " databaseId } } } }",
    '{ one: talk(id: "114603") { id: databaseId } two: talk(trackingNumber: "nope") { id:'
    " databaseId } }",
    "{ talk { id: databaseId } }",
    '{ customer(id: "x") { id: databaseId } customers(search: "a", first: 1) { edges { node'
    " { id: databaseId } } } }",
    "{ agents(first: 1) { edges { node { id: databaseId } } totalCount } deadLetters(first:"
    " 1) { edges { node { id } } } }",
]


@pytest.mark.parametrize("document", ROOT_DOCUMENTS)
@pytest.mark.parametrize("caller", [READER, PII_READER, NOBODY], ids=lambda c: c.name)
async def test_root_fields_with_arguments_answer_as_under_strawberry_s_wrapper(
    schemas: Schemas, document: str, caller: Principal
) -> None:
    fast, plain = await schemas.both(document, caller)
    same(fast, plain)


async def test_a_granted_resolver_runs_without_strawberry_s_permission_wrapper(
    schemas: Schemas, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []
    has_permission = HasScope.has_permission

    def counted(self: HasScope, *args: Any, **kwargs: Any) -> bool:
        checked.append(self.scope)
        return has_permission(self, *args, **kwargs)

    monkeypatch.setattr(HasScope, "has_permission", counted)
    document = "{ talks(first: 1) { edges { node { id: databaseId } } } }"
    granted = await schemas.fast.execute(document, context_value=schemas.context(READER))
    assert granted.errors is None
    assert checked == []
    refused = await schemas.fast.execute(document, context_value=schemas.context(NOBODY))
    assert [(e.extensions or {}).get("code") for e in refused.errors or ()] == ["FORBIDDEN"]
    assert checked == ["talks:read"]
    # The plain execution context keeps strawberry's wrapper for everyone.
    plain = await schemas.plain.execute(document, context_value=schemas.context(READER))
    assert plain.data == granted.data
    assert checked == ["talks:read", "talks:read"]


@strawberry.input
class _Span:
    low: int
    high: int | None = None
    shades: list[Shade] | None = None


@built_directly
@strawberry.input
class _Built:
    low: int
    high: int | None = None
    shade: Shade | None = None


@strawberry.type
class _ArgumentsQuery:
    @strawberry.field
    async def echo(
        self,
        info: strawberry.Info,
        spans: list[_Span] | None = None,
        span: _Span | None = None,
        shade: Shade = Shade.LIGHT,
        key: strawberry.ID | None = None,
        moment: UtcDateTime | None = None,
        label: str | None = strawberry.UNSET,
        built: _Built | None = None,
    ) -> str:
        given = {
            "built": built,
            "self": self,
            "field": info.field_name,
            "path": info.path.as_list(),
            "spans": spans,
            "span": span,
            "shade": shade,
            "key": key,
            "moment": moment,
            "label": label,
        }
        return repr({name: (type(value).__name__, value) for name, value in given.items()})

    @strawberry.field
    async def parent(self, root: strawberry.Parent[object], size: int = 3) -> str:
        return f"{root!r} {size}"

    @strawberry.field
    async def fails(self, number: int) -> int | None:
        raise ValueError(f"no {number}")


ARGUMENT_DOCUMENTS = [
    "{ echo }",
    "{ echo(shade: DARK, key: 7, label: null) }",
    '{ echo(moment: "2024-01-02T03:04:05Z", label: "x") a: echo(key: "k") }',
    "{ echo(spans: [{low: 1}, {low: 2, high: 3, shades: [DARK, LIGHT]}], span: {low: 0}) }",
    "{ echo(built: {low: 1, shade: DARK}) a: echo(built: null) b: echo(built: {low: 2}) }",
    "query Q($b: Built) { echo(built: $b) }",
    "query Q($s: [Span!], $k: ID) { echo(spans: $s, key: $k) }",
    "{ parent parent2: parent(size: 5) fails(number: 4) }",
    '{ echo(moment: "not a moment") }',
]


@pytest.mark.parametrize("document", ARGUMENT_DOCUMENTS)
async def test_arguments_reach_a_resolver_called_directly_as_strawberry_converts_them(
    document: str,
) -> None:
    def one(context_class: type[StrawberryGraphQLCoreExecutionContext]) -> strawberry.Schema:
        return strawberry.Schema(
            query=_ArgumentsQuery,
            config=StrawberryConfig(scalar_map=SCALARS),
            execution_context_class=context_class,
        )

    fast, plain = one(FastExecutionContext), one(StrawberryGraphQLCoreExecutionContext)
    assert direct._direct_calls(fast._schema)  # the fast schema does call them directly
    variables = {"s": [{"low": 5, "shades": ["DARK"]}], "k": 9, "b": {"low": 3, "high": None}}
    results = [
        await schema.execute(document, variable_values=variables, root_value="the root")
        for schema in (fast, plain)
    ]
    same(*results)
    # Every document runs, but the one whose literal no DateTime takes.
    assert (results[0].data is None) == ("not a moment" in document)


@strawberry.type
class _Refusal:
    reason: str


class _RefusalHandler(strawberry.ExceptionHandler[ValueError, _Refusal]):
    def handle(self, exception: ValueError, *, field: Any, info: Any) -> _Refusal:
        return _Refusal(reason=str(exception))


@strawberry.type
class _HandledQuery:
    @strawberry.field
    async def risky(self, number: int) -> Leaf | _Refusal:
        if number < 0:
            raise ValueError("negative")
        return Leaf(name="fine", size=number)


@pytest.mark.parametrize("number", [1, -1])
async def test_a_schema_with_exception_handlers_keeps_strawberry_s_wrapper(number: int) -> None:
    def one(context_class: type[StrawberryGraphQLCoreExecutionContext]) -> strawberry.Schema:
        return strawberry.Schema(
            query=_HandledQuery,
            exception_handlers=[_RefusalHandler()],
            execution_context_class=context_class,
        )

    fast, plain = one(FastExecutionContext), one(StrawberryGraphQLCoreExecutionContext)
    document = (
        f"{{ risky(number: {number}) {{ __typename ... on Leaf {{ size }}"
        " ... on Refusal { reason } } }"
    )
    results = [await schema.execute(document) for schema in (fast, plain)]
    same(*results)
    assert results[0].data is not None
    assert results[0].data["risky"]["__typename"] == ("Leaf" if number > 0 else "Refusal")


# -- subscriptions --------------------------------------------------------------------------


@strawberry.type
class _Tick:
    n: int
    label: str


@strawberry.type
class _TickQuery:
    ping: int = 0


class _Remembered(FastExecutionContext):
    """Keeps the executors graphql-core builds (per-event copies are made by copy())."""

    built: ClassVar[list[FastExecutionContext]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _Remembered.built.append(self)


@strawberry.type
class _Ticks:
    @strawberry.subscription
    async def ticks(self, count: int) -> AsyncIterator[_Tick]:
        for n in range(count):
            yield _Tick(n=n, label=f"tick {n}")


async def test_events_of_a_long_subscription_leave_no_memo_behind() -> None:
    # graphql-core's per-event executor is a shallow copy: memos keyed by each event's own
    # field lists would otherwise grow by an entry per event, for as long as it runs.
    schema = strawberry.Schema(
        query=_TickQuery, subscription=_Ticks, execution_context_class=_Remembered
    )
    _Remembered.built.clear()
    stream = await schema.subscribe("subscription { ticks(count: 50) { n label } }")
    assert not isinstance(stream, ExecutionResult)
    labels = [result.data["ticks"]["label"] async for result in stream if result.data]
    assert labels == [f"tick {n}" for n in range(50)]
    [subscription] = _Remembered.built
    assert len(subscription._relevant_sub_fields) <= 1
    assert len(subscription._plans) <= 1
