"""The execution context: graphql-core's, with plans run by the fast path."""

from __future__ import annotations

import weakref
from asyncio import Future, shield
from collections.abc import Awaitable, Sequence
from functools import partial
from typing import Any, cast

from graphql import (
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLResolveInfoHelpers,
)
from graphql.error import located_error
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.execution.values import get_argument_values
from graphql.pyutils import AwaitableOrValue, Path, Undefined, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from gateway.graphql.execution.codegen import _completer, _Leaves
from gateway.graphql.execution.direct import _direct_calls, _DirectCalls
from gateway.graphql.execution.plans import _entry, _grouped_leaves, _streamed
from gateway.graphql.execution.records import (
    _COMPLETER_DEPTH,
    _INERT_TYPES,
    _LEAF,
    _LEAVES,
    _LOAD,
    _LOAD_EACH,
    _MASKED,
    _MISS,
    _OBJECT,
    _SLOW,
    _TYPENAME,
    _Completion,
    _Deferred,
    _deferred,
    _EachLoad,
    _Entry,
    _Failed,
    _inert,
    _LoadedKey,
    _LoadSlot,
    _path,
    _Shape,
    _ShapeField,
)
from gateway.graphql.execution.sharing import _PLAN_CACHE_SIZE, _SHARED_PLANS, _SHARED_TEXT
from schema.loaded import LoadedBy
from schema.permissions import HasScope


def _node_ids(field_group: FieldDetailsList) -> tuple[int, ...]:
    return tuple(id(details.node) for details in field_group)


def _apart(loading: Awaitable[Any]) -> Awaitable[Any]:
    """A load to await so that cancelling the task awaiting it leaves the load be: a loader
    hands the same future to every load of a key, and a task awaiting a future cancels it
    when cancelled itself. A non-null field's error nulling its parent cancels the tasks of
    the parent's other fields (gather_with_cancel): without this, a load they shared with
    the rest of the answer would fail there too, with a CancelledError."""
    return shield(loading) if isinstance(loading, Future) and not loading.done() else loading


