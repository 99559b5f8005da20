"""strawberry's view, talkgate's way: the context, orjson, the media type negotiated, every
refusal typed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, cast

import orjson
import strawberry
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import OperationType as GraphQLOperationType
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET, UnsetType

from gateway.auth import KeyRing, principal
from gateway.errors import (
    BadUserInput,
    RateLimited,
)
from gateway.graphql.admission import ANONYMOUS, PRINCIPAL_KEY, take_token
from gateway.graphql.over_http import (
    GRAPHQL_RESPONSE,
    JSON,
    MEDIA_KEY,
    error_response,
)
from gateway.graphql.parsing import (
    parsed_operation,
)
from gateway.graphql.schema_assembly import TalkgateSchema
from gateway.graphql.websocket import LimitedOperations, TextFrames
from gateway.http.state import state_of
from gateway.logs import request_id_var
from gateway.metrics import Metrics
from gateway.nesting import decode_limited
from gateway.ratelimit import RateLimiter
from gateway.settings import Settings
from resolvers.context import RequestContext

_POST_OPERATIONS = frozenset({OperationType.QUERY, OperationType.MUTATION})
_DECODED_OPERATIONS = frozenset({GraphQLOperationType.QUERY, GraphQLOperationType.MUTATION})
# Set by the view on the request's scope: whether the operation ended without errors.
RESULT_OK_KEY = "talkgate.result_ok"


class GraphQLView(GraphQL[RequestContext, None]):
    """strawberry's ASGI view: talkgate's context, orjson, WebSocket keys in connection_init;
    HTTP answers in the media type GraphQLEndpoint negotiated, every refusal a typed error.

    Only graphql-transport-ws is spoken; the legacy graphql-ws protocol stays off.
    """

    graphql_transport_ws_handler_class = LimitedOperations

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
        self.websocket_adapter_class = TextFrames
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
        return RequestContext(
            caller=request.scope.get(PRINCIPAL_KEY) or ANONYMOUS,
            services=state_of(request.scope)["services"],
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
        if query is not None and (parsed := parsed_operation(query, name, tokens)) is not None:
            document, operation = parsed
            if operation is None:
                raise _refused(CannotGetOperationTypeError(name), request_adapter.method)
            # A GET, or a POST the decoded path left to the view (answer_decoded).
            if OperationType(operation.operation.value) in allowed:
                checked = await cast(TalkgateSchema, self.schema).execute_checked(
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
        path does not write. tests/gateway/graphql/test_decoded_path.py holds the two to the same
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
        parsed = parsed_operation(query, name, self.settings.max_query_tokens)
        if parsed is None:
            return None
        document, operation = parsed
        if operation is None or operation.operation not in _DECODED_OPERATIONS:
            return None
        context = await self.get_context(request, response=request)  # type: ignore[arg-type]
        schema = cast(TalkgateSchema, self.schema)
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
