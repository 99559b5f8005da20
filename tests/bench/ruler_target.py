"""A server for the ruler's own test: it keeps every request body it is sent, and answers as
the body asks (`fail`: 500; `errs`: 200 with an `"errors"` key; else 200)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

BODIES: list[str] = []


async def sink(request: Request) -> Response:
    body = await request.body()
    BODIES.append(body.decode())
    if b"fail" in body:
        return Response(b"no", status_code=500)
    if b"errs" in body:
        return Response(b'{"data":null,"errors":[{"message":"x"}]}', media_type="application/json")
    return Response(b'{"data":{}}', media_type="application/json")


async def seen(request: Request) -> Response:
    return JSONResponse(BODIES)


async def forget(request: Request) -> Response:
    BODIES.clear()
    return Response(b"")


app = Starlette(
    routes=[
        Route("/sink", sink, methods=["POST"]),
        Route("/seen", seen, methods=["GET"]),
        Route("/forget", forget, methods=["POST"]),
        Route("/readyz", lambda r: Response(b"ok"), methods=["GET"]),
    ]
)
