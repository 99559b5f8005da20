"""The GraphQL edge: the one place the schema is built, errors are typed, and requests enter."""

from __future__ import annotations

import hashlib
import logging
import re
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from json import JSONDecodeError
from typing import Any, TypeAlias, cast
from urllib.parse import parse_qsl, urlencode

import orjson
import strawberry
from cross_web import AsyncHTTPRequestAdapter, HTTPException
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
    get_operation_ast,
    print_schema,
    specified_rules,
)
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import OperationType as GraphQLOperationType
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.execution import optimized_is_awaitable
from strawberry.extensions import DisableIntrospection, SchemaExtension
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.exceptions import (
    NonJsonMessageReceived,
    NonTextMessageReceived,
    WebSocketDisconnected,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.schema.schema import StreamResult
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    SubscribeMessage,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    Message as TransportMessage,
)
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.execution import ExecutionResult as StrawberryExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET, UnsetType

from gateway.auth import KeyRing, Principal, principal
from gateway.deadlines import Deadlines
from gateway.errors import (
    BadUserInput,
    PersistedQueryNotFound,
    PersistedQueryNotSupported,
    RateLimited,
    ServiceUnavailable,
    TalkgateError,
    Unauthenticated,
)
from gateway.graphql.coalesced_streams import CoalescedStreams
from gateway.graphql.execution import FastExecutionContext
from gateway.graphql.limits import LimitQueries, QueryLimits, is_token_limit_error, too_complex
from gateway.graphql.over_http import (
    GRAPHQL_RESPONSE,
    JSON,
    MEDIA_KEY,
    NOT_ACCEPTABLE,
    MalformedRequest,
    check_document,
    check_posted,
    check_query_string,
    error_response,
    negotiate,
)
from gateway.graphql.parsing import CachedParse, CachedValidation, parse_document, validate_cached
from gateway.graphql.persisted import (
    AllowListedOnly,
    PersistedQueries,
    PersistedQueryPolicy,
    document_hash,
)
from gateway.graphql.response_cache import (
    Cacheability,
    CachedResponse,
    ResponseCache,
    cache_key,
    matches,
)
from gateway.http.compression import ENCODING_KEY, tagged, with_vary
from gateway.http.request_body import ClientDisconnect, read_limited
from gateway.logs import request_id_var
from gateway.metrics import Metrics
from gateway.nesting import TooDeep, decode_limited
from gateway.ratelimit import RateLimiter
from gateway.settings import Settings
from gateway.storage import StoreUnavailable
from resolvers.context import RequestContext, Services
from resolvers.mutation import Mutation
from resolvers.query import Query
from resolvers.subscription import Subscription
from schema.node import without_type_checks
from schema.scalars import SCALARS

log = logging.getLogger("talkgate.graphql")

PRINCIPAL_KEY = "talkgate.principal"
# What a POST may run (subscriptions run over WebSocket only), and what
# GraphQLView.answer_decoded runs of it itself.
_POST_OPERATIONS = frozenset({OperationType.QUERY, OperationType.MUTATION})
_DECODED_OPERATIONS = frozenset({GraphQLOperationType.QUERY, GraphQLOperationType.MUTATION})
# Set by the view on the request's scope: whether the operation ended without errors.
RESULT_OK_KEY = "talkgate.result_ok"
_SUGGESTION = re.compile(r" Did you mean .*\?$")
# graphql-core quotes rejected input values in its messages, and inputs may be passwords: each
# rule below words one of its messages (3.2 and 3.3) as a whole sentence without the value.
# Names from the schema (types, enum values, fields) and from the document's structure
# (selected fields, arguments, input fields, variables) stay: they say what to fix. An enum
# value given is a value, and is not quoted.
_SCRUBS: tuple[tuple[re.Pattern[str], str], ...] = (
    # 3.2: "Variable '$x' got invalid value <value> at 'x.y'; <why>"
    (
        re.compile(r"^(Variable '\$[^']*') got invalid value .*?(?=( at '[^']*')?; )", re.S),
        r"\1 got an invalid value",
    ),
    # "Value '<value>' does not exist in 'TalkStatus' enum."
    (
        re.compile(r"\bValue '.*' does not exist in '(\w+)' enum\.", re.S),
        r"The value given does not exist in the '\1' enum.",
    ),
    # "Int cannot represent non-integer value: <value>", suggestions kept.
    (
        re.compile(r"(cannot represent [^:;]*?value): (?:.*(?=\. Did you mean [^.]*\?$)|.*)", re.S),
        r"\1",
    ),
    # The lexer and parser: "Unexpected String '<value>'.", "found Int '<value>'", ...
    (
        re.compile(
            r"(Unexpected|found) (Name|String|BlockString|Int|Float) '.*'(?=\.$| is )", re.S
        ),
        r"\1 \2",
    ),
    (re.compile(r"(Invalid number, expected digit) but got: .*$", re.S), r"\1."),
    (re.compile(r"(Invalid number, unexpected digit after 0): .*$", re.S), r"\1."),
    (re.compile(r"(Invalid number, expected digit before '\.'), .*$", re.S), r"\1."),
    (re.compile(r"(Invalid (?:Unicode|character) escape sequence): .*$", re.S), r"\1."),
)
# Validation: "..., found: {...}.", "..., found "x".", "... Found: {...}."
_FOUND = re.compile(r",? [Ff]ound:? .*$", re.S)
_SYNTAX = "Syntax Error:"


