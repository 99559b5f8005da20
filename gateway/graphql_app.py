"""The GraphQL edge: the one place the schema is built, errors are typed, and requests enter."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import strawberry
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from gateway.auth import DEMO_PRINCIPAL, KeyRing, Principal, bearer_key, is_loopback
from gateway.errors import TalkgateError
from gateway.logs import request_id_var
from gateway.settings import Settings
from gateway.storage import StoreUnavailable
from resolvers.context import RequestContext, Services
from resolvers.mutation import Mutation
from resolvers.query import Query
from schema.scalars import SCALARS

log = logging.getLogger("talkgate.graphql")

PRINCIPAL_KEY = "talkgate.principal"


class TypedErrors(SchemaExtension):
    """Give every error its `extensions.code`; mask the unexpected ones.

    Expected failures are TalkgateError subclasses, raised by resolvers and loaders. Parse
    and validation errors are the caller's: BAD_USER_INPUT. Anything else is a bug: its
    message is replaced, and its trace goes to the log under the request id.
    """

    def on_operation(self) -> Any:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if result is not None and errors:
            result.errors = [self._typed(e) for e in errors]

    def _typed(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if isinstance(original, TalkgateError):
            return _with(error, original.message, {"code": original.code, **original.extensions})
        if isinstance(original, StoreUnavailable):
            log.warning("store unavailable: %s", original)
            return _with(
                error, "the store is unavailable, retry later", {"code": "SERVICE_UNAVAILABLE"}
            )
        if original is None or isinstance(original, GraphQLError):
            # Parse, validation and variable-coercion errors: the document or its inputs.
            code = (error.extensions or {}).get("code", "BAD_USER_INPUT")
            return _with(error, error.message, {**(error.extensions or {}), "code": code})
        request_id = request_id_var.get()
        log.error(
            "unexpected error in %s",
            ".".join(str(p) for p in error.path or ()) or "operation",
            exc_info=(type(original), original, original.__traceback__),
        )
        return _with(
            error,
            "Internal server error",
            {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
        )


def _with(error: GraphQLError, message: str, extensions: dict[str, Any]) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions,
    )


class _Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # TypedErrors already logged what deserves a log line; expected errors are not news.
        return


def build_schema() -> strawberry.Schema:
    """The talkgate schema; built here and nowhere else."""
    return _Schema(
        query=Query,
        mutation=Mutation,
        config=StrawberryConfig(scalar_map=SCALARS),
        extensions=[TypedErrors],
    )


class GraphQLView(GraphQL[RequestContext, None]):
    """strawberry's ASGI view with talkgate's context and orjson encoding."""

    def __init__(self, schema: strawberry.Schema, settings: Settings) -> None:
        super().__init__(schema, graphql_ide="graphiql", subscription_protocols=())
        self.settings = settings

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> RequestContext:
        services: Services = request.state.services
        caller: Principal = request.scope.get(PRINCIPAL_KEY) or Principal("anonymous", frozenset())
        return RequestContext(caller=caller, services=services, request_id=request_id_var.get())

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)


class GraphQLEndpoint:
    """Authenticates a request, then hands it to the view.

    A browser asking for the page gets GraphiQL without a key (the key goes in its
    headers tab); every operation needs `Authorization: Bearer <key>`, or 401.
    """

    def __init__(self, view: GraphQLView, keys: KeyRing, *, demo: bool) -> None:
        self.view = view
        self.keys = keys
        self.demo = demo

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.view(scope, receive, send)
            return
        request = Request(scope)
        if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            await self.view(scope, receive, send)
            return
        principal = self._principal(request)
        if principal is None:
            response = Response(
                orjson.dumps(
                    {
                        "data": None,
                        "errors": [
                            {
                                "message": "a valid API key is required:"
                                " Authorization: Bearer <key>",
                                "extensions": {"code": "UNAUTHENTICATED"},
                            }
                        ],
                    }
                ),
                status_code=401,
                media_type="application/json",
                headers={"WWW-Authenticate": 'Bearer realm="talkgate"'},
            )
            await response(scope, receive, send)
            return
        scope[PRINCIPAL_KEY] = principal
        await self.view(scope, receive, send)

    def _principal(self, request: Request) -> Principal | None:
        key = bearer_key(request.headers.get("authorization"))
        if key is not None:
            return self.keys.authenticate(key)
        if self.demo and is_loopback(request.client.host if request.client else None):
            return DEMO_PRINCIPAL
        return None
