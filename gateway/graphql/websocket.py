"""GraphQL over WebSocket: graphql-transport-ws, its frames checked, every operation admitted."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from json import JSONDecodeError
from typing import TYPE_CHECKING, cast

import orjson
from graphql import (
    GraphQLError,
)
from starlette.websockets import WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import (
    NonJsonMessageReceived,
    NonTextMessageReceived,
    WebSocketDisconnected,
)
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
from strawberry.types.execution import PreExecutionError

if TYPE_CHECKING:
    from gateway.graphql.view import GraphQLView

from gateway.errors import (
    BadUserInput,
)
from gateway.graphql.parsing import (
    runs_no_operation,
)
from gateway.graphql.typed_errors import TypedErrors, pre_execution_typed
from gateway.http.state import state_of
from gateway.nesting import TooDeep
from gateway.ratelimit import RateLimiter
from resolvers.context import RequestContext


class TextFrames(ASGIWebSocketAdapter):
    """graphql-transport-ws messages are JSON text frames; clients reject binary ones.

    A frame nested deeper than `max_json_depth` closes the socket 4400, the protocol's answer
    to a message it cannot take, with the reason.
    """

    @property
    def limiter(self) -> RateLimiter:
        return state_of(self.ws.scope)["limiter"]

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


class LimitedOperations(BaseGraphQLTransportWSHandler[RequestContext, None]):
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
            view = cast("GraphQLView", self.view)
            refused = await view.admit(cast(TextFrames, self.websocket).limiter, self.context)
            if refused is not None:
                await self._refuse(
                    message["id"], GraphQLError(refused.message, extensions=refused.extensions)
                )
                return
            payload = message["payload"]
            # A name the document lacks strawberry reports itself (pre_execution_typed).
            if payload.get("operationName") is None and runs_no_operation(
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
        view = cast("GraphQLView", self.view)
        typing = TypedErrors(hide_suggestions=True, metrics=view.metrics)
        result.errors = [pre_execution_typed(e, typing) for e in result.errors or ()]
        await super()._handle_pre_execution_error(operation, result)

    @staticmethod
    def _get_pre_execution_close_reason(error: GraphQLError) -> str | None:
        # Every error before execution (syntax, unknown operation name) is the operation's
        # `error` message, as validation errors are: the socket and its other operations stay.
        return None