def scrub_values(message: str) -> str:
    """`message` without the input values graphql-core quotes in it, ending as a sentence."""
    for pattern, replacement in _SCRUBS:
        message = pattern.sub(replacement, message)
    if not message.startswith(_SYNTAX):  # the parser's "found <token kind>" says no value
        message = re.sub(r"([?.])\.$", r"\1", _FOUND.sub(".", message))
    message = message.rstrip()
    # graphql-core writes sentences (talkgate's own messages are phrases, and stay so).
    if message[:1].isupper() and not message.endswith((".", "?", "!")):
        message += "."
    return message


class TypedErrors(SchemaExtension):
    """Give every error its `extensions.code`; mask the unexpected ones.

    Expected failures are TalkgateError subclasses, raised by resolvers and loaders. Parse,
    validation and variable errors are the caller's: BAD_USER_INPUT (QUERY_TOO_COMPLEX when a
    limit stopped them). Anything else is a bug: its message is replaced, and its trace goes
    to the log under the request id.
    """

    def __init__(self, *, hide_suggestions: bool = False, metrics: Metrics | None = None) -> None:
        self.hide_suggestions = hide_suggestions
        self.metrics = metrics

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if result is not None and errors:
            result.errors = [self.typed(e) for e in errors]

    def typed(self, error: GraphQLError) -> GraphQLError:
        """`error` with its code, its message scrubbed or masked (see the class)."""
        original = error.original_error
        if isinstance(original, TalkgateError):
            if error.message == original.message and error.extensions is original.extensions:
                return error  # typed already (graphql-core took the original's extensions)
            return _with(error, original.message, original.extensions)
        if isinstance(original, StoreUnavailable):
            log.warning("store unavailable: %s", original)
            return _with(
                error, "the store is unavailable, retry later", {"code": ServiceUnavailable.code}
            )
        if original is None or isinstance(original, GraphQLError):
            # Parse, validation and variable-coercion errors: the document or its inputs.
            if is_token_limit_error(error):
                if self.metrics is not None:
                    self.metrics.add(self.metrics.rejected_queries, "tokens")
                limited = too_complex("tokens", _token_count(error), _token_limit(error))
                return _with(error, limited.message, dict(limited.extensions or {}))
            message = scrub_values(error.message)
            if self.hide_suggestions:
                message = _SUGGESTION.sub("", message)
            code = (error.extensions or {}).get("code", BadUserInput.code)
            return _with(error, message, {**(error.extensions or {}), "code": code})
        request_id = request_id_var.get()
        log.error(
            "unexpected error in %s",
            ".".join(str(p) for p in error.path or ()) or "operation",
            exc_info=(type(original), original, original.__traceback__),
        )
        return _with(
            error,
            "Internal server error",
            {"code": TalkgateError.code, "requestId": request_id},
        )


def _token_limit(error: GraphQLError) -> int:
    found = re.search(r"more than (\d+) tokens", error.message)
    return int(found.group(1)) if found else 0


def _token_count(error: GraphQLError) -> int:
    # graphql-core stops counting at the limit; the document holds at least one more.
    return _token_limit(error) + 1


def _with(error: GraphQLError, message: str, extensions: dict[str, Any]) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions,
    )


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
    `_Schema.execute_checked` uses the same parts without strawberry's extension runner."""

    typing: TypedErrors
    rules: tuple[type[ASTValidationRule], ...]
    limits: LimitQueries | None
    allow_list: Mapping[str, str] | None
    counter: OperationCounter | None


class _Schema(strawberry.Schema):
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
        operation they pass here would pass them there. tests/gateway/test_decoded_path.py
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
    parsed = _parsed_operation(query, operation_name, context.settings.max_query_tokens)
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
    return _Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(scalar_map=SCALARS),
        extensions=extensions,
        execution_context_class=FastExecutionContext,
        checks=checks,
    )


ANONYMOUS = Principal("anonymous", frozenset())


async def take_token(
    limiter: RateLimiter, principal: Principal, settings: Settings, metrics: Metrics | None
) -> RateLimited | None:
    """One token from the caller's bucket for one operation, whatever its transport (an HTTP
    request, a WebSocket `subscribe`); the refusal when the bucket is empty."""
    wait = await limiter.take(principal.name)
    if wait is None:
        return None
    if metrics is not None:
        metrics.rate_limited.inc()
    seconds = max(1, round(wait + 0.5))
    return RateLimited(
        f"rate limit of {settings.rate_limit_per_minute} operations a minute reached",
        retryAfter=seconds,
    )


class _TextFrames(ASGIWebSocketAdapter):
    """graphql-transport-ws messages are JSON text frames; clients reject binary ones.

    A frame nested deeper than `max_json_depth` closes the socket 4400, the protocol's answer
    to a message it cannot take, with the reason.
    """

    @property
    def limiter(self) -> RateLimiter:
        limiter: RateLimiter = self.ws.state.limiter
        return limiter

    async def iter_json(
        self, *, ignore_parsing_errors: bool = False
    ) -> AsyncGenerator[object, None]:
        try:
            while self.ws.application_state != WebSocketState.DISCONNECTED:
                text = await self.ws.receive_text()
                try:
                    message = self.view.decode_json(text)
                except TooDeep as exc:
                    await self.close(4400, exc.msg)
                    return
                except JSONDecodeError as exc:
                    if ignore_parsing_errors:
                        continue
                    raise NonJsonMessageReceived from exc
                yield message
        except KeyError as exc:  # a binary frame has no "text"
            raise NonTextMessageReceived from exc
        except WebSocketDisconnect:
            pass

    async def send_json(self, message: Mapping[str, object]) -> None:
        try:
            await self.ws.send_text(orjson.dumps(message).decode())
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc


