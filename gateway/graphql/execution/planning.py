"""Plans, made once per request (or shared with requests of the same text): how to
complete each field of a selection, the subfields of an object type, the generated
completion of a list's items, and the located refusals and arguments of field groups."""

from __future__ import annotations

from typing import Any, cast

from graphql import GraphQLError, GraphQLObjectType
from graphql.error import located_error
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from gateway.graphql.execution.codegen import _completer, _Leaves
from gateway.graphql.execution.plans import _entry, _grouped_leaves
from gateway.graphql.execution.records import (
    _COMPLETER_DEPTH,
    _LEAF,
    _LEAVES,
    _LOAD,
    _OBJECT,
    _TYPENAME,
    _Completion,
    _EachLoad,
    _Entry,
    _LoadedKey,
    _LoadSlot,
    _Shape,
    _ShapeField,
)
from gateway.graphql.execution.sharing import _PLAN_CACHE_SIZE, _SHARED_PLANS, _SHARED_TEXT
from schema.loaded import LoadedBy
from schema.permissions import HasScope


def _node_ids(field_group: FieldDetailsList) -> tuple[int, ...]:
    return tuple(id(details.node) for details in field_group)


class PlanningContext(StrawberryGraphQLCoreExecutionContext):
    """strawberry's execution context with the fast path's per-request memos: each is keyed
    by the identity of what graphql-core hands out once per request (a grouped field set, a
    field group, a plan), and keeps that object referenced so that its id is not reused."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Values completed by the fast path (tests check that it keeps being used).
        self.fast_values = 0
        self._plans: dict[tuple[GraphQLObjectType, int], tuple[GroupedFieldSet, list[_Entry]]]
        self._plans = {}
        # The plan of an object type's subfields for a field group; None with @defer.
        self._subplans: dict[
            tuple[GraphQLObjectType, int], tuple[FieldDetailsList, list[_Entry] | None]
        ] = {}
        # The generated completion of a list item's plan (by the plan's id), or None.
        self._completers: dict[int, tuple[list[_Entry], _Completion | None]] = {}
        # The located error of each refused field group (`_refusal`), by the group's id.
        self._refusals: dict[int, tuple[FieldDetailsList, GraphQLError]] = {}
        # The arguments of each _LOAD_EACH field group with arguments, by the group's id.
        self._arguments: dict[int, tuple[FieldDetailsList, dict[str, Any]]] = {}
        # What the keys of plans shared with other requests start with (`_SharedPlans`);
        # None when this operation's plans are its own.
        self._shared: tuple[Any, ...] | None = None

    def _share_plans(self, granted: frozenset[str] | None) -> None:
        """Share this operation's plans with other requests of the same short, static text
        (made by the same schema, for the same scopes and loaders)."""
        source = self.operation.loc.source if self.operation.loc is not None else None
        short = source is not None and len(source.body) <= _SHARED_TEXT
        if short and _SHARED_PLANS.static(self.operation, self.fragments):
            loaders = getattr(self.context_value, "loaders", None)
            self._shared = (id(self.schema), granted, type(loaders), self.is_awaitable)

    def _forget_plans(self) -> None:
        """Start the memos afresh (an executor per subscription event): they are keyed by
        the identity of each event's own field lists, so every event would add entries
        never read again."""
        self._plans = {}
        self._subplans = {}
        self._completers = {}
        self._refusals = {}
        self._arguments = {}
        self._shared = None

    def granted(self) -> frozenset[str] | None:
        """The caller's scopes, when the context says (else scope checks run as usual)."""
        caller = getattr(self.context_value, "caller", None)
        scopes = getattr(caller, "scopes", None)
        return scopes if isinstance(scopes, frozenset) else None

    def _plan(self, parent_type: GraphQLObjectType, fields: GroupedFieldSet) -> list[_Entry]:
        """How to complete each field of `fields` on `parent_type`, made once per request for
        each selection (collect_subfields hands out the same grouped field set each time)."""
        key = (parent_type, id(fields))
        cached = self._plans.get(key)
        if cached is not None:
            return cached[1]
        shared_key = None
        if self._shared is not None:
            selection = tuple((name, _node_ids(group)) for name, group in fields.items())
            shared_key = (*self._shared, "plan", parent_type, selection)
            shared = _SHARED_PLANS.get(_SHARED_PLANS.plans, shared_key)
            if shared is not None:
                self._plans[key] = (fields, shared[1])
                return cast("list[_Entry]", shared[1])
        plan = _grouped_leaves(
            [
                _entry(self, parent_type, response_name, field_group)
                for response_name, field_group in fields.items()
            ]
        )
        if len(self._plans) >= _PLAN_CACHE_SIZE:
            self._plans.clear()
        # The grouped field set stays referenced, so its id is not reused meanwhile.
        self._plans[key] = (fields, plan)
        if shared_key is not None:
            _SHARED_PLANS.put(_SHARED_PLANS.plans, shared_key, (fields, plan))
        return plan

    def _subplan(
        self, object_type: GraphQLObjectType, field_group: FieldDetailsList
    ) -> list[_Entry] | None:
        """The plan of the subfields `field_group` selects on `object_type`, looked up once
        per object instead of collect_subfields and _plan both; None when @defer takes part
        (graphql-core's incremental delivery then executes them)."""
        key = (object_type, id(field_group))
        cached = self._subplans.get(key)
        if cached is not None:
            return cached[1]
        shared_key = None
        if self._shared is not None:
            shared_key = (*self._shared, "subplan", object_type, _node_ids(field_group))
            shared = _SHARED_PLANS.get(_SHARED_PLANS.plans, shared_key)
            if shared is not None:
                self._subplans[key] = (field_group, shared[1])
                return cast("list[_Entry] | None", shared[1])
        fields, defer_usages, _ = self.collect_subfields(object_type, field_group)
        plan = None if defer_usages else self._plan(object_type, fields)
        if len(self._subplans) >= _PLAN_CACHE_SIZE:
            self._subplans.clear()
        # The field group stays referenced, so its id is not reused meanwhile.
        self._subplans[key] = (field_group, plan)
        if shared_key is not None:
            _SHARED_PLANS.put(_SHARED_PLANS.plans, shared_key, (field_group, plan))
        return plan

    def _completer_of(
        self, object_type: GraphQLObjectType, plan: list[_Entry]
    ) -> _Completion | None:
        """The generated completion (`_completer`) of objects of `object_type` by `plan` and
        its loaded fields' slots, looked up once per plan; None when the plan holds a field
        it does not write."""
        cached = self._completers.get(id(plan))
        if cached is not None:
            return cached[1]
        shared_key = None
        if self._shared is not None:
            shared_key = (*self._shared, object_type, id(plan))
            shared = _SHARED_PLANS.get(_SHARED_PLANS.completers, shared_key)
            if shared is not None and shared[0] is plan:
                self._completers[id(plan)] = shared
                return cast("_Completion | None", shared[1])
        slots: list[_LoadSlot] = []
        shape = self._shape(object_type, plan, 0, (), slots)
        completion = (
            None
            if shape is None
            else _Completion(_completer(shape, self.is_awaitable), tuple(slots))
        )
        if len(self._completers) >= _PLAN_CACHE_SIZE:
            self._completers.clear()
        # The plan stays referenced, so its id is not reused meanwhile.
        self._completers[id(plan)] = (plan, completion)
        if shared_key is not None:
            _SHARED_PLANS.put(_SHARED_PLANS.completers, shared_key, (plan, completion))
        return completion

    def _shape(
        self,
        object_type: GraphQLObjectType,
        plan: list[_Entry],
        depth: int,
        within: tuple[tuple[str, str], ...],
        slots: list[_LoadSlot],
    ) -> _Shape | None:
        """What `_completer` generates its function from, each loaded field numbered by its
        place in `slots`, where it is put; None when `plan` (or a plan below it) holds a field
        that graphql-core completes, a list of objects, or a loaded field whose loader
        cannot `peek`. `within` is the way from the list's item to `object_type`."""
        fields: list[_ShapeField] = []
        for response_name, kind, attr, field_type, coerce, held, field_group, spec in plan:
            if kind == _LEAVES:
                leaves: _Leaves = spec  # type: ignore[assignment]
                fields += [
                    _ShapeField(_LEAF, e.response_name, e.attr, e.field_type, e.coerce, None)
                    for e in leaves.entries
                ]
            elif kind == _LEAF:
                fields.append(_ShapeField(_LEAF, response_name, attr, field_type, coerce, None))
            elif kind == _TYPENAME:
                fields.append(_ShapeField(_TYPENAME, response_name, "", None, None, None))
            elif kind in (_OBJECT, _LOAD) and held is not None and depth < _COMPLETER_DEPTH:
                subplan = self._subplan(held, field_group)
                if subplan is None:
                    return None
                if kind == _LOAD:
                    declared: LoadedBy = spec  # type: ignore[assignment]
                    loader = getattr(
                        getattr(self.context_value, "loaders", None), declared.loader, None
                    )
                    if not callable(getattr(loader, "peek", None)):
                        return None
                    number = len(slots)
                    slots.append(
                        _LoadSlot(
                            within, response_name, object_type.name, field_type, held, field_group
                        )
                    )
                below = (*within, (response_name, object_type.name))
                nested = self._shape(held, subplan, depth + 1, below, slots)
                if nested is None:
                    return None
                if kind == _LOAD:
                    nested = nested._replace(
                        loaded=_LoadedKey(declared.loader, declared.key, number)
                    )
                fields.append(_ShapeField(kind, response_name, attr, field_type, None, nested))
            else:
                return None
        return _Shape(object_type.name, tuple(fields), None)

    def _refusal(self, check: HasScope, field_group: FieldDetailsList, path: Path) -> GraphQLError:
        """The error graphql-core would locate at `path` for the refused `check`; its
        locations are worked out once per field group (a page may refuse thousands)."""
        template = self._refusals.get(id(field_group))
        if template is None or template[0] is not field_group:
            nodes = [details.node for details in field_group]
            template = (field_group, located_error(check.error(), nodes))
            self._refusals[id(field_group)] = template
        located = template[1]
        error = GraphQLError(
            located.message, path=path.as_list(), original_error=located.original_error
        )
        error.nodes, error.source = located.nodes, located.source
        error.positions, error.locations = located.positions, located.locations
        return error

    def _arguments_of(self, each: _EachLoad, field_group: FieldDetailsList) -> dict[str, Any]:
        """The field's arguments as graphql-core coerces them (by their Python names, which
        `_loaded` checked are the same), worked out once per request for each field group."""
        known = self._arguments.get(id(field_group))
        if known is not None and known[0] is field_group:
            return known[1]
        details = field_group[0]
        arguments = get_argument_values(
            each.field_def,
            details.node,
            self.variable_values,
            details.fragment_variable_values,
            self.hide_suggestions,
        )
        self._arguments[id(field_group)] = (field_group, arguments)
        return arguments
