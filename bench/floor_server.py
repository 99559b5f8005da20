"""The floors of bench.http_floor, a server of its own process (`python -m bench.http_floor
--serve-floor`): the bytes floor answers the gateway's own bytes, the rows floor reads the
same rows through the same store calls and answers them in the GraphQL answer's shape with
orjson, no GraphQL, and the webhook floor only reads the body.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TypedDict

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.settings import Settings
from gateway.storage import TalkStore, open_store
from gateway.storage.documents import Doc, talk_status
from gateway.storage.records import PageRequest, StoreOrder, TalkQuery
from schema.node import encode as global_id

FLOOR_DB_ENV = "BENCH_FLOOR_DATABASE_URL"


# The GraphQL field and the key of the stored document it comes from.
_TALK_KEYS = {
    "id": "id",
    "customerId": "customer_id",
    "agentId": "agent_id",
    "queueId": "queue_id",
    "channelId": "channel_id",
    "createdAt": "created_at",
    "finishedAt": "finished_at",
    "wasSuccess": "was_success",
    "isCritical": "is_critical",
    "isWaiting": "is_waiting",
    "trackingNumber": "tracking_number",
    "externalProtocol": "external_protocol",
    "score": "score",
}


_W2_KEYS = (
    "id",
    "customerId",
    "agentId",
    "queueId",
    "channelId",
    "createdAt",
    "finishedAt",
    "wasSuccess",
    "trackingNumber",
)


_IDS = frozenset({"id", "customerId", "agentId", "queueId", "channelId"})


def _value(name: str, doc: Doc) -> Any:
    if name == "id":
        return global_id("Talk", doc["id"])
    value = doc.get(_TALK_KEYS[name])
    return str(value) if name in _IDS and value is not None else value


def _name(doc: Doc | None, type_name: str) -> dict[str, Any] | None:
    """The `{ id name }` of a customer or an agent (`type_name`), its id the global one."""
    return None if doc is None else {"id": global_id(type_name, doc["id"]), "name": doc.get("name")}


class FloorState(TypedDict):
    store: TalkStore
    blobs: dict[str, bytes]


def _json(data: Any) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


async def put_blob(request: Request) -> Response:
    request.state.blobs[request.path_params["name"]] = await request.body()
    return Response(status_code=204)


async def blob(request: Request) -> Response:
    await request.body()
    name: str = request.path_params["name"]
    # A blob named `...-gzip` is the gateway's gzip-compressed answer: sent as it was.
    encoded = (
        {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"} if name.endswith("-gzip") else {}
    )
    return Response(request.state.blobs[name], media_type="application/json", headers=encoded)


async def read_body(request: Request) -> Response:
    await request.body()
    return Response(b'{"accepted":true}', status_code=202, media_type="application/json")


async def rows_w1(request: Request) -> Response:
    store: TalkStore = request.state.store
    variables = orjson.loads(await request.body()).get("variables") or {}
    to = variables.get("to")
    query = TalkQuery(created_to=None if to is None else datetime.fromisoformat(to))
    page = (
        await store.talk_pages(
            query=query,
            page=PageRequest(first=100),
            order=StoreOrder.CREATED_AT_DESC,
            with_customers=True,
        )
    )[None]
    customers = page.customers
    edges = []
    for doc in page.docs:
        node = {name: _value(name, doc) for name in _TALK_KEYS}
        node["status"] = talk_status(doc)
        node["customer"] = _name(customers.get(doc["customer_id"]), "Customer")
        edges.append({"node": node})
    return _json({"data": {"talks": {"edges": edges}}})


async def rows_w2(request: Request) -> Response:
    store: TalkStore = request.state.store
    variables = orjson.loads(await request.body()).get("variables") or {}
    page = (
        await store.talk_pages(
            query=TalkQuery(),
            page=PageRequest(first=100, after=variables.get("after")),
            order=StoreOrder.CREATED_AT_DESC,
        )
    )[None]
    edges = []
    for doc in page.docs:
        node = {name: _value(name, doc) for name in _W2_KEYS}
        node["status"] = talk_status(doc)
        edges.append({"node": node})
    info = {"hasNextPage": page.has_next, "endCursor": page.end_cursor}
    return _json({"data": {"talks": {"edges": edges, "pageInfo": info}}})


async def rows_w3(request: Request) -> Response:
    store: TalkStore = request.state.store
    await request.body()
    page = (
        await store.talk_pages(
            query=TalkQuery(),
            page=PageRequest(first=20),
            order=StoreOrder.CREATED_AT_DESC,
            with_customers=True,
        )
    )[None]
    talks = list(page.docs)
    ids = [t["id"] for t in talks]
    messages = await store.message_pages(talk_ids=ids, page=PageRequest(first=50))
    events = await store.events_by_talk(ids)
    customers = page.customers
    user_ids = {
        m["user_id"] for p in messages.values() for m in p.docs if m.get("user_id") is not None
    }
    users = await store.agents_by_id(list(user_ids))
    edges = []
    for talk in talks:
        histories = [
            {
                "node": {
                    "id": global_id("TalkHistory", m["id"]),
                    "message": m.get("message"),
                    "sentAt": m.get("sent_at"),
                    "type": m.get("type"),
                    "from": m.get("from"),
                    "user": _name(users.get(m.get("user_id")), "Agent"),  # type: ignore[arg-type]
                }
            }
            for m in messages[talk["id"]].docs
        ]
        node = {
            "id": global_id("Talk", talk["id"]),
            "createdAt": talk.get("created_at"),
            "customer": _name(customers.get(talk["customer_id"]), "Customer"),
            "histories": {"edges": histories},
            "events": [
                {
                    "id": global_id("TalkEvent", e["id"]),
                    "eventId": None if e.get("event_id") is None else str(e["event_id"]),
                    "createdAt": e.get("created_at"),
                    "agentId": None if e.get("agent_id") is None else str(e["agent_id"]),
                }
                for e in events.get(talk["id"], [])
            ],
        }
        edges.append({"node": node})
    return _json({"data": {"talks": {"edges": edges}}})


def floor_app() -> Starlette:
    """The floor: precomputed bytes, the same rows without GraphQL, a body-only webhook."""
    url = os.environ[FLOOR_DB_ENV]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[FloorState]:
        store = open_store(url)
        await store.open()
        try:
            yield {"store": store, "blobs": {}}
        finally:
            await store.close()

    return Starlette(
        routes=[
            Route("/blobs/{name}", put_blob, methods=["PUT"]),
            Route("/bytes/{name}", blob, methods=["POST"]),
            Route("/rows/w1", rows_w1, methods=["POST"]),
            Route("/rows/w2", rows_w2, methods=["POST"]),
            Route("/rows/w3", rows_w3, methods=["POST"]),
            Route("/webhooks/talks", read_body, methods=["POST"]),
            Route("/readyz", lambda r: Response(b"ok"), methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def serve_floor(port: int) -> None:
    """The floor app under the uvicorn configuration `talkgate serve` runs with."""
    import uvicorn

    from gateway.http.server import uvicorn_config

    settings = Settings(_env_file=None, host="127.0.0.1")  # type: ignore[call-arg, unused-ignore]
    uvicorn.Server(uvicorn_config(floor_app(), settings, port=port)).run()
