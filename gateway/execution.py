"""A faster execution of plain fields, with the same results as graphql-core's.

A plain field is a strawberry field that only reads an attribute of its source object: no
resolver, no field extension (so no permission check), no arguments. graphql-core spends
most of a large answer on such fields, building a resolve info, a path and four nested
calls for each value. FastExecutionContext reads them straight off the object and coerces
them with the field type's own coercion, in graphql-core's order of keys. Whenever it cannot
be sure of the same result (a null for a non-null field, a value the coercion refuses, an
awaitable, middleware), it hands the field to graphql-core, which produces its usual error.

A loader field is a strawberry `async def` resolver taking only `self` and an `info` it
reads nothing but `info.context` from (checked on its bytecode), with no argument or
extension, returning a nullable object. graphql-core gives each such field, and each item of
the list around it, a stack of coroutines and a task. Here the synchronous pass that builds
an answer leaves a hole for each, and a _Batch drives the resolvers' coroutines itself: all
started one loop step after the pass (so a DataLoader still gets a whole level in one
batch), each resumed by its future's done callback, in the order a task would be, and its
value completed with the plans above. An error lands where graphql-core puts it: the
field's own path, the field nulled (its type is nullable, so nothing propagates).
"""

from __future__ import annotations

import asyncio
import contextvars
import dis
import functools
import inspect
import types
from collections.abc import Awaitable, Callable, Coroutine
from enum import Enum
from typing import Any, Final

