"""The talkgate schema, assembled here and nowhere else: its extensions, its checks, and the
sharing of subscriptions."""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias, cast

import orjson
import strawberry
from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    InitialIncrementalExecutionResult,
    MiddlewareManager,
    NoSchemaIntrospectionCustomRule,
    OperationDefinitionNode,
    SubsequentIncrementalExecutionResult,
    execute,
    specified_rules,
)
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import OperationType as GraphQLOperationType
from strawberry.execution import optimized_is_awaitable
from strawberry.extensions import DisableIntrospection, SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StreamResult
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.execution import ExecutionResult as StrawberryExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from gateway.graphql.coalesced_streams import CoalescedStreams
from gateway.graphql.execution import FastExecutionContext
from gateway.graphql.limits import LimitQueries, QueryLimits
from gateway.graphql.parsing import (
    CachedParse,
    CachedValidation,
    parsed_operation,
    validate_cached,
)
from gateway.graphql.persisted import (
    AllowListedOnly,
    document_hash,
)
from gateway.graphql.typed_errors import TypedErrors
from gateway.logs import request_id_var
from gateway.metrics import Metrics
from gateway.settings import Settings
from resolvers.context import RequestContext
from resolvers.mutation import Mutation
from resolvers.query import Query
from resolvers.subscription import Subscription
from schema.node import without_type_checks
from schema.scalars import SCALARS

log = logging.getLogger("talkgate.graphql")


class OperationCounter:
    """Counts executed operations by name, type and outcome."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def count(self, context: ExecutionContext, outcome: str) -> None:
        try:
            kind = context.operation_type.value
        except RuntimeError:  # the document never parsed
            kind = "unknown"
        self.metrics.count_operation(context.operation_name, kind, outcome)

    def count_result(self, name: str | None, kind: str, result: ExecutionResult) -> None:
        """Count an executed operation by its result, as CountOperations does."""
        self.metrics.count_operation(name, kind, _outcome(result.errors, result.data))


def _outcome(errors: object, data: object) -> str:
    """An executed operation's outcome label: ok, partial (errors beside data) or error."""
    return "ok" if not errors else ("partial" if data else "error")


class CountOperations(SchemaExtension):
    """Counts each executed operation (refused ones are counted where they are refused)."""

    def __init__(self, counter: OperationCounter) -> None:
        self.counter = counter

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        outcome = _outcome(getattr(result, "errors", None), getattr(result, "data", None))
        self.counter.count(self.execution_context, outcome)


