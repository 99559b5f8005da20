"""The explorer: talkgate's own GraphiQL build (explorer/), served with a strict CSP.

`cd explorer && npm ci && npm run build` writes it into gateway/static/explorer/. The page
loads only same-origin files and talks only to this gateway, so its policy allows nothing
else. Without a build, browsers get strawberry's GraphiQL from public CDNs instead.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

log = logging.getLogger("talkgate")

EXPLORER_DIR = Path(__file__).parent / "static" / "explorer"
BUILD_COMMAND = "cd explorer && npm ci && npm run build"
_KEY_PLACEHOLDER = b'<meta name="talkgate-demo-key" content="" />'

POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline';"
    " img-src 'self' data:; font-src 'self' data:; connect-src 'self';"
    " frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HEADERS = [
    (b"content-security-policy", POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class ExplorerPage:
    """The built page (an ASGI app) and the routes of its assets."""

    def __init__(self, directory: Path, *, demo_key: str | None = None) -> None:
        page = (directory / "index.html").read_bytes()
        if demo_key is not None:
            filled = f'<meta name="talkgate-demo-key" content="{html.escape(demo_key)}" />'
            page = page.replace(_KEY_PLACEHOLDER, filled.encode())
        self._page = page
        self._assets = StaticFiles(directory=directory)

    @classmethod
    def built(cls, directory: Path, *, demo_key: str | None = None) -> ExplorerPage | None:
        """The page in `directory`, or None when it was not built there."""
        if not (directory / "index.html").is_file():
            return None
        return cls(directory, demo_key=demo_key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = Response(
            self._page,
            media_type="text/html",
            headers={"Cache-Control": "no-store"},
        )
        await response(scope, receive, _with_headers(send))

    async def _asset(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._assets(scope, receive, _with_headers(send))

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/explorer", self, methods=["GET"]),
            Mount("/explorer/assets", app=self._asset),
        ]


async def _to_graphiql(request: Request) -> Response:
    return RedirectResponse("/graphql", status_code=307)


def fallback_routes() -> list[BaseRoute]:
    """Without a build, /explorer leads to the CDN GraphiQL on /graphql."""
    return [Route("/explorer", _to_graphiql, methods=["GET"])]


def log_not_built() -> None:
    log.info(
        "the explorer is not built: browsers get GraphiQL from public CDNs; build the"
        " self-hosted one with `%s`",
        BUILD_COMMAND,
    )


def _with_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *HEADERS]}
        await send(message)

    return wrapped
