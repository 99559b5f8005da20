"""Loaded fields and lists of objects: a list's items defer their loaded fields (their
loads join the loaders' batches), and the list settles them together, level by level."""

from __future__ import annotations

from asyncio import Future, shield
from collections.abc import Awaitable, Callable
from typing import Any

from graphql import GraphQLList, GraphQLNonNull, GraphQLObjectType, GraphQLOutputType
from graphql.execution.collect_fields import FieldDetailsList
from graphql.pyutils import AwaitableOrValue, Path, Undefined, gather_with_cancel

from gateway.graphql.execution.planning import PlanningContext
from gateway.graphql.execution.records import (
    _INERT_TYPES,
    _MISS,
    _Deferred,
    _deferred,
    _EachLoad,
    _Entry,
    _Failed,
    _inert,
    _LoadSlot,
    _path,
)
from schema.loaded import LoadedBy


def _apart(loading: Awaitable[Any]) -> Awaitable[Any]:
    """A load to await so that cancelling the task awaiting it leaves the load be: a loader
    hands the same future to every load of a key, and a task awaiting a future cancels it
    when cancelled itself. A non-null field's error nulling its parent cancels the tasks of
    the parent's other fields (gather_with_cancel): without this, a load they shared with
    the rest of the answer would fail there too, with a CancelledError."""
    return shield(loading) if isinstance(loading, Future) and not loading.done() else loading


class LoadingContext(PlanningContext):
    """The planning context that completes loaded fields and lists of objects; the plans
    themselves are run by `FastExecutionContext._execute_plan`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Where loaded fields put their loads while a list is being completed; None outside
        # one. Only ever set during synchronous work, so no await point ever sees it set.
        self._deferred: list[_Deferred] | None = None

    def _execute_plan(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path,
        plan: list[_Entry],
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        """The fields of `source_value` by `plan`: `FastExecutionContext`'s."""
        raise NotImplementedError

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
        return self._settled(
            loading,
            self._complete_each,
            (each, return_type, object_type, field_group, path, position_context),
            return_type,
            field_group,
            path,
        )

    async def _settled(
        self,
        loading: Awaitable[Any],
        complete: Callable[..., AwaitableOrValue[Any]],
        arguments: tuple[Any, ...],
        return_type: GraphQLOutputType,
        field_group: FieldDetailsList,
        path: Path,
    ) -> Any:
        """A load's value completed by `complete(value, *arguments)`, as graphql-core's
        complete_awaitable_value: an error makes the field null, or (non-null) goes up to
        the parent."""
        try:
            completed = complete(await _apart(loading), *arguments)
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

    def _settle_one(self, pending: _Deferred) -> Awaitable[Any]:
        """A loaded field outside a list, settled on its own."""
        _, _, loading, return_type, object_type, field_group, path, position_context = pending
        return self._settled(
            loading,
            self._complete_loaded,
            (object_type, field_group, path, position_context),
            return_type,
            field_group,
            path,
        )

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
