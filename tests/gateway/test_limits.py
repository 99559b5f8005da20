"""The measures of a GraphQL document: depth, aliases and cost, as `gateway.limits` computes them.

Cost: every field returning objects costs 1, scalar leaves are free, a field with `first`
multiplies its subtree by `first` (given, from a variable, or its default), a list right under
such a paged field (a connection's `edges`) does not multiply again, and any other list
multiplies by `default_list_size`. Introspection fields are exempt.
"""

from __future__ import annotations

from typing import Any

import pytest
from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLSchema,
    OperationDefinitionNode,
    parse,
)

from gateway.graphql_app import build_schema
from gateway.limits import Measures, measure

SCHEMA: GraphQLSchema = build_schema()._schema

COST_BOMB = """
{
  talks(first: 100) { edges { node {
    customer { talks(first: 100) { edges { node {
      histories(first: 100) { edges { node { id } } }
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
    assert measured('{ talk(id: "1") { id trackingNumber createdAt } }').cost == 1


def test_every_field_returning_an_object_costs_one() -> None:
    document = '{ talk(id: "1") { customer { name } agent { name } channel { id } bot { id } } }'
    assert measured(document).cost == 5


def test_first_multiplies_the_cost_of_its_subtree() -> None:
    # talks 1 + 5 * (edges 1 + node 1)
    assert measured("{ talks(first: 5) { edges { node { id } } } }").cost == 11


def test_edges_under_a_paged_field_are_not_multiplied_again() -> None:
    # Were `edges` a list of ten more, the cost would be 1 + 5 * (1 + 10 * 1) = 56.
    assert measured("{ talks(first: 5) { edges { node { customer { id } } } } }").cost == 16


def test_a_paged_field_without_first_is_multiplied_by_its_default_first() -> None:
    # talks' `first` defaults to 20: 1 + 20 * 2
    assert measured("{ talks { edges { node { id } } } }").cost == 41


def test_first_zero_leaves_only_the_cost_of_the_paged_field() -> None:
    assert measured("{ talks(first: 0) { edges { node { customer { id } } } } }").cost == 1


def test_a_list_without_first_is_multiplied_by_the_default_list_size() -> None:
    # talk 1 + events (1 + 10 * agent 1)
    assert measured('{ talk(id: "1") { events { agent { id } } } }').cost == 12


def test_the_default_list_size_is_a_parameter() -> None:
    document = '{ talk(id: "1") { events { agent { id } } } }'
    assert measured(document, default_list_size=3).cost == 1 + 1 + 3


def test_first_may_come_from_a_variable() -> None:
    document = "query ($n: Int!) { talks(first: $n) { edges { node { id } } } }"
    assert measured(document, {"n": 7}).cost == 1 + 7 * 2


def test_a_missing_variable_for_first_counts_as_the_argument_default() -> None:
    document = "query ($n: Int) { talks(first: $n) { edges { node { id } } } }"
    assert measured(document).cost == 1 + 20 * 2


def test_the_cost_bomb_costs_over_two_million() -> None:
    assert measured(COST_BOMB).cost == COST_BOMB_VALUE


def test_the_cost_bomb_costs_the_same_with_first_from_variables() -> None:
    document = """
    query Bomb($a: Int!, $b: Int!, $c: Int!) {
      talks(first: $a) { edges { node {
        customer { talks(first: $b) { edges { node {
          histories(first: $c) { edges { node { id } } }
        } } } }
      } } }
    }"""
    assert measured(document, {"a": 100, "b": 100, "c": 100}).cost == COST_BOMB_VALUE


def test_a_fragment_costs_wherever_it_is_spread() -> None:
    document = """
    { a: talk(id: "1") { ...Who } b: talk(id: "2") { ...Who } }
    fragment Who on Talk { customer { id } agent { id } }
    """
    assert measured(document).cost == 2 * (1 + 2)


def test_an_inline_fragment_costs_like_its_fields() -> None:
    assert measured('{ talk(id: "1") { ... on Talk { customer { id } } } }').cost == 2


def test_introspection_fields_cost_nothing() -> None:
    document = "{ __typename __schema { types { fields { type { ofType { name } } } } } }"
    assert measured(document) == Measures(depth=0, aliases=0, cost=0)


def test_a_mutation_is_measured_from_the_mutation_root() -> None:
    document = 'mutation { pauseAgent(input: {session: "s"}) { login status } }'
    assert measured(document) == Measures(depth=2, aliases=0, cost=1)


def test_only_the_chosen_operation_is_measured() -> None:
    document = """
    query Small { talks(first: 1) { totalCount } }
    query Big { talks(first: 100) { edges { node { customer { id } } } } }
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
    fragment Edges on TalkConnection { edges { ... on TalkEdge { node { customer { id } } } } }
    """
    assert measured(document).depth == 5


def test_depth_is_that_of_the_deepest_branch() -> None:
    assert measured('{ talks { totalCount } talk(id: "1") { customer { id } } }').depth == 3


# -- aliases --------------------------------------------------------------------------------


def test_every_alias_counts_once() -> None:
    assert measured('{ a: talks { totalCount } b: talk(id: "1") { c: id } }').aliases == 3


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
