"""Direct calls of strawberry resolvers the caller's scopes grant, through graphql-core's hook
for wrapping resolvers."""

from __future__ import annotations

from collections.abc import Callable
from inspect import iscoroutinefunction
from typing import Any, Final, NamedTuple, cast

from graphql import (
    GraphQLField,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    MiddlewareManager,
)
from strawberry.extensions.field_extension import FieldExtension
from strawberry.permission import PermissionExtension
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.arguments import InputContext, convert_argument
from strawberry.types.field import StrawberryField
from strawberry.types.fields.resolver import StrawberryResolver
from strawberry.types.unset import UNSET

from schema.conversion import built_by_hook, unchanged
from schema.permissions import scope_checks


class _Direct(NamedTuple):
    """The direct call of a strawberry resolver (`_direct_call`)."""

    # The scopes its checks require.
    scopes: frozenset[str]
    # The call itself, taking graphql-core's (source, info, **arguments).
    call: Callable[..., Any]


# The direct calls of each schema's resolvers, by the resolve function graphql-core is given
# (strawberry's wrapper of each); made once per schema.
_DIRECT_CALLS: dict[int, tuple[GraphQLSchema, dict[Callable[..., Any], _Direct]]] = {}
_DIRECT_SCHEMAS_KEPT: Final = 16


# How a direct call converts an argument: not at all (scalars, enum members), through its
# input class's `from_input` hook as convert_argument would, or by convert_argument.
_GIVEN: Final = 0
_HOOKED: Final = 1
_CONVERTED: Final = 2


def _direct_calls(schema: GraphQLSchema) -> dict[Callable[..., Any], _Direct]:
    """The direct calls of `schema`'s resolvers (none when its strawberry schema has
    exception handlers, which strawberry's wrapper would run)."""
    found = _DIRECT_CALLS.get(id(schema))
    if found is not None and found[0] is schema:
        return found[1]
    calls: dict[Callable[..., Any], _Direct] = {}
    strawberry_schema = getattr(schema, "_strawberry_schema", None)
    if strawberry_schema is not None and not getattr(strawberry_schema, "exception_handlers", ()):
        for named in schema.type_map.values():
            if not isinstance(named, GraphQLObjectType) or named.name.startswith("__"):
                continue
            for field_def in named.fields.values():
                direct = _direct_call(strawberry_schema, field_def)
                if direct is not None and field_def.resolve is not None:
                    calls[field_def.resolve] = direct
    if len(_DIRECT_CALLS) >= _DIRECT_SCHEMAS_KEPT:
        _DIRECT_CALLS.clear()
    _DIRECT_CALLS[id(schema)] = (schema, calls)
    return calls


def _direct_call(strawberry_schema: Any, field_def: GraphQLField) -> _Direct | None:
    """What strawberry's wrapper of an async resolver does for a caller its scope checks let
    through, without the wrapper: the resolver's Info, its arguments converted (scalars and
    enum members handed over as they are, an input with its own `from_input` hook built by
    it, anything else by strawberry's convert_argument: what strawberry's conversion does),
    and the resolver's coroutine, which graphql-core awaits.

    Only for a field whose wrapper would do no more: an async resolver (not a subscription's)
    of a plain StrawberryField, with no extension but a `schema.permissions.needs` check
    (whose `map_arguments` changes nothing); None for any other."""
    field = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if (
        not isinstance(field, StrawberryField)
        or type(field).get_result is not StrawberryField.get_result
        or field.is_subscription
        or field_def.subscribe is not None
        or not field.is_async
    ):
        return None
    resolver = field.base_resolver
    if (
        resolver is None
        or type(resolver).__call__ is not StrawberryResolver.__call__
        or not iscoroutinefunction(resolver.wrapped_func)
    ):
        return None
    checks = scope_checks(field) if field.extensions else ()
    if checks is None or PermissionExtension.map_arguments is not FieldExtension.map_arguments:
        return None
    call = _calling(strawberry_schema, field, resolver)
    return _Direct(frozenset(check.scope for check in checks), call)


def _calling(
    strawberry_schema: Any, field: StrawberryField, resolver: StrawberryResolver[Any]
) -> Callable[..., Any]:
    """The direct call of `resolver`: its Info made, its arguments converted as `_direct_call`
    says, and the resolver called."""
    config = strawberry_schema.config
    registry = strawberry_schema.schema_converter.scalar_registry
    info_class = config.info_class
    # graphql-core's name, the resolver's, how the value is converted, and its type.
    plan: list[tuple[str, str, int, Any]] = []
    for argument in field.arguments:
        hooked = built_by_hook(argument.type, registry)
        how = _GIVEN if unchanged(argument.type, registry) else _CONVERTED
        plan.append(
            (
                config.name_converter.from_argument(argument),
                argument.python_name,
                how if hooked is None else _HOOKED,
                argument.type if hooked is None else hooked,
            )
        )
    func = cast("Callable[..., Any]", resolver.wrapped_func)
    takes_self = resolver.self_parameter is not None
    sources = tuple(
        parameter.name
        for parameter in (resolver.parent_parameter, resolver.root_parameter)
        if parameter is not None
    )
    info_name = None if resolver.info_parameter is None else resolver.info_parameter.name

    def call(source: Any, info: GraphQLResolveInfo[Any], **given: Any) -> Any:
        strawberry_info = info_class(_raw_info=info, _field=field)
        arguments: dict[str, Any] = {}
        for graphql_name, python_name, how, argument_type in plan:
            if graphql_name not in given:
                continue
            value = given[graphql_name]
            if how == _GIVEN or (how == _HOOKED and (value is None or value is UNSET)):
                arguments[python_name] = value
            elif how == _HOOKED:
                definition = argument_type.__strawberry_definition__
                arguments[python_name] = definition.from_input(
                    argument_type,
                    value,
                    InputContext(
                        info=strawberry_info,
                        config=config,
                        scalar_registry=registry,
                        path=(graphql_name,),
                    ),
                )
            else:
                arguments[python_name] = convert_argument(
                    value, argument_type, registry, config, strawberry_info, path=(graphql_name,)
                )
        for name in sources:
            arguments[name] = source
        if info_name is not None:
            arguments[info_name] = strawberry_info
        return func(source, **arguments) if takes_self else func(**arguments)

    return call


class _DirectCalls(MiddlewareManager):
    """graphql-core's hook for wrapping resolvers (`get_field_resolver`), holding no
    middleware: it hands graphql-core the direct call of each strawberry resolver whose
    scope checks this request's caller passes (`_direct_call`), and any other resolver as
    it is. The checks are so decided once per request, as for the fields of a plan."""

    __slots__ = ("_calls", "_granted")

    def __init__(self, calls: dict[Callable[..., Any], _Direct], granted: frozenset[str]) -> None:
        super().__init__()
        self._calls = calls
        self._granted = granted

    def get_field_resolver(self, field_resolver: Callable[..., Any]) -> Callable[..., Any]:
        direct = self._calls.get(field_resolver)
        if direct is None or not direct.scopes <= self._granted:
            return field_resolver
        return direct.call
