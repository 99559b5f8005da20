"""The execution context: graphql-core's, with plans run by the fast path."""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Sequence
from functools import partial
from typing import Any, cast

from graphql import (
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLResolveInfoHelpers,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.pyutils import AwaitableOrValue, Path, Undefined, gather_with_cancel

from gateway.graphql.execution.codegen import _Leaves
from gateway.graphql.execution.direct import _direct_calls, _DirectCalls
from gateway.graphql.execution.loads import LoadingContext
from gateway.graphql.execution.plans import _streamed
from gateway.graphql.execution.records import (
    _LEAF,
    _LEAVES,
    _LOAD,
    _LOAD_EACH,
    _MASKED,
    _MISS,
    _OBJECT,
    _SLOW,
    _TYPENAME,
    _deferred,
    _EachLoad,
    _Entry,
    _inert,
    _path,
)
from schema.loaded import LoadedBy
from schema.permissions import HasScope


def _gather_async_work(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
    return gather_with_cancel(*values)


def _track_async_work(context: weakref.ref[FastExecutionContext], values: Sequence[Any]) -> None:
    executing = context()
    if executing is not None:
        executing.track_async_work(values)


class FastExecutionContext(LoadingContext):
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
            self._share_plans(granted)

    def build_per_event_executor(self, payload: Any) -> FastExecutionContext:
        executor = super().build_per_event_executor(payload)
        assert isinstance(executor, FastExecutionContext)
        # graphql-core's copy shares this executor's memos, keyed by the identity of each
        # event's own field lists: every event of a long-lived subscription would add
        # entries never read again (without bound, for graphql-core's own memo).
        executor._relevant_sub_fields = {}
        executor._forget_plans()
        executor._deferred = None
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
