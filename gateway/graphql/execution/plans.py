"""A plan's entries: what each field of a selection is, worked out once per selection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphql import (
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLString,
)
from graphql.execution.collect_fields import FieldDetailsList
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

from gateway.graphql.execution.codegen import _Leaves
from gateway.graphql.execution.coercion import _cached_coercion
from gateway.graphql.execution.records import (
    _LEAF,
    _LEAVES,
    _LIST,
    _LOAD,
    _LOAD_EACH,
    _MASKED,
    _OBJECT,
    _SLOW,
    _TYPENAME,
    _EachLoad,
    _Entry,
)

if TYPE_CHECKING:
    from gateway.graphql.execution.planning import PlanningContext
from schema.loaded import LoadedBy, loaded_by_of
from schema.permissions import scope_checks


def _entry(
    context: PlanningContext,
    parent_type: GraphQLObjectType,
    response_name: str,
    field_group: FieldDetailsList,
) -> _Entry:
    node = field_group[0].node
    name = node.name.value
    field_def = context.schema.get_field(parent_type, name)
    if field_def is None:
        return _Entry(response_name, _SLOW, name, GraphQLString, None, None, field_group, None)
    field_type = field_def.type
    slow = _Entry(response_name, _SLOW, name, field_type, None, None, field_group, None)
    if name == "__typename":
        return _Entry(response_name, _TYPENAME, name, field_type, None, None, field_group, None)
    spec = _loaded(field_def)
    if node.arguments and (spec is None or spec.keyed is None):
        return slow
    strawberry_definition = (field_def.extensions or {}).get(
        GraphQLCoreConverter.DEFINITION_BACKREF
    )
    checks = scope_checks(strawberry_definition)
    if checks is not None:
        scopes = context.granted()
        if scopes is None or field_def.args:
            return slow
        refused = [check for check in checks if check.scope not in scopes]
        if refused:
            if isinstance(field_type, GraphQLNonNull):
                return slow  # graphql-core nulls the parent
            # The first check that fails is the one graphql-core's run would report.
            return _Entry(
                response_name, _MASKED, name, field_type, None, None, field_group, refused[0]
            )
        # Granted: the field is what it would be without the check.
        if not _is_plain(field_def, checked=True):
            return slow
    if spec is not None:
        # Only nullable: a deferred load's error must stop at its own field.
        if (
            spec.keyed is None
            and isinstance(field_type, GraphQLObjectType)
            and field_type.is_type_of is None
        ):
            return _Entry(
                response_name, _LOAD, name, field_type, None, field_type, field_group, spec
            )
        held = _each_type(field_type, field_group)
        if held is None:
            return slow
        each = _EachLoad(spec, field_def, parent_type)
        return _Entry(response_name, _LOAD_EACH, name, field_type, None, held, field_group, each)
    if checks is None and not _is_plain(field_def):
        return slow
    strawberry_field = field_def.extensions[GraphQLCoreConverter.DEFINITION_BACKREF]
    attr = strawberry_field.python_name
    named = field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type
    if isinstance(named, GraphQLObjectType):
        if named.is_type_of is not None:
            return slow
        return _Entry(response_name, _OBJECT, attr, field_type, None, named, field_group, None)
    if isinstance(named, GraphQLList):
        item = named.of_type.of_type if isinstance(named.of_type, GraphQLNonNull) else named.of_type
        if isinstance(item, GraphQLObjectType):
            if item.is_type_of is not None or _streamed(field_group):
                return slow
            return _Entry(response_name, _LIST, attr, field_type, None, item, field_group, None)
    coerce = _cached_coercion(field_type, context.is_awaitable)
    if coerce is None:
        return slow
    return _Entry(response_name, _LEAF, attr, field_type, coerce, None, field_group, None)


def _grouped_leaves(plan: list[_Entry]) -> list[_Entry]:
    """`plan` with each run of two or more _LEAF entries made one _LEAVES entry."""
    grouped: list[_Entry] = []
    run: list[_Entry] = []
    for entry in [*plan, None]:
        if entry is not None and entry.kind == _LEAF:
            run.append(entry)
            continue
        if len(run) > 1:
            first = run[0]
            grouped.append(
                _Entry(
                    first.response_name,
                    _LEAVES,
                    "",
                    first.field_type,
                    None,
                    None,
                    first.field_group,
                    _Leaves(run),
                )
            )
        else:
            grouped.extend(run)
        run = []
        if entry is not None:
            grouped.append(entry)
    return grouped


def _streamed(field_group: FieldDetailsList) -> bool:
    """Whether a list field asks for @stream (graphql-core's incremental delivery)."""
    return any(
        directive.name.value == "stream"
        for details in field_group
        for directive in details.node.directives or ()
    )


def _loaded(field_def: GraphQLField) -> LoadedBy | None:
    """The declaration of a field made with `schema.loaded.loaded_by`, when nothing else runs
    around its resolver (no field extension, so no permission check; no arguments, or for a
    `keyed` one only scalar arguments named in GraphQL as in Python, which strawberry hands
    to the resolver as graphql-core coerced them)."""
    strawberry_field = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if (
        not isinstance(strawberry_field, StrawberryField)
        or type(strawberry_field).get_result is not StrawberryField.get_result
        or strawberry_field.base_resolver is None
        or strawberry_field.extensions
        or strawberry_field.is_subscription
        or field_def.subscribe is not None
    ):
        return None
    spec = loaded_by_of(strawberry_field.base_resolver.wrapped_func)
    if spec is None or not field_def.args:
        return spec
    if spec.keyed is None:
        return None
    python_names = {argument.python_name for argument in strawberry_field.arguments}
    scalars = all(
        isinstance(_named(argument.type), GraphQLScalarType) for argument in field_def.args.values()
    )
    return spec if scalars and python_names == set(field_def.args) else None


def _named(field_type: Any) -> Any:
    return field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type


def _each_type(
    field_type: GraphQLOutputType, field_group: FieldDetailsList
) -> GraphQLObjectType | None:
    """The object type a _LOAD_EACH field of `field_type` completes: the type itself or its
    list's items (possibly non-null, without is_type_of, not streamed); None for others."""
    named = _named(field_type)
    if isinstance(named, GraphQLList):
        if _streamed(field_group):
            return None
        named = _named(named.of_type)
    if isinstance(named, GraphQLObjectType) and named.is_type_of is None:
        return named
    return None


def _is_plain(field_def: GraphQLField, *, checked: bool = False) -> bool:
    """Whether the field only reads an attribute with getattr, as strawberry's basic-field
    resolver does (no resolver, no extension, no arguments). An exception handler would only
    see what getattr raises, and then graphql-core runs the field itself. `checked`: a scope
    check the caller passes (`scope_checks`) is allowed as its one extension."""
    strawberry_field = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    return (
        isinstance(strawberry_field, StrawberryField)
        and type(strawberry_field).get_result is StrawberryField.get_result
        and getattr(field_def.resolve, "_is_default", False) is True
        and strawberry_field.base_resolver is None
        and (checked or not strawberry_field.extensions)
        and not strawberry_field.is_subscription
        and strawberry_field.default_resolver is getattr
        and not field_def.args
        and field_def.subscribe is None
    )
