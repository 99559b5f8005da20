"""The explorer: talkgate's own GraphiQL build (explorer/), served with a strict CSP.

`cd explorer && npm ci && npm run build` writes it into gateway/static/explorer/, which is
committed and ships in the package (CI rebuilds it and fails when the two differ). The page
loads only same-origin files and talks only to this gateway, so its policy allows nothing
else: no CDN, no inline script, and inline style only with the nonce of the response (one
`<style>` GraphiQL's dialogs add at run time). Should the build be missing, browsers get a
page saying how to build it, with no script at all; never GraphiQL from a CDN.
"""

from __future__ import annotations

import html
import logging
import secrets
from pathlib import Path

from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

log = logging.getLogger("talkgate")

EXPLORER_DIR = Path(__file__).parent.parent / "static" / "explorer"
BUILD_COMMAND = "cd explorer && npm ci && npm run build"
_KEY_PLACEHOLDER = b'<meta name="talkgate-demo-key" content="" />'
_NONCE_PLACEHOLDER = b' nonce=""'


def policy(style_nonce: str | None = None) -> str:
    """The explorer's Content-Security-Policy; its page's admits inline style by nonce."""
    style = f"'self' 'nonce-{style_nonce}'" if style_nonce else "'self'"
    return (
        f"default-src 'self'; script-src 'self'; style-src {style};"
        " img-src 'self' data:; font-src 'self' data:; connect-src 'self';"
        " frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )


POLICY = policy()
_FRAMING = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
HEADERS = [(b"content-security-policy", POLICY.encode()), *_FRAMING]


class ExplorerPage:
    """The built page (an ASGI app) and the routes of its assets."""

    built = True

    def __init__(self, directory: Path, *, demo_key: str | None = None) -> None:
        page = (directory / "index.html").read_bytes()
        if demo_key is not None:
            filled = f'<meta name="talkgate-demo-key" content="{html.escape(demo_key)}" />'
            page = page.replace(_KEY_PLACEHOLDER, filled.encode())
        self._page = page
        self._assets = StaticFiles(directory=directory)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        nonce = secrets.token_urlsafe(16)
        page = self._page.replace(_NONCE_PLACEHOLDER, f' nonce="{nonce}"'.encode())
        headers = [(b"content-security-policy", policy(nonce).encode()), *_FRAMING]
        response = Response(page, media_type="text/html", headers={"Cache-Control": "no-store"})
        await response(scope, receive, _with_headers(send, headers))

    async def _asset(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._assets(scope, receive, _with_headers(send, HEADERS))

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/explorer", self, methods=["GET"]),
            Mount("/explorer/assets", app=self._asset),
        ]


NOT_BUILT_POLICY = "default-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
_NOT_BUILT = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>talkgate: the explorer is not built</title>
</head><body>
<h1>The explorer is not built</h1>
<p>This gateway serves its own GraphiQL page once it has been built. From the repository,
run:</p>
<pre>{html.escape(BUILD_COMMAND)}</pre>
<p>then restart the gateway. Queries are answered meanwhile: <code>POST /graphql</code>
with <code>Authorization: Bearer &lt;key&gt;</code>.</p>
</body></html>
""".encode()


class NotBuiltPage:
    """What /explorer and a browser on /graphql get without a build: how to build it."""

    built = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-security-policy", NOT_BUILT_POLICY.encode()), *_FRAMING]
        response = Response(
            _NOT_BUILT, media_type="text/html", headers={"Cache-Control": "no-store"}
        )
        await response(scope, receive, _with_headers(send, headers))

    def routes(self) -> list[BaseRoute]:
        return [Route("/explorer", self, methods=["GET"])]


def explorer_page(directory: Path, *, demo_key: str | None = None) -> ExplorerPage | NotBuiltPage:
    """The page built in `directory`, or the page saying how to build it."""
    if not (directory / "index.html").is_file():
        return NotBuiltPage()
    return ExplorerPage(directory, demo_key=demo_key)


def log_not_built() -> None:
    log.info(
        "the explorer is not built: browsers get a page saying how to build it; build it with `%s`",
        BUILD_COMMAND,
    )


def _with_headers(send: Send, headers: list[tuple[bytes, bytes]]) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *headers]}
        await send(message)

    return wrapped