_MESSAGE_TYPES = frozenset({"connection_init", "ping", "pong", "subscribe", "complete"})
# Echoed in a 4409 close reason, which a close frame holds only 123 bytes of.
_MAX_ID_BYTES = 64
_SUBSCRIBE_FIELDS: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("query", str),
    ("variables", (dict, type(None))),
    ("operationName", (str, type(None))),
    ("extensions", (dict, type(None))),
)


def _malformed(message: object) -> str | None:
    """Why `message` is not a graphql-transport-ws message strawberry can take, or None."""
    if not isinstance(message, dict):
        return "a message must be a JSON object"
    kind = message.get("type")
    if not isinstance(kind, str) or kind not in _MESSAGE_TYPES:
        return "unknown message type"
    if kind in ("subscribe", "complete"):
        op_id = message.get("id")
        if not isinstance(op_id, str) or not 0 < len(op_id.encode()) <= _MAX_ID_BYTES:
            return f"a message id must be a string of 1 to {_MAX_ID_BYTES} bytes"
    if kind == "subscribe":
        payload = message.get("payload")
        if not isinstance(payload, dict) or not all(
            isinstance(payload.get(name), kinds)
            for name, kinds in _SUBSCRIBE_FIELDS
            if name in payload or name == "query"
        ):
            return "a subscribe payload needs a `query` string (and optional `variables`)"
    return None


def _pre_execution_typed(error: GraphQLError, typing: TypedErrors) -> GraphQLError:
    """`error` with its `extensions.code`: a document naming no operation it has (or several
    without a name) is the caller's, not a bug to mask."""
    if (error.extensions or {}).get("code"):
        return error
    original = error.original_error
    if isinstance(original, CannotGetOperationTypeError):
        # Not strawberry's reason: it quotes the name sent, and inputs are never quoted.
        message = (
            "the document has no operation to run: name one with `operationName`"
            if original.operation_name is None
            else "the document has no operation of the `operationName` given"
        )
        return _with(error, message, {"code": BadUserInput.code})
    return typing.typed(error)


def _parsed_operation(
    query: str, name: str | None, max_tokens: int
) -> tuple[DocumentNode, OperationDefinitionNode | None] | None:
    """`query` parsed (through the shared cache) and the operation GraphQL's GetOperation
    finds in it: None for none of that `name`, or, without one, for several (strawberry
    would run the first). None for a document that does not parse, which the execution
    reports."""
    try:
        document = parse_document(query, max_tokens)
    except GraphQLError:
        return None
    return document, get_operation_ast(document, name)


def _runs_no_operation(query: str, name: str | None, max_tokens: int) -> bool:
    """Whether `query` parses but has no operation to run by GraphQL's GetOperation."""
    parsed = _parsed_operation(query, name, max_tokens)
    return parsed is not None and parsed[1] is None


class _LimitedOperations(BaseGraphQLTransportWSHandler[RequestContext, None]):
    """strawberry's graphql-transport-ws handler, with every operation (query, mutation or
    subscription) taking a token from its key's bucket, the one HTTP requests take from.

    Over the limit, the operation gets the protocol's `error` message (RATE_LIMITED, with
    `retryAfter`) and the socket stays open. A message strawberry would trip over (not an
    object, a list for a payload, ...) closes the socket 4400 instead.

    Where strawberry (0.341.2) departs from the protocol, this class follows it (the fix for
    strawberry itself is patches/strawberry-graphql-transport-ws.patch; tests/gateway/
    test_ws_protocol.py fails once a release has it, and these overrides can go):
    a `connection_init` whose payload is `null` is one without parameters; a document that
    does not parse, or has no operation to run, is an `error` message for its operation,
    not a 4400 for the socket; and every `error` message carries `extensions.code`.
    """

    async def handle_message(self, message: TransportMessage) -> None:
        problem = _malformed(message)
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        await super().handle_message(message)

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        # PROTOCOL.md: `payload?: Record<string, unknown> | null`; strawberry refuses null.
        if message.get("payload") is None:
            message = {"type": "connection_init", "payload": {}}
        await super().handle_connection_init(message)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        # Before the ack, or for an id in use, strawberry closes the socket: no token.
        if self.connection_acknowledged and message["id"] not in self.operations:
            limit = self.max_subscriptions_per_connection
            if limit is not None and len(self.operations) >= limit:
                await self._refuse(
                    message["id"],
                    GraphQLError(
                        f"Subscription limit reached: at most {limit} operations at once"
                        " on one connection",
                        extensions={"code": BadUserInput.code, "limit": limit},
                    ),
                )
                return
            view = cast(GraphQLView, self.view)
            refused = await view.admit(cast(_TextFrames, self.websocket).limiter, self.context)
            if refused is not None:
                await self._refuse(
                    message["id"], GraphQLError(refused.message, extensions=refused.extensions)
                )
                return
            payload = message["payload"]
            # A name the document lacks strawberry reports itself (_pre_execution_typed).
            if payload.get("operationName") is None and _runs_no_operation(
                payload["query"], None, view.settings.max_query_tokens
            ):
                # GraphQL's GetOperation, as over HTTP: strawberry would run the first of
                # several operations when none is named.
                await self._refuse(
                    message["id"],
                    GraphQLError(
                        "the document has no operation to run: name one with `operationName`",
                        extensions={"code": BadUserInput.code},
                    ),
                )
                return
        await super().handle_subscribe(message)

    async def _refuse(self, op_id: str, error: GraphQLError) -> None:
        await self.send_message({"id": op_id, "type": "error", "payload": [error.formatted]})

    async def _handle_pre_execution_error(
        self, operation: Operation[RequestContext, None], result: PreExecutionError
    ) -> None:
        # A document that does not parse, or has no operation to run, ends here before
        # TypedErrors has seen it.
        view = cast(GraphQLView, self.view)
        typing = TypedErrors(hide_suggestions=True, metrics=view.metrics)
        result.errors = [_pre_execution_typed(e, typing) for e in result.errors or ()]
        await super()._handle_pre_execution_error(operation, result)

    @staticmethod
    def _get_pre_execution_close_reason(error: GraphQLError) -> str | None:
        # Every error before execution (syntax, unknown operation name) is the operation's
        # `error` message, as validation errors are: the socket and its other operations stay.
        return None