from graphql import (
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLField,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLString,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.pyutils import AwaitableOrValue, Path, Undefined, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField
from strawberry.types.fields.resolver import StrawberryResolver

__all__ = ["FastExecutionContext"]

_MIN_INT: Final = -(2**31)
_MAX_INT: Final = 2**31 - 1


class _Miss:
    """What a coercion returns when graphql-core must complete the value itself."""


_MISS: Final = _Miss()
# Values that are neither exceptions nor awaitables.
_BUILTIN_VALUES: Final = frozenset({str, int, float, bool})

Coerce = Callable[[Any], Any]

# How a field of a plan is completed.
_SLOW: Final = 0  # graphql-core's execute_field
_LEAF: Final = 1  # a scalar, an enum or a list of them: `coerce(getattr(source, attr))`
_TYPENAME: Final = 2  # `__typename`: the parent type's name
_OBJECT: Final = 3  # an object without is_type_of: its subfields, through execute_fields
_LOADER: Final = 4  # a loader field: its resolver's coroutine, driven by the pass's _Batch

# response name, kind, attribute, field type, coercion (leaves) or resolver call (loaders),
# object type, field group
_Entry = tuple[str, int, str, GraphQLOutputType, Any, GraphQLObjectType | None, FieldDetailsList]
# What a loader field's resolver may touch in its info: nothing but this.
_INFO_READS: Final = "context"
# Names a resolver could reach its frame's `info` through otherwise.
_FRAME_READERS: Final = frozenset(
    {"locals", "vars", "eval", "exec", "_getframe", "currentframe", "f_locals"}
)
_PLAN_CACHE_SIZE: Final = 256


class FastExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """strawberry's execution context, completing plain fields without graphql-core's
    per-field machinery; every other field runs exactly as before."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        manager = self.middleware_manager
        # Middleware wraps every resolver, plain ones included: then nothing is plain.
        self.fast = manager is None or not manager.middlewares
        # Values completed by the fast path (tests check that it keeps being used).
        self.fast_values = 0
        self._plans: dict[tuple[GraphQLObjectType, int], tuple[GroupedFieldSet, list[_Entry]]]
        self._plans = {}
        # Loader fields need the same resolve as graphql-core's with nothing around it: no
        # abort signal to race the resolver against, no hook waiting for async work; and a
        # running loop (without one, graphql-core reports that it cannot await).
        self.loaders = (
            self.fast and self.abort_signal is None and self.hooks is None and _loop_running()
        )
        self.context_info = _ContextInfo(self.context_value)
        # The batch of the synchronous pass under way, which loader fields join.
        self._batch: _Batch | None = None

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
        if self._batch is not None:
            return self._execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        # The outermost object of a synchronous pass: loader fields below it join its batch.
        batch = self._batch = _Batch(self)
        try:
            result = self._execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        finally:
            self._batch = None
        return batch.after_pass(result)

    def _execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        plan = self._plan(parent_type, grouped_field_set)
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        fast_values = 0
        try:
            for response_name, kind, attr, field_type, coerce, object_type, field_group in plan:
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
                elif kind == _LOADER:
                    assert object_type is not None
                    assert self._batch is not None
                    self._batch.add(
                        _Pending(
                            coerce(source_value, self.context_info),
                            results,
                            response_name,
                            object_type,
                            field_group,
                            Path(path, response_name, parent_type.name),
                            position_context,
                        )
                    )
                    # A hole, filled when the resolver's value is complete.
                    results[response_name] = None
                    fast_values += 1
                    continue
                elif kind == _OBJECT:
                    assert object_type is not None
                    result = self._complete_object(
                        field_type,
                        object_type,
                        source_value,
                        attr,
                        field_group,
                        Path(path, response_name, parent_type.name),
                        position_context,
                    )
                    if result is not _MISS:
                        results[response_name] = result
                        fast_values += 1
                        if is_awaitable(result):
                            awaitable_fields.append(response_name)
                        continue
                result = self.execute_field(
                    parent_type,
                    source_value,
                    field_group,
                    Path(path, response_name, parent_type.name),
                    position_context,
                )
                if result is not Undefined:
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[field] for field in awaitable_fields])
            raise
        finally:
            self.fast_values += fast_values

        if not awaitable_fields:
            return results

        async def get_results() -> dict[str, Any]:
            # As graphql-core's execute_fields does: one awaited alone, more gathered.
            if len(awaitable_fields) == 1:
                field = awaitable_fields[0]
                results[field] = await results[field]
            else:
                awaited = await gather_with_cancel(*(results[f] for f in awaitable_fields))
                results.update(zip(awaitable_fields, awaited, strict=True))
            return results

        return get_results()

    def _complete_object(
        self,
        return_type: GraphQLOutputType,
        object_type: GraphQLObjectType,
        source_value: Any,
        attr: str,
        field_group: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        """A plain field holding an object, completed as graphql-core's complete_value would;
        _MISS, before any work, when graphql-core must complete it."""
        try:
            value = getattr(source_value, attr)
        except Exception:  # graphql-core reports it
            return _MISS
        if value is None or value is Undefined:
            return _MISS if return_type is not object_type else None
        if isinstance(value, Exception) or self.is_awaitable(value):
            return _MISS
        try:
            completed = self.collect_and_execute_subfields(
                object_type, field_group, path, value, position_context
            )
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_group, path)
            return None
        if self.is_awaitable(completed):
            return self._await_completed(completed, return_type, field_group, path)
        return completed

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

    def _plan(self, parent_type: GraphQLObjectType, fields: GroupedFieldSet) -> list[_Entry]:
        """How to complete each field of `fields` on `parent_type`, made once per request for
        each selection (collect_subfields hands out the same grouped field set each time)."""
        key = (parent_type, id(fields))
        cached = self._plans.get(key)
        if cached is not None:
            return cached[1]
        plan = [
            _entry(self, parent_type, response_name, field_group)
            for response_name, field_group in fields.items()
        ]
        if len(self._plans) >= _PLAN_CACHE_SIZE:
            self._plans.clear()
        # The grouped field set stays referenced, so its id is not reused meanwhile.
        self._plans[key] = (fields, plan)
        return plan


def _entry(
    context: FastExecutionContext,
    parent_type: GraphQLObjectType,
    response_name: str,
    field_group: FieldDetailsList,
) -> _Entry:
    node = field_group[0].node
    name = node.name.value
    field_def = context.schema.get_field(parent_type, name)
    if field_def is None:
        return (response_name, _SLOW, name, GraphQLString, None, None, field_group)
    slow: _Entry = (response_name, _SLOW, name, field_def.type, None, None, field_group)
    if name == "__typename":
        return (response_name, _TYPENAME, name, field_def.type, None, None, field_group)
    if node.arguments:
        return slow
    if not _is_plain(field_def):
        call = _loader_call(context, field_def) if context.loaders else None
        if call is None:
            return slow
        object_type = field_def.type
        assert isinstance(object_type, GraphQLObjectType)
        return (response_name, _LOADER, name, object_type, call, object_type, field_group)
    strawberry_field = field_def.extensions[GraphQLCoreConverter.DEFINITION_BACKREF]
    attr = strawberry_field.python_name
    field_type = field_def.type
    if isinstance(field_type, GraphQLNonNull):
        field_type = field_type.of_type
    if isinstance(field_type, GraphQLObjectType):
        if field_type.is_type_of is not None:
            return slow
        return (response_name, _OBJECT, attr, field_def.type, None, field_type, field_group)
    coerce = _coercion(field_def.type, context.is_awaitable)
    if coerce is None:
        return slow
    return (response_name, _LEAF, attr, field_def.type, coerce, None, field_group)


def _is_plain(field_def: GraphQLField) -> bool:
    """Whether the field only reads an attribute with getattr, as strawberry's basic-field
    resolver does (no resolver, no extension, no arguments). An exception handler would only
    see what getattr raises, and then graphql-core runs the field itself."""
    strawberry_field = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    return (
        isinstance(strawberry_field, StrawberryField)
        and type(strawberry_field).get_result is StrawberryField.get_result
        and getattr(field_def.resolve, "_is_default", False) is True
        and strawberry_field.base_resolver is None
        and not strawberry_field.extensions
        and not strawberry_field.is_subscription
        and strawberry_field.default_resolver is getattr
        and not field_def.args
        and field_def.subscribe is None
    )


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _loader_call(
    context: FastExecutionContext, field_def: GraphQLField
) -> Callable[[Any, _ContextInfo], Coroutine[Any, Any, Any]] | None:
    """How to call a loader field's resolver (see the module's docstring) just as strawberry
    would, with a `_ContextInfo` for its info; None for any other field."""
    strawberry_field = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    field_type = field_def.type
    if not (
        isinstance(strawberry_field, StrawberryField)
        and isinstance(field_type, GraphQLObjectType)
        and field_type.is_type_of is None
        and type(strawberry_field).get_result is StrawberryField.get_result
        and getattr(field_def.resolve, "_is_default", True) is False
        and getattr(field_def.resolve, "__name__", None) == "_async_resolver"
        and strawberry_field.is_async
        and not strawberry_field.extensions
        and not strawberry_field.is_subscription
        and not field_def.args
        and field_def.subscribe is None
    ):
        return None
    # strawberry wraps resolvers in exception handlers when the schema has any.
    converter = getattr(
        getattr(context.schema, "_strawberry_schema", None), "schema_converter", None
    )
    if not isinstance(converter, GraphQLCoreConverter) or converter.exception_handlers:
        return None
    resolver = strawberry_field.base_resolver
    if resolver is None or type(resolver).__call__ is not StrawberryResolver.__call__:
        return None
    function = resolver.wrapped_func
    if (
        not isinstance(function, types.FunctionType)
        or not inspect.iscoroutinefunction(function)
        or resolver.arguments
        or resolver.self_parameter is None
        or resolver.parent_parameter is not None
        or resolver.root_parameter is not None
    ):
        return None
    info = resolver.info_parameter
    if info is None:
        return lambda source, _info: function(source)
    if not _reads_only_context(function.__code__, info.name):
        return None
    name = info.name
    return lambda source, context_info: function(source, **{name: context_info})


def _reads_only_context(code: types.CodeType, info: str) -> bool:
    """Whether `code` uses its local `info` only as `info.context`: then a _ContextInfo
    holding graphql-core's context value is, to it, the same as strawberry's Info."""
    if info in code.co_cellvars or _FRAME_READERS.intersection(code.co_names):
        return False
    instructions = list(dis.get_instructions(code))
    for at, instruction in enumerate(instructions):
        if instruction.argval != info and not (
            isinstance(instruction.argval, tuple) and info in instruction.argval
        ):
            continue
        if instruction.opname != "LOAD_FAST":
            return False  # a store, a delete, a fused load: doubtful
        following = instructions[at + 1] if at + 1 < len(instructions) else None
        if following is None or following.opname != "LOAD_ATTR":
            return False
        if following.argval != _INFO_READS:
            return False
    return True


class _ContextInfo:
    """The info a loader field's resolver gets: the only attribute it reads."""

    __slots__ = ("context",)

    def __init__(self, context: Any) -> None:
        self.context = context


