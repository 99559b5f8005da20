"""The published schema: kept in the repository, and documented everywhere."""

from __future__ import annotations

from pathlib import Path

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLScalarType,
)

from gateway.graphql.schema_assembly import build_schema

ROOT = Path(__file__).resolve().parents[2]
INTERNAL_ONLY = ("isSimulation", "simulationBotId", "lastWebchatRequestAt")


def test_committed_schema_graphql_matches_the_code() -> None:
    committed = (ROOT / "schema.graphql").read_text()
    assert committed == build_schema().as_str() + "\n", (
        "schema.graphql is stale: run `talkgate schema > schema.graphql`"
    )


def test_every_public_type_field_argument_and_enum_value_has_a_description() -> None:
    schema = build_schema()._schema
    missing: list[str] = []
    for name, graphql_type in schema.type_map.items():
        if name.startswith("__") or name in ("String", "Int", "Float", "Boolean", "ID"):
            continue
        if not graphql_type.description:
            missing.append(name)
        if isinstance(graphql_type, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in graphql_type.fields.items():
                if not field.description:
                    missing.append(f"{name}.{field_name}")
                for arg_name, arg in field.args.items():
                    if not arg.description:
                        missing.append(f"{name}.{field_name}({arg_name})")
        elif isinstance(graphql_type, GraphQLInputObjectType):
            missing.extend(
                f"{name}.{f}" for f, field in graphql_type.fields.items() if not field.description
            )
        elif isinstance(graphql_type, GraphQLEnumType):
            missing.extend(
                f"{name}.{v}" for v, value in graphql_type.values.items() if not value.description
            )
        elif isinstance(graphql_type, GraphQLScalarType):
            pass
    assert missing == []


def test_internal_only_payload_fields_are_not_exposed() -> None:
    sdl = build_schema().as_str()
    for name in INTERNAL_ONLY:
        assert name not in sdl


def test_the_types_named_by_the_spec_exist() -> None:
    type_map = build_schema()._schema.type_map
    for name in (
        "Talk",
        "TalkHistory",
        "Customer",
        "Agent",
        "Channel",
        "TalkEvent",
        "BotVariable",
        "Bot",
        "ServiceCatalog",
        "Telephone",
        "Email",
        "CustomField",
        "TalkFilter",
        "TalkOrder",
        "InitiationType",
        "TalkStatus",
        "MessageType",
        "TalkConnection",
        "PageInfo",
    ):
        assert name in type_map, name