class GraphQLView(GraphQL[RequestContext, None]):
    """strawberry's ASGI view: talkgate's context, orjson, WebSocket keys in connection_init;
    HTTP answers in the media type GraphQLEndpoint negotiated, every refusal a typed error.

    Only graphql-transport-ws is spoken; the legacy graphql-ws protocol stays off.
    """

    graphql_transport_ws_handler_class = _LimitedOperations

    def __init__(
        self,
        schema: strawberry.Schema,
        settings: Settings,
        keys: KeyRing,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(
            schema,
            # Never strawberry's GraphiQL (public CDNs, inline script): the explorer page is
            # served by GraphQLEndpoint.
            graphql_ide=None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
        )
        self.settings = settings
        self.keys = keys
        self.metrics = metrics
        self.websocket_adapter_class = _TextFrames
        self._streams_incrementally = schema.config.enable_experimental_incremental_execution
        # A socket that has not said who it is by then is closed (4408), as a connection that
        # has not sent its headers is (gateway/http/server.py).
        self.connection_init_wait_timeout = timedelta(seconds=settings.header_timeout_s)

    async def admit(self, limiter: RateLimiter, context: RequestContext) -> RateLimited | None:
        """None when the socket's key may run one more operation; else the refusal."""
        return await take_token(limiter, context.caller, self.settings, self.metrics)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> RequestContext:
        services: Services = request.state.services
        return RequestContext(
            caller=request.scope.get(PRINCIPAL_KEY) or ANONYMOUS,
            services=services,
            request_id=request_id_var.get(),
            client_host=request.client.host if request.client else None,
        )

    async def on_ws_connect(self, context: RequestContext) -> UnsetType | dict[str, object]:
        """Accept the socket only for `{"authorization": "Bearer <key>"}` in connection_init."""
        params = context.connection_params or {}
        given = params.get("authorization", params.get("Authorization"))
        caller = principal(
            self.keys,
            given if isinstance(given, str) else None,
            context.client_host,
            demo=self.settings.demo,
        )
        if caller is None:
            raise ConnectionRejectionError({"reason": "a valid API key is required"})
        context.caller = caller
        return cast(UnsetType, UNSET)

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        # Every frame and body strawberry decodes; the HTTP edge has refused deep ones already.
        return decode_limited(data, self.settings.max_json_depth)

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        # The response cache keeps only answers without errors; it reads this flag.
        request.scope[RESULT_OK_KEY] = not result.errors
        processed = await super().process_result(request, result)
        if never_executed(result):
            # GraphQL: "If an error was raised before execution begins, the data entry
            # should not be present in the result."
            del processed["data"]
            request.scope[_REQUEST_ERROR_KEY] = True
        return processed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        response = await self.respond(Request(scope, receive))
        await response(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        offered = scope.get("subprotocols") or ()
        if offered and GRAPHQL_TRANSPORT_WS_PROTOCOL not in offered:
            # A client that asked for subprotocols fails a 101 without one of them (browsers,
            # Node's ws: 1006), so the refusal is the handshake's own: 403, no 101. A client
            # asking for none gets the protocol's 4406 after the 101, as strawberry sends it.
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1002})
            return
        await super().__call__(scope, receive, send)

    async def respond(self, request: Request) -> ASGIApp:
        """strawberry's answer to an HTTP request, in the media type the endpoint chose, and
        every refusal as a GraphQL error with its code (strawberry's own are plain text)."""
        media = request.scope.get(MEDIA_KEY, JSON)
        try:
            response = await self.run(request)
        except _Refused as exc:
            status = exc.status if exc.status is not None else _request_error_status(media)
            return error_response(status, exc.message, exc.code, media=media, headers=exc.headers)
        except HTTPException as exc:
            # What the endpoint's checks leave to strawberry never gets here; should one,
            # it is still a JSON error with a code.
            return error_response(exc.status_code, exc.reason, BadUserInput.code, media=media)
        return negotiated(request.scope, response)

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: RequestContext,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """strawberry's, with every refusal of the operation's kind or name typed (its own
        are plain-text 400s)."""
        allowed = _GET_OPERATIONS if request_adapter.method == "GET" else _POST_OPERATIONS
        name = request_data.operation_name
        query = request_data.query
        tokens = self.settings.max_query_tokens
        if query is not None and (parsed := _parsed_operation(query, name, tokens)) is not None:
            document, operation = parsed
            if operation is None:
                raise _refused(CannotGetOperationTypeError(name), request_adapter.method)
            # A GET, or a POST the decoded path left to the view (answer_decoded).
            if OperationType(operation.operation.value) in allowed:
                checked = await cast(_Schema, self.schema).execute_checked(
                    query,
                    document,
                    operation,
                    request_data.variables,
                    context,
                    request_data.extensions,
                )
                if checked is not None:
                    return checked
        try:
            return await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except (CannotGetOperationTypeError, InvalidOperationTypeError, MissingQueryError) as exc:
            raise _refused(exc, request_adapter.method) from None

    async def answer_decoded(self, request: Request, params: Mapping[str, Any]) -> Response | None:
        """The answer strawberry's view gives a POSTed JSON query or mutation, from the body
        the edge has decoded already; None for what only the view takes, which answers it.

        The view would decode the body a second time, and builds a request adapter, a
        sub-response and its request data before it gets to `schema.execute`: 2 % of a
        cold W1 page's instructions (bench.instructions). Only the plain case comes
        here: an operation that exists in a document that parses, with a string `query`,
        object-or-null `variables` and `extensions`, a string-or-null `operationName`, no
        streaming transport asked for by `Accept`, and never a subscription. Everything
        else (and every refusal the view words itself) goes to the view, unchanged; so
        does everything when the schema streams incremental results (@defer), which this
        path does not write. tests/gateway/test_decoded_path.py holds the two to the same
        answers.
        """
        if self._streams_incrementally:
            return None
        query = params.get("query")
        variables = params.get("variables")
        extensions = params.get("extensions")
        name = params.get("operationName")
        if (
            not isinstance(query, str)
            or not (variables is None or isinstance(variables, dict))
            or not (extensions is None or isinstance(extensions, dict))
            or not (name is None or isinstance(name, str))
            or self._get_stream_transport_from_headers(request.headers) is not None
        ):
            return None
        parsed = _parsed_operation(query, name, self.settings.max_query_tokens)
        if parsed is None:
            return None
        document, operation = parsed
        if operation is None or operation.operation not in _DECODED_OPERATIONS:
            return None
        context = await self.get_context(request, response=request)  # type: ignore[arg-type]
        schema = cast(_Schema, self.schema)
        checked = await schema.execute_checked(
            query, document, operation, variables, context, extensions
        )
        try:
            result = checked or await schema.execute(
                query,
                variable_values=variables,
                context_value=context,
                operation_name=name,
                allowed_operation_types=_POST_OPERATIONS,
                operation_extensions=extensions,
            )
        except (CannotGetOperationTypeError, InvalidOperationTypeError, MissingQueryError):
            return None  # raised before anything ran: the view words the refusal
        response_data = await self.process_result(request, result)
        if result.errors:
            self._handle_errors(result.errors, response_data)
        return negotiated(
            request.scope,
            Response(self.encode_json(response_data), status_code=200, media_type=JSON),
        )