class _Pending:
    """A loader field's resolver under way, and where its completed value goes."""

    __slots__ = (
        "context",
        "coroutine",
        "field_group",
        "key",
        "object_type",
        "path",
        "position_context",
        "results",
        "waiting",
    )

    def __init__(
        self,
        coroutine: Coroutine[Any, Any, Any],
        results: dict[str, Any],
        key: str,
        object_type: GraphQLObjectType,
        field_group: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> None:
        self.coroutine = coroutine
        self.results = results
        self.key = key
        self.object_type = object_type
        self.field_group = field_group
        self.path = path
        self.position_context = position_context
        # As a task would, the resolver runs in its own copy of the context.
        self.context = contextvars.copy_context()
        self.waiting: asyncio.Future[Any] | None = None


class _Batch:
    """The loader fields of one synchronous pass (and of the values they complete), their
    coroutines driven without a task: started one loop step after they were added, in that
    order, each resumed by its future's done callback, as asyncio's Task steps them."""

    __slots__ = ("done", "executor", "loop", "pending", "remaining", "to_start")

    def __init__(self, executor: FastExecutionContext) -> None:
        self.executor = executor
        self.loop: asyncio.AbstractEventLoop | None = None
        self.to_start: list[_Pending] = []
        self.remaining = 0
        self.done: asyncio.Future[None] | None = None
        self.pending: set[_Pending] = set()

    def add(self, pending: _Pending) -> None:
        if not self.to_start:
            if self.loop is None:
                self.loop = asyncio.get_running_loop()
            self.loop.call_soon(self._start)
        self.to_start.append(pending)
        self.remaining += 1

    def after_pass(
        self, result: AwaitableOrValue[dict[str, Any]]
    ) -> AwaitableOrValue[dict[str, Any]]:
        """The outermost object's answer: `result` once every hole is filled."""
        if not self.remaining:
            return result
        assert self.loop is not None
        self.done = self.loop.create_future()
        return self._wait(result)

    async def _wait(self, result: AwaitableOrValue[dict[str, Any]]) -> dict[str, Any]:
        assert self.done is not None
        try:
            if self.executor.is_awaitable(result):
                answer, _ = await gather_with_cancel(result, self.done)
                return answer  # type: ignore[no-any-return]
            await self.done
            return result  # type: ignore[return-value]
        except asyncio.CancelledError:
            # As cancelling their tasks would: the resolvers see their futures cancelled.
            for pending in list(self.pending):
                if pending.waiting is not None:
                    pending.waiting.cancel()
            raise

    def _start(self) -> None:
        starting, self.to_start = self.to_start, []
        for pending in starting:
            self.pending.add(pending)
            pending.context.run(self._step, pending, None)

    def _wake(self, pending: _Pending, _future: asyncio.Future[Any]) -> None:
        pending.waiting = None
        self._step(pending, None)

    def _step(self, pending: _Pending, error: BaseException | None) -> None:
        """One step of the resolver, run in its context (as Task.__step)."""
        coroutine = pending.coroutine
        try:
            yielded = coroutine.send(None) if error is None else coroutine.throw(error)
        except StopIteration as stop:
            value = stop.value
        except Exception as raw_error:
            self._fail(pending, raw_error)
            return
        except BaseException:  # cancelled: graphql-core would not complete it either
            self._finish(pending)
            raise
        else:
            self._wait_for(pending, yielded)
            return
        self._complete(pending, value)

    def _wait_for(self, pending: _Pending, yielded: Any) -> None:
        """What asyncio's Task does with what a coroutine yields."""
        assert self.loop is not None
        if getattr(yielded, "_asyncio_future_blocking", None):
            if yielded.get_loop() is not self.loop:
                bad: BaseException = RuntimeError(
                    f"Task got Future {yielded!r} attached to a different loop"
                )
                self.loop.call_soon(self._step, pending, bad, context=pending.context)
                return
            yielded._asyncio_future_blocking = False
            pending.waiting = yielded
            yielded.add_done_callback(
                functools.partial(self._wake, pending), context=pending.context
            )
        elif yielded is None:  # a bare yield: step again on the next loop step
            self.loop.call_soon(self._step, pending, None, context=pending.context)
        else:
            bad = RuntimeError(f"Task got bad yield: {yielded!r}")
            self.loop.call_soon(self._step, pending, bad, context=pending.context)

    def _complete(self, pending: _Pending, value: Any) -> None:
        """graphql-core's complete_value for the field's nullable object type."""
        if isinstance(value, Exception):
            self._fail(pending, value)
            return
        if value is None or value is Undefined:
            pending.results[pending.key] = None
            self._finish(pending)
            return
        executor = self.executor
        outer, executor._batch = executor._batch, self
        try:
            completed = executor.collect_and_execute_subfields(
                pending.object_type,
                pending.field_group,
                pending.path,
                value,
                pending.position_context,
            )
        except Exception as raw_error:
            self._fail(pending, raw_error)
            return
        finally:
            executor._batch = outer
        if executor.is_awaitable(completed):
            task = asyncio.ensure_future(self._await_completed(pending, completed))
            task.add_done_callback(functools.partial(self._finished_task, pending))
            return
        pending.results[pending.key] = completed
        self._finish(pending)

    async def _await_completed(self, pending: _Pending, completed: Awaitable[Any]) -> None:
        try:
            pending.results[pending.key] = await completed
        except Exception as raw_error:
            self._record(pending, raw_error)

    def _finished_task(self, pending: _Pending, _task: asyncio.Future[None]) -> None:
        self._finish(pending)

    def _fail(self, pending: _Pending, raw_error: Exception) -> None:
        self._record(pending, raw_error)
        self._finish(pending)

    def _record(self, pending: _Pending, raw_error: Exception) -> None:
        pending.results[pending.key] = None
        self.executor.handle_field_error(
            raw_error, pending.object_type, pending.field_group, pending.path
        )

    def _finish(self, pending: _Pending) -> None:
        self.pending.discard(pending)
        self.remaining -= 1
        if not self.remaining and self.done is not None and not self.done.done():
            self.done.set_result(None)


def _coercion(field_type: GraphQLOutputType, is_awaitable: Callable[[Any], bool]) -> Coerce | None:
    """The completion of a leaf type (possibly non-null, possibly a list) as graphql-core's
    complete_value would give it, returning _MISS where graphql-core must decide; None for
    types it does not handle."""
    nullable = not isinstance(field_type, GraphQLNonNull)
    if isinstance(field_type, GraphQLNonNull):
        field_type = field_type.of_type
    # A null for a non-null type is graphql-core's to report.
    null = None if nullable else _MISS
    if isinstance(field_type, GraphQLScalarType | GraphQLEnumType):
        return _leaf(field_type, is_awaitable, null)
    if not isinstance(field_type, GraphQLList) or isinstance(field_type.of_type, GraphQLList):
        return None
    item = _coercion(field_type.of_type, is_awaitable)
    if item is None:
        return None
    item_coerce = item

    def list_of(value: Any) -> Any:
        if value is None or value is Undefined:
            return null
        if type(value) is not list:
            return _MISS
        completed = [item_coerce(element) for element in value]
        return _MISS if any(one is _MISS for one in completed) else completed

    return list_of


def _leaf(
    leaf_type: GraphQLScalarType | GraphQLEnumType,
    is_awaitable: Callable[[Any], bool],
    null: _Miss | None,
) -> Coerce:
    coerce_output_value = leaf_type.coerce_output_value
    assert coerce_output_value is not None

    def generic(value: Any) -> Any:
        if value is None or value is Undefined:
            return null
        if type(value) not in _BUILTIN_VALUES and (
            isinstance(value, Exception) or is_awaitable(value)
        ):
            return _MISS
        coerced = coerce_output_value(value)
        if coerced is None or coerced is Undefined:
            return _MISS
        return coerced

    # graphql-core's own scalars return these values unchanged.
    if leaf_type is GraphQLString:

        def text(value: Any) -> Any:
            return value if type(value) is str else generic(value)

        return text
    if leaf_type is GraphQLID:

        def identifier(value: Any) -> Any:
            kind = type(value)
            if kind is str:
                return value
            return str(value) if kind is int else generic(value)

        return identifier
    if leaf_type is GraphQLBoolean:

        def boolean(value: Any) -> Any:
            return value if type(value) is bool else generic(value)

        return boolean
    if leaf_type is GraphQLInt:

        def integer(value: Any) -> Any:
            if type(value) is int and _MIN_INT <= value <= _MAX_INT:
                return value
            return generic(value)

        return integer
    members = getattr(leaf_type, "wrapped_cls", None)
    if isinstance(members, type) and issubclass(members, Enum) and members.__eq__ is object.__eq__:
        # A member of a plain Enum (equal only to itself) always gets the same name.
        names: dict[Any, Any] = {}

        def member(value: Any) -> Any:
            if type(value) is not members:
                return generic(value)
            name = names.get(value)
            if name is None:
                name = generic(value)
                if name is not _MISS:
                    names[value] = name
            return name

        return member
    return generic