def _gather_async_work(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
    return gather_with_cancel(*values)


def _track_async_work(context: weakref.ref[FastExecutionContext], values: Sequence[Any]) -> None:
    executing = context()
    if executing is not None:
        executing.track_async_work(values)


class FastExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """strawberry's execution context, completing plain fields without graphql-core's
    per-field machinery; every other field runs exactly as before."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # graphql-core's helpers hold bound methods of the context: a cycle, which keeps the
        # whole request (its loaders, loads and objects) alive until the cyclic collector
        # runs. Holding the context weakly, everything goes as soon as the request is done.
        self.async_helpers = GraphQLResolveInfoHelpers(
            gather=_gather_async_work, track=partial(_track_async_work, weakref.ref(self))
        )
        manager = self.middleware_manager
        # Middleware wraps every resolver, plain ones included: then nothing is plain.
        self.fast = manager is None or not manager.middlewares
        granted = self.granted()
        if self.fast:
            calls = _direct_calls(self.schema)
            if calls:
                self.middleware_manager = _DirectCalls(calls, granted or frozenset())
        # Values completed by the fast path (tests check that it keeps being used).
        self.fast_values = 0
        self._plans: dict[tuple[GraphQLObjectType, int], tuple[GroupedFieldSet, list[_Entry]]]
        self._plans = {}
        # The plan of an object type's subfields for a field group; None with @defer.
        self._subplans: dict[
            tuple[GraphQLObjectType, int], tuple[FieldDetailsList, list[_Entry] | None]
        ] = {}
        # Where loaded fields put their loads while a list is being completed; None outside
        # one. Only ever set during synchronous work, so no await point ever sees it set.
        self._deferred: list[_Deferred] | None = None
        # The generated completion of a list item's plan (by the plan's id), or None.
        self._completers: dict[int, tuple[list[_Entry], _Completion | None]] = {}
        # The located error of each refused field group (`_refusal`), by the group's id.
        self._refusals: dict[int, tuple[FieldDetailsList, GraphQLError]] = {}
        # The arguments of each _LOAD_EACH field group with arguments, by the group's id.
        self._arguments: dict[int, tuple[FieldDetailsList, dict[str, Any]]] = {}
        # What the keys of plans shared with other requests start with (`_SharedPlans`);
        # None when this operation's plans are its own.
        self._shared: tuple[Any, ...] | None = None
        source = self.operation.loc.source if self.operation.loc is not None else None
        short = source is not None and len(source.body) <= _SHARED_TEXT
        if self.fast and short and _SHARED_PLANS.static(self.operation, self.fragments):
            loaders = getattr(self.context_value, "loaders", None)
            self._shared = (id(self.schema), granted, type(loaders), self.is_awaitable)

    def build_per_event_executor(self, payload: Any) -> FastExecutionContext:
        executor = super().build_per_event_executor(payload)
        assert isinstance(executor, FastExecutionContext)
        # graphql-core's copy shares this executor's memos, keyed by the identity of each
        # event's own field lists: every event of a long-lived subscription would add
        # entries never read again (without bound, for graphql-core's own memo).
        executor._relevant_sub_fields = {}
        executor._plans = {}
        executor._subplans = {}
        executor._deferred = None
        executor._completers = {}
        executor._refusals = {}
        executor._arguments = {}
        executor._shared = None
        return executor

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        if path is None or not self.fast:
            # Root fields all have resolvers; subscriptions run them once per event.
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        plan = self._plan(parent_type, grouped_field_set)
        return self._execute_plan(parent_type, source_value, path, plan, position_context)

    def _execute_plan(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path,
        plan: list[_Entry],
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        """execute_fields, once the plan of its fields is known."""
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        fast_values = 0
        try:
            for entry in plan:
                response_name, kind, attr, _, coerce, _, field_group, spec = entry
                if kind == _LEAVES:
                    leaves: _Leaves = spec  # type: ignore[assignment]
                    done = leaves.fill(source_value, results)
                    fast_values += done
                    if done < len(leaves.entries):
                        fast_values += self._leaves_rest(
                            leaves, done, results, awaitable_fields, parent_type, source_value,
                            path, position_context,
                        )  # fmt: skip
                    continue
                if kind == _LEAF:
                    assert coerce is not None
                    try:
                        value = coerce(getattr(source_value, attr))
                    except Exception:  # graphql-core reports it
                        value = _MISS
                    if value is not _MISS:
                        results[response_name] = value
                        fast_values += 1
                        continue
                elif kind == _TYPENAME:
                    results[response_name] = parent_type.name
                    fast_values += 1
                    continue
                elif kind == _MASKED:
                    check: HasScope = spec  # type: ignore[assignment]
                    self._mask(check, field_group, path, response_name, parent_type)
                    results[response_name] = None
                    fast_values += 1
                    continue
                elif kind != _SLOW:  # an object, a list of them, a loaded field
                    at = _path((path, response_name, parent_type.name))
                    result = self._complete_held(entry, source_value, at, position_context, results)
                    if result is not _MISS:
                        results[response_name] = result
                        fast_values += 1
                        if is_awaitable(result):
                            awaitable_fields.append(response_name)
                        continue
                self._execute_field_into(
                    results,
                    awaitable_fields,
                    parent_type,
                    source_value,
                    response_name,
                    field_group,
                    path,
                    position_context,
                )
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[field] for field in awaitable_fields])
            raise
        finally:
            self.fast_values += fast_values
        return _gathered(results, awaitable_fields) if awaitable_fields else results

    def _complete_held(
        self,
        entry: _Entry,
        source_value: Any,
        at: Path,
        position_context: Any,
        results: dict[str, Any],
    ) -> Any:
        """The value of an _OBJECT, _LIST, _LOAD or _LOAD_EACH field at `at` (possibly
        awaitable), or _MISS for graphql-core to complete. A nullable loaded field is null
        until its load settles: deferred to the list being completed, or settled on its own
        (an awaitable)."""
        _, kind, attr, field_type, _, held, field_group, spec = entry
        assert held is not None
        if kind == _LOAD:
            declared: LoadedBy = spec  # type: ignore[assignment]
            loading = self._load(declared, source_value)
            if loading is None or loading is _MISS:
                return loading
            pending = _deferred(
                (results, entry.response_name, loading, field_type, held, field_group, at,
                 position_context)
            )  # fmt: skip
            if self._deferred is None:
                return self._settle_one(pending)
            self._deferred.append(pending)
            return None  # until the list settles it
        if kind == _LOAD_EACH:
            each: _EachLoad = spec  # type: ignore[assignment]
            return self._load_each(
                each, source_value, field_type, held, field_group, at, position_context
            )
        return self._complete_plain(
            kind, field_type, held, source_value, attr, field_group, at, position_context
        )

    def _leaves_rest(
        self,
        leaves: _Leaves,
        done: int,
        results: dict[str, Any],
        awaitable_fields: list[str],
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path,
        position_context: Any,
    ) -> int:
        """The leaves `fill` did not complete, from the one it stopped at (graphql-core's);
        how many of them the fast path completed."""
        completed = 0
        for index in range(done, len(leaves.entries)):
            entry = leaves.entries[index]
            if index > done:  # the one `fill` stopped at is graphql-core's
                try:
                    value = entry.coerce(getattr(source_value, entry.attr))  # type: ignore[misc]
                except Exception:  # graphql-core reports it
                    value = _MISS
                if value is not _MISS:
                    results[entry.response_name] = value
                    completed += 1
                    continue
            self._execute_field_into(
                results,
                awaitable_fields,
                parent_type,
                source_value,
                entry.response_name,
                entry.field_group,
                path,
                position_context,
            )
        return completed

    def _mask(
        self,
        check: HasScope,
        field_group: FieldDetailsList,
        path: Path,
        response_name: str,
        parent_type: GraphQLObjectType,
    ) -> None:
        """A _MASKED field's check's refusal, added at its path (its value is null)."""
        at = _path((path, response_name, parent_type.name))
        self.collected_errors.add(self._refusal(check, field_group, at), at)

    def _execute_field_into(
        self,
        results: dict[str, Any],
        awaitable_fields: list[str],
        parent_type: GraphQLObjectType,
        source_value: Any,
        response_name: str,
        field_group: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> None:
        """graphql-core's execute_field for a field of a plan the fast path leaves to it; its
        result goes into `results`, and its name into `awaitable_fields` if it must be awaited."""
        result = self.execute_field(
            parent_type,
            source_value,
            field_group,
            _path((path, response_name, parent_type.name)),
            position_context,
        )
        if result is not Undefined:
            results[response_name] = result
            if self.is_awaitable(result):
                awaitable_fields.append(response_name)

    def _complete_plain(
        self,
        kind: int,
        return_type: GraphQLOutputType,
        object_type: GraphQLObjectType,
        source_value: Any,
        attr: str,
        field_group: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        """A plain field holding an object (_OBJECT) or a list of objects (_LIST), completed
        as graphql-core's execute_field and complete_value would; _MISS, before any work,
        when graphql-core must complete it."""
        try:
            value = getattr(source_value, attr)
        except Exception:  # graphql-core reports it
            return _MISS
        if value is None or value is Undefined:
            return _MISS if isinstance(return_type, GraphQLNonNull) else None
        if not _inert(value, self.is_awaitable):
            return _MISS
        try:
            if kind == _OBJECT:
                completed = self._execute_subfields(
                    object_type, field_group, path, value, position_context
                )
            else:
                list_type = (
                    return_type.of_type if isinstance(return_type, GraphQLNonNull) else return_type
                )
                assert isinstance(list_type, GraphQLList)
                completed = self._complete_items(
                    list_type, object_type, field_group, path, value, position_context
                )
                if completed is _MISS:
                    return _MISS
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_group, path)
            return None
        if self.is_awaitable(completed):
            return self._await_completed(completed, return_type, field_group, path)
        return completed

    def complete_list_value(
        self,
        return_type: GraphQLList[GraphQLOutputType],
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> AwaitableOrValue[list[Any]]:
        # Lists of objects returned by resolvers (a root field's list) defer their loads too.
        item_type = return_type.of_type
        if isinstance(item_type, GraphQLNonNull):
            item_type = item_type.of_type
        if (
            self.fast
            and isinstance(item_type, GraphQLObjectType)
            and item_type.is_type_of is None
            and not _streamed(field_details_list)
        ):
            completed = self._complete_items(
                return_type, item_type, field_details_list, path, result, position_context
            )
            if completed is not _MISS:
                return cast("AwaitableOrValue[list[Any]]", completed)
        return super().complete_list_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def _complete_items(
        self,
        list_type: GraphQLList[GraphQLOutputType],
        item_type: GraphQLObjectType,
        field_group: FieldDetailsList,
        path: Path,
        values: Any,
        position_context: Any,
    ) -> Any:
        """The items of a list of objects, completed as graphql-core's complete_list_value
        would, raising what it raises; _MISS, before any work, when graphql-core must do it.
        The items' loaded fields are deferred, and settled together at the end."""
        if type(values) is not list:
            return _MISS
        item_return_type: GraphQLOutputType = list_type.of_type
        items_nullable = not isinstance(item_return_type, GraphQLNonNull)
        is_awaitable = self.is_awaitable
        inert_types = _INERT_TYPES
        for item in values:
            if item is None or item is Undefined:
                if not items_nullable:
                    return _MISS
            elif type(item) not in inert_types and not _inert(item, is_awaitable):
                return _MISS
        completed: list[Any] = []
        awaitable_indices: list[int] = []
        deferred: list[_Deferred] = []
        outer = self._deferred
        self._deferred = deferred
        fast_values = 0
        try:
            # Every item has the same subfields: planned once, not once per item.
            plan = self._subplan(item_type, field_group) if position_context is None else None
            completion = None if plan is None else self._completer_of(item_type, plan)
            complete, slots = (None, ()) if completion is None else completion
            loaders = getattr(self.context_value, "loaders", None)
            pending: list[tuple[int, dict[str, Any], Any]] = []
            for index, item in enumerate(values):
                if item is None or item is Undefined:
                    completed.append(None)
                    continue
                if complete is not None:
                    done = complete(item, loaders, completed, pending)
                    if done >= 0:
                        fast_values += done
                        if pending:
                            self._defer_slots(pending, slots, path, index, deferred)
                        continue
                    pending.clear()
                    # Then likely the next items too: they go the plan's way.
                    complete = None
                item_path = _path((path, index, None))
                try:
                    if plan is not None:
                        value = self._execute_plan(item_type, item, item_path, plan, None)
                    else:
                        value = self.collect_and_execute_subfields(
                            item_type, field_group, item_path, item, position_context
                        )
                except Exception as raw_error:
                    # Raises again for non-null items: then the whole list fails.
                    self.handle_field_error(raw_error, item_return_type, field_group, item_path)
                    value = None
                if is_awaitable(value):
                    value = self._await_completed(value, item_return_type, field_group, item_path)
                    awaitable_indices.append(index)
                completed.append(value)
        except Exception:
            if awaitable_indices:
                self.settle_in_background([completed[i] for i in awaitable_indices])
            raise
        finally:
            self._deferred = outer
            self.fast_values += fast_values
        if not deferred and not awaitable_indices:
            return completed
        return self._settle_list(completed, awaitable_indices, deferred)

    def _defer_slots(
        self,
        pending: list[tuple[int, dict[str, Any], Any]],
        slots: tuple[_LoadSlot, ...],
        path: Path,
        index: int,
        deferred: list[_Deferred],
    ) -> None:
        """The loads a completer left in `pending` for the list's item at `index`, deferred
        as the plan's way defers them (their paths made only now); `pending` is emptied."""
        item_path = _path((path, index, None))
        for number, results, loading in pending:
            slot = slots[number]
            at = item_path
            for key, typename in slot.within:
                at = _path((at, key, typename))
            deferred.append(
                _deferred(
                    (
                        results,
                        slot.response_name,
                        loading,
                        slot.field_type,
                        slot.object_type,
                        slot.field_group,
                        _path((at, slot.response_name, slot.parent_name)),
                        None,
                    )
                )
            )
        pending.clear()

    async def _settle_list(
        self, completed: list[Any], awaitable_indices: list[int], deferred: list[_Deferred]
    ) -> list[Any]:
        """The list once its deferred loads are settled and its awaitable items awaited,
        concurrently, so that their batches go out together."""
        awaitables: list[Awaitable[Any]] = [completed[i] for i in awaitable_indices]
        if deferred:
            awaitables.append(self._settle(deferred))
        if len(awaitables) == 1:
            awaited = [await awaitables[0]]
        else:
            awaited = await gather_with_cancel(*awaitables)
        for index, value in zip(awaitable_indices, awaited, strict=False):
            completed[index] = value
        return completed

    async def _settle(self, deferred: list[_Deferred]) -> None:
        """Fill in deferred loaded fields, level by level: await this level's loads (their
        batches are out by now), complete the loaded objects, whose own loaded fields make
        the next level."""
        while deferred:
            outcomes: list[Any] = []
            for pending in deferred:
                loading = pending.loading
                try:
                    # Most loads are done by now: their result, without an await each.
                    if isinstance(loading, Future) and loading.done():
                        outcomes.append(loading.result())
                    else:
                        outcomes.append(await _apart(loading))
                except Exception as error:
                    outcomes.append(_Failed(error))
            awaiting: list[tuple[dict[str, Any], str]] = []
            outer = self._deferred
            later: list[_Deferred] = []
            self._deferred = later
            try:
                for pending, outcome in zip(deferred, outcomes, strict=True):
                    results, name, _, return_type, object_type, field_group, path, position = (
                        pending
                    )
                    try:
                        if isinstance(outcome, _Failed):
                            raise outcome.error
                        value = self._complete_loaded(
                            outcome, object_type, field_group, path, position
                        )
                    except Exception as raw_error:
                        # Loaded fields here are nullable: the error is kept, the field null.
                        self.handle_field_error(raw_error, return_type, field_group, path)
                        value = None
                    if type(value) is not dict and self.is_awaitable(value):
                        value = self._await_completed(value, return_type, field_group, path)
                        awaiting.append((results, name))
                    results[name] = value
            finally:
                self._deferred = outer
            if awaiting:
                awaited = await gather_with_cancel(*(r[name] for r, name in awaiting))
                for (results, name), value in zip(awaiting, awaited, strict=True):
                    results[name] = value
            deferred = later

    def _load(self, spec: LoadedBy, source_value: Any) -> Any:
        """The loader's future for a loaded field, None for a null key, or _MISS when the
        resolver must run (and raise) under graphql-core."""
        try:
            key = getattr(source_value, spec.key)
            if key is None:
                return None
            return getattr(self.context_value.loaders, spec.loader).load(int(key))
        except Exception:
            return _MISS

    def _load_each(
        self,
        each: _EachLoad,
        source_value: Any,
        return_type: GraphQLOutputType,
        object_type: GraphQLObjectType,
        field_group: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        """A _LOAD_EACH field, as graphql-core's execute_field runs its resolver (the same
        `load`) and completes what it gives: an awaitable of the completed value, or None
        for a null key; _MISS, before any load, when graphql-core must run the resolver."""
        try:
            arguments = self._arguments_of(each, field_group) if each.field_def.args else {}
            key = each.spec.key_of(source_value, arguments)
            if key is None:
                return _MISS if isinstance(return_type, GraphQLNonNull) else None
            loading = getattr(self.context_value.loaders, each.spec.loader).load(key)
        except Exception:  # graphql-core reports it
            return _MISS
        return self._settle_each(
            loading, each, return_type, object_type, field_group, path, position_context
        )

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

    async def _settle_each(
        self,
        loading: Awaitable[Any],
        each: _EachLoad,
        return_type: GraphQLOutputType,
        object_type: GraphQLObjectType,
        field_group: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        """A loaded _LOAD_EACH value completed, as graphql-core's complete_awaitable_value:
        an error makes the field null, or (non-null) goes up to the parent."""
        try:
            value = await _apart(loading)
            completed = self._complete_each(
                value, each, return_type, object_type, field_group, path, position_context
            )
            if self.is_awaitable(completed):
                completed = await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_group, path)
            return None
        return completed

    def _complete_each(
        self,
        value: Any,
        each: _EachLoad,
        return_type: GraphQLOutputType,
        object_type: GraphQLObjectType,
        field_group: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> AwaitableOrValue[Any]:
        """complete_value of a loaded object or list of objects (`_each_type`)."""
        if isinstance(value, Exception):
            raise value
        nullable = return_type
        if isinstance(return_type, GraphQLNonNull):
            nullable = return_type.of_type
        if value is None or value is Undefined:
            if nullable is return_type:
                return None
            raise TypeError(
                "Cannot return null for non-nullable field"
                f" {each.parent_type.name}.{field_group[0].node.name.value}."
            )
        if isinstance(nullable, GraphQLList):
            completed = self._complete_items(
                nullable, object_type, field_group, path, value, position_context
            )
            if completed is not _MISS:
                return completed
            # An item graphql-core must complete: then the whole list is its to complete.
            nodes = [details.node for details in field_group]
            info = self.build_resolve_info(each.field_def, nodes, each.parent_type, path)
            return self.complete_value(
                return_type, field_group, info, path, value, position_context
            )
        return self._execute_subfields(object_type, field_group, path, value, position_context)

    async def _settle_one(self, pending: _Deferred) -> Any:
        """A loaded field outside a list, as graphql-core's complete_awaitable_value."""
        _, _, loading, return_type, object_type, field_group, path, position_context = pending
        try:
            completed = self._complete_loaded(
                await _apart(loading), object_type, field_group, path, position_context
            )
            if self.is_awaitable(completed):
                completed = await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_group, path)
            return None
        return completed

    def _complete_loaded(
        self,
        value: Any,
        object_type: GraphQLObjectType,
        field_group: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> AwaitableOrValue[Any]:
        """complete_value for a nullable object type without is_type_of."""
        if isinstance(value, Exception):
            raise value
        if value is None or value is Undefined:
            return None
        return self._execute_subfields(object_type, field_group, path, value, position_context)

    async def _await_completed(
        self,
        completed: Awaitable[Any],
        return_type: GraphQLOutputType,
        field_group: FieldDetailsList,
        path: Path,
    ) -> Any:
        try:
            return await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_group, path)
            return None

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

    def _execute_subfields(
        self,
        object_type: GraphQLObjectType,
        field_group: FieldDetailsList,
        path: Path,
        value: Any,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        """collect_and_execute_subfields, with the plan looked up once."""
        plan = self._subplan(object_type, field_group) if position_context is None else None
        if plan is None:
            return self.collect_and_execute_subfields(
                object_type, field_group, path, value, position_context
            )
        return self._execute_plan(object_type, value, path, plan, None)

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


async def _gathered(results: dict[str, Any], awaitable_fields: list[str]) -> dict[str, Any]:
    """`results` once its awaitable fields are in, as graphql-core's execute_fields awaits
    them: one awaited alone, more gathered."""
    if len(awaitable_fields) == 1:
        field = awaitable_fields[0]
        results[field] = await results[field]
    else:
        awaited = await gather_with_cancel(*(results[f] for f in awaitable_fields))
        results.update(zip(awaitable_fields, awaited, strict=True))
    return results