# What each method may run over HTTP; subscriptions run over WebSocket only.
_GET_OPERATIONS = frozenset({OperationType.QUERY})
_REQUEST_ERROR_KEY = "talkgate.request_error"


def never_executed(result: ExecutionResult) -> bool:
    """Whether `result` holds errors raised before execution began (parse, validation,
    variable coercion, a refusal of an extension): no data, and no error at a field's path."""
    errors = result.errors
    return result.data is None and bool(errors) and all(e.path is None for e in errors or ())


def _request_error_status(media: str) -> int:
    """The status of a GraphQL response that never reached execution: 200 under
    application/json (legacy clients read every response from a 200), 400 under
    application/graphql-response+json."""
    return 400 if media == GRAPHQL_RESPONSE else 200


def negotiated(scope: Scope, response: Response) -> Response:
    """`response` (a GraphQL response as JSON) as the media type chosen for `scope`, with its
    status code."""
    media = scope.get(MEDIA_KEY, JSON)
    if media != JSON and response.media_type == JSON:
        response.headers["content-type"] = media
        if scope.get(_REQUEST_ERROR_KEY):
            response.status_code = _request_error_status(media)
    return response


class _Refused(Exception):
    """An operation refused for its kind or name before it ran; `status` None: the status of
    a request error (`_request_error_status`)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = BadUserInput.code
        self.status = status
        self.headers = headers


def _refused(error: Exception, method: str) -> _Refused:
    """The typed refusal of strawberry's `error`; no name the client gave is quoted."""
    if isinstance(error, InvalidOperationTypeError):
        if error.operation_type is OperationType.SUBSCRIPTION:
            return _Refused(
                "subscriptions run over WebSocket (graphql-transport-ws at /graphql), not over HTTP"
            )
        if method == "GET":
            return _Refused(
                "mutations are not allowed over GET: send them by POST",
                status=405,
                headers={"Allow": "POST"},
            )
    if isinstance(error, CannotGetOperationTypeError):
        if error.operation_name is None:
            return _Refused(
                "the document must hold exactly one operation, or name the one to run in"
                " `operationName`"
            )
        return _Refused("the document holds no operation of the name given in `operationName`")
    return _Refused("a GraphQL document is required in `query`", status=400)


