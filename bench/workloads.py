"""The http_floor benchmark's workloads: its GraphQL documents (W1, W2, W3), the request
bodies wrk sends (numbered, so that no two cold requests are alike) and the webhook's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson

from bench.processes import KEY, SECRET
from bench.ruler import ID_MARK, Load
from bench.talk_layout import Layout
from gateway.demo import renumbered_talk

# The store every workload reads: FILL talks laid out as bench.backends lays them out.
FILL = 2_000
LAYOUT = Layout(block=10_000)

W1_FIELDS = (
    "id customerId agentId queueId channelId createdAt finishedAt wasSuccess isCritical"
    " isWaiting status trackingNumber externalProtocol score customer { id name }"
)


W2_FIELDS = (
    "id customerId agentId queueId channelId createdAt finishedAt wasSuccess status trackingNumber"
)


W1 = (
    "query W1($to: DateTime) { talks(first: 100, filter: {createdTo: $to}) {"
    f" edges {{ node {{ {W1_FIELDS} }} }} }} }}"
)


W2 = (
    "query W2($after: String, $to: DateTime) {"
    " talks(first: 100, after: $after, filter: {createdTo: $to}) {"
    f" edges {{ node {{ {W2_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"
)


W3 = (
    "query W3($to: DateTime) { talks(first: 20, filter: {createdTo: $to}) {"
    " edges { node { id createdAt customer { id name }"
    " histories(first: 50) { edges { node { id message sentAt type from user { id name } } } }"
    " events { id eventId createdAt agentId } } } } }"
)


def webhook_payload(talk_id: int) -> bytes:
    return orjson.dumps(renumbered_talk(talk_id, f"HTTPFLOOR{talk_id}"))


def graphql_load(bodies: Sequence[bytes], *, numbered: bool, gzip: bool = False) -> Load:
    """The gateway's load; `gzip`: asking for compressed answers (Accept-Encoding: gzip),
    whose bodies wrk cannot look into for errors (they are checked first, by httpx)."""
    return Load(
        "/graphql",
        bodies,
        numbered=numbered,
        first_id=ID_FIRST,
        span=ID_SPAN,
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
        | ({"Accept-Encoding": "gzip"} if gzip else {}),
        check_errors=not gzip,
    )


def floor_load(path: str, bodies: Sequence[bytes], *, numbered: bool) -> Load:
    """A floor's load: like the gateway's, but its numbers may start again (`Load.wraps`):
    at the bytes floor's rate a full run sends nearly as many requests as the span holds."""
    return Load(
        path,
        bodies,
        numbered=numbered,
        first_id=ID_FIRST,
        span=ID_SPAN,
        wraps=True,
        headers={"Content-Type": "application/json"},
    )


def body(query: str, variables: dict[str, Any]) -> bytes:
    return orjson.dumps({"query": query, "variables": variables})


# A `createdTo` whose microseconds are the request's number (ID_FIRST + 1 up to 999,999):
# each request's variables differ from every other's, so none is a response-cache hit.
ID_FIRST = 100_000


ID_SPAN = 999_999 - ID_FIRST


FUTURE = "2099-01-01T00:00:00"


def numbered_to(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ID_MARK}+00:00"


def cold_bodies() -> list[bytes]:
    """W1 cold: a window of 100 talks ending at each talk from the 150th on, each request's
    `createdTo` numbered."""
    return [
        body(W1, {"to": numbered_to(LAYOUT.created(talk) + timedelta(seconds=1))})
        for talk in range(150, FILL)
    ]


def cold_to(i: int) -> dict[str, Any]:
    """The variables of the i-th cold W1 request as bench.instructions sends them."""
    talk = 150 + (i % (FILL - 150))
    return {"to": (LAYOUT.created(talk) + timedelta(seconds=1)).isoformat()}


def warm_body() -> bytes:
    return body(W1, {"to": (LAYOUT.created(FILL - 1) + timedelta(seconds=1)).isoformat()})


def substitute(numbered: bytes, number: int = ID_FIRST) -> bytes:
    return numbered.replace(ID_MARK.encode(), str(number).encode())


def webhook_template() -> bytes:
    """The example payload with ID_MARK for the talk's id: its messages' ids are the talk id
    followed by their index, its event's the talk id followed by 0."""
    payload = webhook_payload(TEMPLATE_ID)
    marked = payload.replace(str(TEMPLATE_ID).encode(), ID_MARK.encode())
    if substitute(marked, TEMPLATE_ID) != payload:
        raise RuntimeError("the webhook template does not give the payload back")
    return marked


TEMPLATE_ID = 987_654_321


def webhook_load(first_id: int, *, gateway: bool) -> Load:
    return Load(
        "/webhooks/talks",
        [webhook_template()],
        numbered=True,
        first_id=first_id,
        headers={"Content-Type": "application/json"}
        | ({"X-Webhook-Token": SECRET} if gateway else {}),
        expect=202,
    )
