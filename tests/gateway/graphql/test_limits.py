"""The measures of a GraphQL document: depth, aliases and cost, as `gateway.graphql.limits`
computes them.

Cost: every field returning objects costs 1, scalar leaves are free, a field with `first`
multiplies its subtree by `first` (given, from a variable, or its default), a list right under
such a paged field (a connection's `edges`) does not multiply again, and any other list
multiplies by `default_list_size`. Introspection fields are exempt.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.graphql.limits import Measures, measure
from gateway.graphql.schema_assembly import build_schema
from gateway.graphql.widths import MEASURE_CAP, widest_selection
from schema.connections import DEFAULT_FIRST

SCHEMA: GraphQLSchema = build_schema()._schema

COST_BOMB = """
{
  talks(first: 100) { edges { node {
    customer { talks(first: 100) { edges { node {
      histories(first: 100) { edges { node { id: databaseId } } }
    } } } }
  } } }
}"""
COST_BOMB_VALUE = 2_030_401  # 1 + 100 * (edges 1 + node 1 + customer 1 + 1 + 100 * (... 201))


def measured(
    document: str,
    variables: dict[str, Any] | None = None,
    *,
    operation: str | None = None,
    default_list_size: int = 10,
) -> Measures:
    """The measures of one operation of `document` (the only one, or the one named)."""
    parsed: DocumentNode = parse(document)
    operations = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
    if operation is not None:
        operations = [o for o in operations if o.name and o.name.value == operation]
    [chosen] = operations
    fragments = {
        d.name.value: d for d in parsed.definitions if isinstance(d, FragmentDefinitionNode)
    }
    return measure(SCHEMA, chosen, fragments, variables or {}, default_list_size=default_list_size)


# -- cost -----------------------------------------------------------------------------------


def test_scalar_leaves_cost_nothing_and_their_object_costs_one() -> None:
    assert measured('{ talk(id: "1") { id: databaseId trackingNumber createdAt } }').cost == 1


def test_every_field_returning_an_object_costs_one() -> None:
    document = (
        '{ talk(id: "1") { customer { name } agent { name } channel { databaseId } bot { id } } }'
    )
    assert measured(document).cost == 5


def test_first_multiplies_the_cost_of_its_subtree() -> None:
    # talks 1 + 5 * (edges 1 + node 1)
    assert measured("{ talks(first: 5) { edges { node { id: databaseId } } } }").cost == 11


def test_edges_under_a_paged_field_are_not_multiplied_again() -> None:
    # Were `edges` a list of ten more, the cost would be 1 + 5 * (1 + 10 * 1) = 56.
    assert (
        measured("{ talks(first: 5) { edges { node { customer { id: databaseId } } } } }").cost
        == 16
    )


def test_a_paged_field_without_first_is_multiplied_by_its_default_first() -> None:
    # talks' `first` defaults to 20: 1 + 20 * 2
    assert measured("{ talks { edges { node { id: databaseId } } } }").cost == 41


def test_first_zero_leaves_only_the_cost_of_the_paged_field() -> None:
    assert (
        measured("{ talks(first: 0) { edges { node { customer { id: databaseId } } } } }").cost == 1
    )


def test_a_list_without_first_is_multiplied_by_the_default_list_size() -> None:
    # talk 1 + events (1 + 10 * agent 1)
    assert measured('{ talk(id: "1") { events { agent { id: databaseId } } } }').cost == 12


def test_the_default_list_size_is_a_parameter() -> None:
    document = '{ talk(id: "1") { events { agent { id: databaseId } } } }'
    assert measured(document, default_list_size=3).cost == 1 + 1 + 3


def test_first_may_come_from_a_variable() -> None:
    document = "query ($n: Int!) { talks(first: $n) { edges { node { id: databaseId } } } }"
    assert measured(document, {"n": 7}).cost == 1 + 7 * 2


def test_a_missing_variable_for_first_counts_as_the_argument_default() -> None:
    document = "query ($n: Int) { talks(first: $n) { edges { node { id: databaseId } } } }"
    assert measured(document).cost == 1 + 20 * 2


def test_last_multiplies_the_cost_of_its_subtree_as_first_does() -> None:
    assert measured("{ talks(last: 5) { edges { node { id } } } }").cost == 11
    document = "query ($n: Int) { talks(last: $n) { edges { node { id } } } }"
    assert measured(document, {"n": 7}).cost == 1 + 7 * 2


@pytest.mark.parametrize("given", ["null", "$none"])
def test_a_page_size_given_null_counts_as_the_default_page(given: str) -> None:
    # The resolvers read null as "not given": 20 items, not none.
    for size in ("first", "last"):
        selection = f"talks({size}: {given}) {{ edges {{ node {{ id }} }} }}"
        document = f"query ($none: Int) {{ {selection} }}"
        assert measured(document, {"none": None}).cost == 1 + DEFAULT_FIRST * 2


def test_the_backward_cost_bomb_costs_what_the_forward_one_does() -> None:
    backward = COST_BOMB.replace("first:", "last:")
    assert backward != COST_BOMB
    assert measured(backward).cost == COST_BOMB_VALUE


def test_the_cost_bomb_costs_over_two_million() -> None:
    assert measured(COST_BOMB).cost == COST_BOMB_VALUE


def test_the_cost_bomb_costs_the_same_with_first_from_variables() -> None:
    document = """
    query Bomb($a: Int!, $b: Int!, $c: Int!) {
      talks(first: $a) { edges { node {
        customer { talks(first: $b) { edges { node {
          histories(first: $c) { edges { node { id: databaseId } } }
        } } } }
      } } }
    }"""
    assert measured(document, {"a": 100, "b": 100, "c": 100}).cost == COST_BOMB_VALUE


def test_a_fragment_costs_wherever_it_is_spread() -> None:
    document = """
    { a: talk(id: "1") { ...Who } b: talk(id: "2") { ...Who } }
    fragment Who on Talk { customer { id: databaseId } agent { id: databaseId } }
    """
    assert measured(document).cost == 2 * (1 + 2)


def test_an_inline_fragment_costs_like_its_fields() -> None:
    assert measured('{ talk(id: "1") { ... on Talk { customer { id: databaseId } } } }').cost == 2


def test_introspection_fields_cost_nothing() -> None:
    document = "{ __typename __schema { types { fields { type { ofType { name } } } } } }"
    assert measured(document) == Measures(depth=0, aliases=0, cost=0)


def test_a_mutation_is_measured_from_the_mutation_root() -> None:
    document = 'mutation { pauseAgent(input: {session: "s"}) { login status } }'
    assert measured(document) == Measures(depth=2, aliases=0, cost=1)


def test_only_the_chosen_operation_is_measured() -> None:
    document = """
    query Small { talks(first: 1) { totalCount } }
    query Big { talks(first: 100) { edges { node { customer { id: databaseId } } } } }
    """
    assert measured(document, operation="Small").cost == 1
    assert measured(document, operation="Big").cost == 1 + 100 * 3


# -- depth ----------------------------------------------------------------------------------


def test_a_field_selecting_leaves_is_depth_two() -> None:
    assert measured("{ talks { totalCount } }").depth == 2


def test_introspection_fields_add_no_depth() -> None:
    assert measured("{ __typename talks { __typename totalCount } }").depth == 2


LEAF_OF = {"talks": "totalCount", "edges": "cursor", "node": "id", "customer": "id"}


def nested(levels: int) -> str:
    """A document `levels` deep: talks { edges { node { customer { talks ... } } } } and a leaf."""
    chain = ["talks", "edges", "node", "customer"]
    names = [chain[i % len(chain)] for i in range(levels - 1)]
    return "{ " + " { ".join(names) + " { " + LEAF_OF[names[-1]] + " }" * len(names) + " }"


@pytest.mark.parametrize("levels", [2, 5, 12, 13])
def test_depth_counts_nested_selection_sets(levels: int) -> None:
    assert measured(nested(levels)).depth == levels


def test_depth_follows_fragments_and_inline_fragments() -> None:
    document = """
    { talks { ...Edges } }
    fragment Edges on TalkConnection { edges { ... on TalkEdge { node { customer { id:
    databaseId } } } } }
    """
    assert measured(document).depth == 5


def test_depth_is_that_of_the_deepest_branch() -> None:
    assert (
        measured('{ talks { totalCount } talk(id: "1") { customer { id: databaseId } } }').depth
        == 3
    )


# -- aliases --------------------------------------------------------------------------------


def test_every_alias_counts_once() -> None:
    assert measured('{ a: talks { totalCount } b: talk(id: "1") { c: databaseId } }').aliases == 3


def test_aliases_in_a_fragment_count_for_every_spread() -> None:
    document = """
    { ...Four ...Four talks { totalCount } }
    fragment Four on Query {
      a: talks { totalCount } b: talks { totalCount } c: talks { totalCount }
      d: customers { n: totalCount }
    }
    """
    assert measured(document).aliases == 2 * 5


def test_aliases_in_nested_fragments_multiply_with_their_spreads() -> None:
    document = """
    { ...Outer ...Outer ...Outer }
    fragment Outer on Query { ...Inner ...Inner }
    fragment Inner on Query { x: talks { totalCount } y: agents { totalCount } }
    """
    assert measured(document).aliases == 3 * 2 * 2


def test_a_fragment_cycle_is_measured_without_looping() -> None:
    document = """
    { ...A }
    fragment A on Query { a: talks { totalCount } ...B }
    fragment B on Query { b: agents { totalCount } ...A }
    """
    assert measured(document).aliases == 2


def test_an_unknown_fragment_is_left_to_validation() -> None:
    assert measured("{ talks { totalCount } ...Missing }") == Measures(depth=2, aliases=0, cost=1)


def test_every_alias_counts_typename_and_introspection_included() -> None:
    document = "{ a: __typename b: __typename __schema { t: types { n: name } } }"
    assert measured(document) == Measures(depth=0, aliases=4, cost=0)


# -- linear measuring -----------------------------------------------------------------------


def fan_out(levels: int, spreads: int = 5, leaf: str = "talks(first: 0) { totalCount }") -> str:
    """Fragments each spreading the one before `spreads` times, `levels` deep."""
    definitions = [f"fragment F0 on Query {{ {leaf} }}"]
    for level in range(1, levels + 1):
        body = " ".join([f"...F{level - 1}"] * spreads)
        definitions.append(f"fragment F{level} on Query {{ {body} }}")
    return f"{{ ...F{levels} }} " + " ".join(definitions)


def test_fragments_fanning_out_are_measured_once_each() -> None:
    # 5**9 spreads of F0 took 6.8 s to walk one by one; measured once each, microseconds.
    started = time.perf_counter()
    found = measured(fan_out(9))
    assert time.perf_counter() - started < 0.5
    assert found == Measures(depth=2, aliases=0, cost=5**9)


def test_costs_multiplying_past_the_cap_stop_at_the_cap() -> None:
    found = measured(fan_out(40, leaf="a: talks(first: 0) { totalCount }"))
    assert found.cost == MEASURE_CAP
    assert found.aliases == MEASURE_CAP


def test_a_chain_of_fragments_longer_than_the_stack_is_measured() -> None:
    count = 3000
    definitions = [f"fragment F{i} on Query {{ ...F{i + 1} }}" for i in range(count)]
    definitions.append(f"fragment F{count} on Query {{ a: talks {{ totalCount }} }}")
    assert measured("{ ...F0 } " + " ".join(definitions)).aliases == 1


def test_a_fragment_named_like_anything_is_measured() -> None:
    document = "{ ...field ...None } fragment field on Query { a: talks { totalCount } }"
    document += " fragment None on Query { b: talks { totalCount } }"
    assert measured(document).aliases == 2


# The naive walk the memoised one must agree with: every fragment walked again at every
# spread, the measures of the module's docstring.
def naive(document: str, default_list_size: int = 10) -> Measures:
    parsed = parse(document)
    fragments = {
        d.name.value: d for d in parsed.definitions if isinstance(d, FragmentDefinitionNode)
    }
    [operation] = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
    aliases = 0

    def walk(node: SelectionSetNode, parent: Any, paged: bool, exempt: bool) -> tuple[int, int]:
        nonlocal aliases
        depth = cost = 0
        for selection in node.selections:
            if isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = SCHEMA.get_type(condition.name.value) if condition else parent
                d, c = walk(selection.selection_set, target, paged, exempt)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = fragments[selection.name.value]
                target = SCHEMA.get_type(fragment.type_condition.name.value)
                d, c = walk(fragment.selection_set, target, paged, exempt)
            else:
                assert isinstance(selection, FieldNode)
                aliases += selection.alias is not None
                name = selection.name.value
                if exempt or name.startswith("__"):
                    if selection.selection_set is not None:
                        walk(selection.selection_set, None, False, True)
                    continue
                definition = parent.fields.get(name) if parent is not None else None
                named: Any = definition.type if definition else None
                is_list = False
                while isinstance(named, GraphQLNonNull | GraphQLList):
                    is_list = is_list or isinstance(named, GraphQLList)
                    named = named.of_type
                multiplier = 1
                has_first = definition is not None and "first" in definition.args
                if has_first:
                    assert definition is not None
                    sizes = [
                        int(a.value.value)
                        for a in selection.arguments or ()
                        if a.name.value in ("first", "last") and isinstance(a.value, IntValueNode)
                    ]
                    multiplier = max(sizes) if sizes else DEFAULT_FIRST
                elif is_list and not paged:
                    multiplier = default_list_size
                if selection.selection_set is None:
                    d, c = 1, 0
                else:
                    sub_depth, sub_cost = walk(selection.selection_set, named, has_first, False)
                    d, c = sub_depth + 1, 1 + multiplier * sub_cost
            depth = max(depth, d)
            cost += c
        return depth, cost

    depth, cost = walk(operation.selection_set, SCHEMA.query_type, False, False)
    return Measures(depth=depth, aliases=aliases, cost=cost)


def _selection(draw: st.DrawFn, parent: GraphQLObjectType, level: int, fragments: int) -> str:
    """One random selection under `parent`: a field (maybe aliased, maybe with `first` or
    `last`, both even: the measure counts the larger, before the resolver refuses it), an
    inline fragment, or a spread of one of the `fragments` defined before."""
    kinds = ["field", "field", "inline", "typename"] + (["spread"] if fragments else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "typename":
        return draw(st.sampled_from(["__typename", "t: __typename"]))
    if kind == "spread" and parent is SCHEMA.query_type:
        return f"...G{draw(st.integers(0, fragments - 1))}"
    if kind in ("inline", "spread"):
        return f"... on {parent.name} {{ {_selections(draw, parent, level, fragments)} }}"
    name = draw(st.sampled_from(sorted(parent.fields)))
    definition = parent.fields[name]
    text: str = name
    if draw(st.booleans()):
        text = f"x{draw(st.integers(0, 3))}: {name}"
    arguments = []
    for size in ("first", "last"):
        if size in definition.args and draw(st.booleans()):
            arguments.append(f"{size}: {draw(st.integers(0, 7))}")
    required = [a for a, arg in definition.args.items() if isinstance(arg.type, GraphQLNonNull)]
    arguments += [f'{a}: "1"' for a in required if a != "first"]
    if arguments:
        text += "(" + ", ".join(arguments) + ")"
    named: Any = definition.type
    while isinstance(named, GraphQLNonNull | GraphQLList):
        named = named.of_type
    if isinstance(named, GraphQLObjectType):
        if level >= 4:
            return "__typename"
        text += " { " + _selections(draw, named, level + 1, fragments) + " }"
    return text


def _selections(draw: st.DrawFn, parent: GraphQLObjectType, level: int, fragments: int) -> str:
    count = draw(st.integers(1, 3))
    return " ".join(_selection(draw, parent, level, fragments) for _ in range(count))


@st.composite
def documents(draw: st.DrawFn) -> str:
    """A random query: up to four fragments on Query, each spreading only those before it
    (no cycles), and an operation spreading any of them."""
    query = SCHEMA.query_type
    assert query is not None
    definitions = []
    count = draw(st.integers(0, 4))
    for index in range(count):
        definitions.append(f"fragment G{index} on Query {{ {_selections(draw, query, 1, index)} }}")
    return "{ " + _selections(draw, query, 1, count) + " } " + " ".join(definitions)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(), st.integers(1, 12))
def test_the_memoised_measures_are_the_naive_ones(document: str, list_size: int) -> None:
    assert measured(document, default_list_size=list_size) == naive(document, list_size)


# -- widths ---------------------------------------------------------------------------------


def widest(document: str, limit: int = 100) -> int:
    return widest_selection(parse(document), limit)


WIDTHS = [
    ("{ a b c }", 3),
    ("{ a a a a }", 4),  # duplicates count
    ("{ x: a y: a __typename t: __typename }", 4),
    ("{ ... on Query { a b } ... { c } d }", 4),  # inline fragments are expanded in place
    ("{ ...F ...F ...F } fragment F on Query { a b }", 6),  # every spread counts
    ("{ ...G ...G } fragment G on Query { ...F ...F } fragment F on Query { a b }", 8),
    # fields of one response name merge: their sub-selections are one selection set
    ("{ t { a b } t { c d } t { e } }", 5),
    ("{ t { u { a a } } t { u { a } } s: t { u { a a a a } } }", 4),
    ("{ ...F t { a } } fragment F on Query { t { b c } }", 3),
    ("{ a } fragment Unused on Query { b b b b b }", 5),  # validation checks it too
    ("query A { a } query B { b b }", 2),
]


@pytest.mark.parametrize(("document", "expected"), WIDTHS)
def test_the_widest_selection_set_merges_and_expands_as_execution_does(
    document: str, expected: int
) -> None:
    assert widest(document) == expected


def test_many_small_fragment_spreads_add_up_in_one_selection_set() -> None:
    spreads = " ".join(["...F"] * 60)
    assert widest(f"{{ {spreads} }} fragment F on Query {{ a b }}", 100) > 100


def test_cousins_merged_across_parents_add_up() -> None:
    # 12 copies of `t` with 12 `a` each: no selection set as written has more than 12
    # fields, but merged `t` has 144 and validation compares every pair of them.
    document = "{ " + ("t { " + "a " * 12 + "} ") * 12 + "}"
    assert widest(document, 200) == 144
    assert widest(document, 100) > 100  # counting stops at the first set found too wide


def test_a_fragment_fan_out_is_widened_arithmetically_and_stops_at_the_first_too_wide() -> None:
    started = time.perf_counter()
    assert widest(fan_out(40), 100) > 100
    assert time.perf_counter() - started < 0.5


def test_fragment_cycles_and_unknown_fragments_are_left_to_validation() -> None:
    document = "{ ...A ...Missing } fragment A on Query { a ...B } fragment B on Query { b ...A }"
    assert widest(document) <= 3