StreamItem: TypeAlias = (
    PreExecutionError
    | StrawberryExecutionResult
    | InitialIncrementalExecutionResult
    | SubsequentIncrementalExecutionResult
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Checks:
    """What every operation goes through besides its execution, as build_schema's
    extensions do it: the limits (LimitQueries, before validation), the validation rules
    (CachedValidation's, DisableIntrospection's among them), the allow-list
    (AllowListedOnly), the errors' typing (TypedErrors) and the count (CountOperations).
    `TalkgateSchema.execute_checked` uses the same parts without strawberry's extension runner."""

    typing: TypedErrors
    rules: tuple[type[ASTValidationRule], ...]
    limits: LimitQueries | None
    allow_list: Mapping[str, str] | None
    counter: OperationCounter | None


class TalkgateSchema(strawberry.Schema):
    """strawberry's schema; subscribers holding the same subscription share its execution.

    The same document, operation name and variables under the same scopes give every
    subscriber the same results, so they run once per event for all of them (see
    gateway/graphql/coalesced_streams.py) in a context of their own, logged under their own
    request id.
    """

    def __init__(self, *args: Any, checks: Checks | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        without_type_checks(self._schema)
        self.shared: CoalescedStreams[StreamItem] = CoalescedStreams()
        self.checks = checks
        # strawberry's own (execute) when no extension wraps resolvers, as none of
        # build_schema's does.
        self._no_middleware = MiddlewareManager()

    async def execute_checked(
        self,
        query: str,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: dict[str, Any] | None,
        context: object,
        operation_extensions: dict[str, Any] | None,
    ) -> ExecutionResult | None:
        """`execute` of a query or mutation (`operation`, of `document`, parsed from
        `query`) that passes every check before execution, without strawberry's extension
        runner; None, with nothing run, for one that does not, which `execute` then refuses
        in its own words.

        strawberry builds a context manager per hook and extension for every operation:
        with six extensions, 0.41 M instructions per request (bench.instructions, callgrind:
        an empty page, `talks(first: 0)`, 1.45 -> 1.04 M; W1, 100 talks, 5.94 -> 5.57 M).
        The checks are the extensions' own parts (Checks), and what they decide is a
        function of the document, the operation and the variables' integers: so an
        operation they pass here would pass them there. tests/gateway/graphql/test_decoded_path.py
        holds the two ways to the same answers.
        """
        checks = self.checks
        if checks is None or self.config.enable_experimental_incremental_execution:
            return None  # @defer and @stream are graphql-core's incremental execution's
        name = operation.name.value if operation.name is not None else None
        if checks.allow_list is not None and document_hash(query) not in checks.allow_list:
            return None
        if checks.limits is not None and checks.limits.refusal(
            self._schema, document, name, variables
        ):
            return None
        if validate_cached(self._schema, document, checks.rules):
            return None
        try:
            executed = execute(
                self._schema,
                document,
                middleware=self._no_middleware,
                variable_values=variables,
                operation_name=name,
                context_value=context,
                is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]
                executor_class=self.execution_context_class,
                operation_extensions=operation_extensions,
            )
            if not isinstance(executed, GraphQLExecutionResult):
                executed = await executed
            data, errors = executed.data, executed.errors
        except Exception as exc:  # as strawberry's execute answers it
            located = exc if isinstance(exc, GraphQLError) else None
            data, errors = None, [located or GraphQLError(str(exc), original_error=exc)]
        if errors:
            errors = [checks.typing.typed(e) for e in errors]
        result = ExecutionResult(data=data, errors=errors, extensions={})
        if checks.counter is not None:
            checks.counter.count_result(name, operation.operation.value, result)
        return result

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # TypedErrors already logged what deserves a log line; expected errors are not news.
        return

    async def stream(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
    ) -> StreamResult:
        run = super().stream
        key = _sharing_key(query, variable_values, context_value, operation_name)
        if (
            key is None
            or root_value is not None
            or operation_extensions
            or (
                allowed_operation_types is not None
                and OperationType.SUBSCRIPTION not in allowed_operation_types
            )
        ):
            return await run(
                query,
                variable_values,
                context_value,
                root_value,
                operation_name,
                operation_extensions,
                allowed_operation_types,
            )
        context = cast(RequestContext, context_value)

        async def start(request_id: str) -> StreamResult:
            request_id_var.set(request_id)  # this runs in the shared stream's own task
            shared = RequestContext(
                caller=context.caller, services=context.services, request_id=request_id
            )
            return await run(query, variable_values, shared, None, operation_name)

        fanout = context.broker.fanout
        return self.shared.join(key, start, queue_size=fanout.queue_size, on_drop=fanout.on_drop)


def _sharing_key(
    query: str | None,
    variables: dict[str, Any] | None,
    context: object,
    operation_name: str | None,
) -> Hashable | None:
    """What makes two subscriptions give the same results, or None for what is not one."""
    if query is None or not isinstance(context, RequestContext):
        return None
    parsed = parsed_operation(query, operation_name, context.settings.max_query_tokens)
    operation = None if parsed is None else parsed[1]  # else the ordinary path reports it
    if operation is None or operation.operation is not GraphQLOperationType.SUBSCRIPTION:
        return None
    try:
        given = orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None
    return (query, operation_name, given, context.caller.scopes)


def build_schema(
    settings: Settings | None = None,
    metrics: Metrics | None = None,
    *,
    allow_list: Mapping[str, str] | None = None,
) -> strawberry.Schema:
    """The talkgate schema; built here and nowhere else (its SDL does not depend on settings).

    With `allow_list`, only its documents run, on every transport.
    """
    introspection = settings.introspection if settings is not None else True
    # Factories: every operation gets fresh extension instances. Parsing and validating
    # repeat for every request of a dashboard that polls: bounded caches keep the results.
    # Every parse is token-limited; the limits are checked before validation (which is
    # quadratic in a selection set's width), validation only for what they let through.
    tokens = settings.max_query_tokens if settings is not None else QueryLimits().tokens
    typing = TypedErrors(hide_suggestions=not introspection, metrics=metrics)
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: TypedErrors(hide_suggestions=not introspection, metrics=metrics),
        lambda: CachedParse(tokens),
    ]
    limited: LimitQueries | None = None
    counter = OperationCounter(metrics) if metrics is not None else None
    if settings is not None:
        limits = QueryLimits(
            depth=settings.max_query_depth,
            aliases=settings.max_query_aliases,
            tokens=settings.max_query_tokens,
            cost=settings.max_query_cost,
            fields=settings.max_query_fields,
        )

        def rejected(reason: str, context: ExecutionContext) -> None:
            # The operation itself is counted (as an error) by CountOperations.
            if metrics is not None:
                metrics.add(metrics.rejected_queries, reason)

        extensions.append(lambda: LimitQueries(limits, on_reject=rejected))
        limited = LimitQueries(limits)
    extensions.append(CachedValidation)
    rules = tuple(specified_rules)
    if not introspection:
        extensions.append(DisableIntrospection)
        rules += (NoSchemaIntrospectionCustomRule,)
    if allow_list is not None:
        allowed = allow_list
        extensions.append(lambda: AllowListedOnly(allowed))
    if counter is not None:
        extensions.append(lambda: CountOperations(counter))
    checks = Checks(
        typing=typing, rules=rules, limits=limited, allow_list=allow_list, counter=counter
    )
    return TalkgateSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(scalar_map=SCALARS),
        extensions=extensions,
        execution_context_class=FastExecutionContext,
        checks=checks,
    )