class GraphQLEndpoint:
    """Authenticates, rate-limits and size-limits a request, then hands it to the view.

    A browser asking for the page gets GraphiQL without a key (the key goes in its headers
    tab); every operation needs `Authorization: Bearer <key>`, or 401.
    """

    def __init__(
        self,
        view: GraphQLView,
        keys: KeyRing,
        *,
        settings: Settings,
        metrics: Metrics,
        ide: ASGIApp | None = None,
        persisted: PersistedQueryPolicy | None = None,
    ) -> None:
        self.view = view
        self.keys = keys
        self.settings = settings
        self.metrics = metrics
        # talkgate's own explorer page, or the page saying how to build it; None: GraphiQL off.
        self.ide = ide
        self.persisted = persisted or PersistedQueryPolicy.from_settings(settings)
        graphql_schema = view.schema._schema  # type: ignore[attr-defined]
        self.cacheable = Cacheability(graphql_schema, max_tokens=settings.max_query_tokens)
        # Responses cached by another version of talkgate (a rolling deploy) are not ours.
        self.schema_id = hashlib.sha256(print_schema(graphql_schema).encode()).hexdigest()[:16]
        self._body_keys = BodyKeys()
        self._body_deadlines = Deadlines(settings.body_timeout_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.view(scope, receive, send)
            return
        # Read from the scope itself: a Request, its Headers and State objects cost 14,300
        # of a cached answer's 283,800 instructions (bench.instructions, W1-warm).
        method: str = scope["method"]
        state: dict[str, Any] = scope["state"]
        accept = _header(scope, b"accept")
        if self.ide is not None and method == "GET" and "text/html" in (accept or ""):
            await self.ide(scope, receive, send)
            return
        # Every check below answers the same whatever the response cache holds: the cache
        # is read only for a request that passed them all.
        media = negotiate(accept)
        if media is None:
            response = error_response(406, NOT_ACCEPTABLE, BadUserInput.code)
            await response(scope, receive, send)
            return
        scope[MEDIA_KEY] = media
        if method not in ("GET", "POST"):
            response = error_response(
                405,
                "GraphQL runs here by GET (queries) or POST (queries and mutations)",
                BadUserInput.code,
                media=media,
                headers={"Allow": "GET, POST"},
            )
            await response(scope, receive, send)
            return
        principal = self._principal(scope)
        if principal is None:
            response = error_response(
                401,
                "a valid API key is required: Authorization: Bearer <key>",
                Unauthenticated.code,
                media=media,
                headers={"WWW-Authenticate": 'Bearer realm="talkgate"'},
            )
            await response(scope, receive, send)
            return
        limiter: RateLimiter = state["limiter"]
        refused = await take_token(limiter, principal, self.settings, self.metrics)
        if refused is not None:
            seconds = refused.extensions["retryAfter"]
            response = error_response(
                429,
                refused.message,
                refused.code,
                media=media,
                headers={"Retry-After": str(seconds)},
                retryAfter=seconds,
            )
            await response(scope, receive, send)
            return
        scope[PRINCIPAL_KEY] = principal
        params: dict[str, Any] | None = None
        if method == "POST":
            try:
                body, size = await self._body_deadlines.within(
                    read_limited(receive, self.settings.graphql_max_bytes)
                )
            except ClientDisconnect:
                return  # gone before its body's end: no one to answer
            except TimeoutError:
                # A body trickled in slowly holds a connection as a slow header does.
                response = error_response(
                    408,
                    f"the request body did not arrive within {self.settings.body_timeout_s:g} s",
                    BadUserInput.code,
                    media=media,
                    headers={"Connection": "close"},
                )
                await response(scope, receive, send)
                return
            if size > self.settings.graphql_max_bytes:
                response = error_response(
                    413,
                    f"the request body is over {self.settings.graphql_max_bytes} bytes",
                    BadUserInput.code,
                    media=media,
                )
                await response(scope, receive, send)
                return
            sent: bytes | None = body
            known = self._body_keys.get(body, principal.scopes)
            if known is not None and state["responses"] is not None:
                # The body was decoded and checked before, and its bytes decode the same way
                # again.
                await self._cached_or_view(scope, _replay(body, receive), send, known, body)
                return
            try:
                params, body, sent = await self._posted(body, state["persisted"])
            except TalkgateError as exc:
                await _refusal(exc, media)(scope, receive, send)
                return
            receive = _replay(body, receive)
        elif method == "GET":
            try:
                scope, params = await self._resolve_query_string(scope, state["persisted"])
            except TalkgateError as exc:
                await _refusal(exc, media)(scope, receive, send)
                return
        responses: ResponseCache | None = state["responses"]
        # A POST's operation, decoded: the view need not decode it again.
        decoded = params if method == "POST" else None
        if params is None or responses is None:
            await self._execute(scope, receive, send, decoded)
            return
        cached = self._cache_key(params, principal)
        if cached is None:
            self.metrics.add(self.metrics.response_cache, "uncacheable")
            await self._execute(scope, receive, send, decoded)
            return
        if method == "POST" and sent is not None:
            self._body_keys.put(sent, principal.scopes, cached)
        await self._cached_or_view(scope, receive, send, cached, decoded)

    async def _posted(
        self, body: bytes, documents: PersistedQueries
    ) -> tuple[dict[str, Any], bytes, bytes | None]:
        """A POST body's parameters, checked and with the persisted document it names; the
        body the view reads; and the body as sent when it may stand for them next time.

        Raises BadUserInput (a malformed request) and the persisted queries' errors.
        """
        sent: bytes | None = body
        try:
            data = decode_limited(body, self.settings.max_json_depth)
        except JSONDecodeError as exc:
            # Too deep, or not JSON at all (lone surrogates included: orjson refuses them,
            # and they could never be encoded again).
            reason = exc.msg if isinstance(exc, TooDeep) else f"not valid JSON ({exc.msg})"
            raise BadUserInput(f"the request body: {reason}") from None
        if isinstance(data, list):
            # One token is one operation: a batch would run many on one.
            raise BadUserInput("batches are not accepted: send one operation per request")
        if not isinstance(data, dict):
            raise BadUserInput("the body must be a JSON object with a `query`")
        try:
            check_posted(data)
        except MalformedRequest as exc:
            raise BadUserInput(str(exc)) from None
        params = await self.persisted.resolve(data, documents)
        try:
            check_document(params)
        except MalformedRequest as exc:
            raise BadUserInput(str(exc)) from None
        if params != data:
            body = orjson.dumps(params)
            sent = None  # the body the view reads is not the one sent
        extensions = data.get("extensions")
        if isinstance(extensions, dict) and "persistedQuery" in extensions:
            # Resolving it may register the document again (after the store forgot it):
            # every such body is resolved, none is kept.
            sent = None
        return params, body, sent

    async def _execute(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        decoded: Mapping[str, Any] | bytes | None,
    ) -> None:
        """Runs the operation: from the POST's `decoded` operation (or its body, to decode)
        when GraphQLView.answer_decoded takes it, else through the view."""
        if decoded is not None:
            if isinstance(decoded, bytes):
                params = decode_limited(decoded, self.settings.max_json_depth)
                decoded = params if isinstance(params, dict) else None
            if decoded is not None:
                answer = await self.view.answer_decoded(Request(scope, receive), decoded)
                if answer is not None:
                    await answer(scope, receive, send)
                    return
        await self.view(scope, receive, send)

    async def _cached_or_view(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        cached: tuple[str, str | None],
        decoded: Mapping[str, Any] | bytes | None = None,
    ) -> None:
        """The cached answer under `cached` (a key and the operation's name) while the store
        is at the generation it was computed at; else the operation's (`_execute`), kept
        for the next time."""
        key, operation_name = cached
        state = scope["state"]
        responses: ResponseCache = state["responses"]
        try:
            generation = await state["services"].store.generation()
        except StoreUnavailable:
            # The operation says SERVICE_UNAVAILABLE.
            await self._execute(scope, receive, send, decoded)
            return
        found = await responses.get(key, generation)
        method = scope["method"]
        conditional = Headers(scope=scope).get("if-none-match") if method == "GET" else None
        if found is not None:
            # Served, like an execution: counted with the operations.
            self.metrics.count_operation(operation_name, "query", "ok")
            await self._answer_cached(
                found, method, conditional, send, scope.get(ENCODING_KEY), scope[MEDIA_KEY]
            )
            return
        keeping = self._keeping(scope, send, responses, (key, generation), conditional)
        await self._execute(scope, receive, keeping, decoded)

    def _cache_key(
        self, params: Mapping[str, Any], principal: Principal
    ) -> tuple[str, str | None] | None:
        """The response cache's key for a store-only query and its operation's name; or
        None."""
        document = params.get("query")
        name = params.get("operationName")
        variables = params.get("variables")
        if isinstance(variables, str):  # a GET parameter
            try:
                variables = orjson.loads(variables) if variables else None
            except orjson.JSONDecodeError:
                return None
        if (
            not isinstance(document, str)
            or not (name is None or isinstance(name, str))
            or not (variables is None or isinstance(variables, dict))
        ):
            return None
        analysis = self.cacheable(document)
        if not analysis.store_only:
            return None
        key = cache_key(
            schema_id=self.schema_id,
            document=document,
            operation_name=name or None,
            variables=variables,
            scopes=principal.scopes,
        )
        return key, name or analysis.operation_name

    async def _answer_cached(
        self,
        found: CachedResponse,
        method: str,
        conditional: str | None,
        send: Send,
        codec: str | None,
        media: str,
    ) -> None:
        """A cached answer as `media`: in the form `codec` names (gateway.http.compression) when
        it is large enough to be compressed, kept with the answer so each form is made once.

        Cached answers ran without errors: 200 under either media type, the same bytes."""
        body = found.body
        settings = self.settings
        # Its form depends on Accept-Encoding: said on the 200 and on a 304 alike.
        varies = settings.compression and len(body) >= settings.compress_min_bytes
        encoded = varies and codec is not None
        if encoded:
            assert codec is not None
            body = found.encoded(codec)
        if method == "GET":
            # Each form is its own representation, with its own tag.
            etag = found.etag
            if media != JSON:
                etag = tagged(etag.encode(), _MEDIA_TAG).decode()
            if encoded and codec is not None:
                etag = tagged(etag.encode(), codec).decode()
            headers = self._validators(etag)
            if varies:
                headers = with_vary(headers, b"Accept-Encoding")
            if matches(conditional, etag):
                await send({"type": "http.response.start", "status": 304, "headers": headers})
                await send({"type": "http.response.body", "body": b""})
                return
        else:
            headers = []
        headers += [
            (b"content-type", _CONTENT_TYPES[media]),
            (b"content-length", str(len(body)).encode()),
        ]
        if encoded:
            assert codec is not None
            headers = with_vary(headers, b"Accept-Encoding")
            headers.append((b"content-encoding", codec.encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _keeping(
        self,
        scope: Scope,
        send: Send,
        responses: ResponseCache,
        entry: tuple[str, str],
        conditional: str | None,
    ) -> Send:
        """`send` that keeps a successful answer in the cache (its key, and the generation
        of the store read before it was computed) and gives a GET its ETag."""
        start: Message | None = None
        chunks: list[bytes] = []

        async def keeping(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            if start["status"] != 200 or scope.get(RESULT_OK_KEY) is not True:
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return
            # Sent as a hit is: the same headers, and a 304 when the tag still matches.
            kept = await responses.put(*entry, body)
            await self._answer_cached(
                kept, scope["method"], conditional, send, scope.get(ENCODING_KEY), scope[MEDIA_KEY]
            )

        return keeping

    def _validators(self, etag: str) -> list[tuple[bytes, bytes]]:
        return [
            (b"etag", etag.encode()),
            (b"cache-control", self.settings.response_cache_control.encode()),
            (b"vary", b"Authorization, Accept"),
        ]

    async def _resolve_query_string(
        self, scope: Scope, documents: PersistedQueries
    ) -> tuple[Scope, dict[str, Any]]:
        """A GET's parameters, checked, with the document `extensions` names (a JSON
        parameter). Raises BadUserInput (a malformed request) and the persisted queries'
        errors."""
        query_string = scope.get("query_string", b"").decode("latin-1")
        params: dict[str, Any] = dict(parse_qsl(query_string, keep_blank_values=True))
        try:
            check_query_string(params, self.settings.max_json_depth)
        except MalformedRequest as exc:
            raise BadUserInput(str(exc)) from None
        resolved = await self.persisted.resolve(params, documents)
        try:
            check_document(resolved)
        except MalformedRequest as exc:
            raise BadUserInput(str(exc)) from None
        if resolved == params:
            return scope, params
        return {**scope, "query_string": urlencode(resolved).encode("latin-1")}, resolved

    def _principal(self, scope: Scope) -> Principal | None:
        client = scope.get("client")
        return principal(
            self.keys,
            _header(scope, b"authorization"),
            client[0] if client else None,
            demo=self.settings.demo,
        )


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of header `name` (lower-case, as ASGI gives names), as Starlette's
    Headers.get reads it."""
    for key, value in scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


_CONTENT_TYPES = {JSON: JSON.encode(), GRAPHQL_RESPONSE: GRAPHQL_RESPONSE.encode()}
# Of an ETag, what tells the application/graphql-response+json form from the JSON one (each
# is a representation of its own, as a compressed form is).
_MEDIA_TAG = "gr"

# Apollo clients read PERSISTED_QUERY_NOT_FOUND (and _NOT_SUPPORTED) from a 200 answer.
_REFUSAL_STATUS = {PersistedQueryNotFound.code: 200, PersistedQueryNotSupported.code: 200}


def _refusal(error: TalkgateError, media: str) -> Response:
    status = _REFUSAL_STATUS.get(error.code, 400)
    return error_response(status, error.message, error.code, media=media)


class BodyKeys:
    """The response-cache keys of the last POST bodies seen, by body and caller's scopes.

    The key of a body depends only on its bytes and the scopes: the same bytes decode to
    the same document, variables and operation name. Bodies naming a persisted query are
    never kept: resolving one may have to register its document again. So a body sent again
    skips decoding and
    the key's hashing, which made up a third of a cached answer's cost. Only small bodies,
    and a bounded number of them, are kept.
    """

    MAX_BODY = 4096
    MAX_ENTRIES = 1024

    def __init__(self) -> None:
        self._kept: OrderedDict[tuple[bytes, frozenset[str]], tuple[str, str | None]] = (
            OrderedDict()
        )

    def get(self, body: bytes, scopes: frozenset[str]) -> tuple[str, str | None] | None:
        return self._kept.get((body, scopes))

    def put(self, body: bytes, scopes: frozenset[str], cached: tuple[str, str | None]) -> None:
        if len(body) > self.MAX_BODY:
            return
        self._kept[body, scopes] = cached
        if len(self._kept) > self.MAX_ENTRIES:
            self._kept.popitem(last=False)


def _replay(body: bytes, receive: Receive) -> Receive:
    """Hands the already-read body over once; later calls wait on the real channel."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
