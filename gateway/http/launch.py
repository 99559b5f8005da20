"""`GET /talkme/launch/{ticket}`: the page that logs an agent into Talk.me from their browser.

Talk.me's external login is an HTML form that opens the agent platform in the browser, so it
must be submitted by the agent's browser, not by talkgate. The page holds the form with the
credentials as hidden inputs and submits it by itself; it is served once, never cached.

Serving the page changes no queue status and publishes nothing: whether Talk.me accepted the
login is answered to the browser, never to talkgate, so nothing here is confirmed.
"""

from __future__ import annotations

import html
import logging
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from gateway.errors import BadUserInput
from gateway.http.state import state_of
from gateway.settings import Settings

log = logging.getLogger("talkgate.launch")

_GONE = """<!doctype html><meta charset="utf-8"><title>Link expired</title>
<p>This login link was already used or has expired. Ask for a new one.</p>"""


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _headers(nonce: str | None, form_action: str | None) -> dict[str, str]:
    policy = "default-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    if nonce is not None:
        policy += f"; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'"
    if form_action is not None:
        policy += f"; form-action {form_action}"
    return {
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
        "Content-Security-Policy": policy,
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
    }


def launch_page(settings: Settings, login: str, password: str, nonce: str) -> str:
    fields = {
        "login": login,
        "password": password,
        "token": settings.talkme_token.get_secret_value() if settings.talkme_token else "",
        "externalLoginToken": (
            settings.talkme_external_login_token.get_secret_value()
            if settings.talkme_external_login_token
            else ""
        ),
    }
    inputs = "\n".join(
        f'<input type="hidden" name="{name}" value="{html.escape(value, quote=True)}">'
        for name, value in fields.items()
    )
    action = html.escape(settings.talkme_login_url, quote=True)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Opening Talk.me</title>
<style nonce="{nonce}">body{{font-family:sans-serif;margin:3em}}</style></head>
<body>
<form id="talkme-login" method="post" action="{action}">
{inputs}
<noscript><button type="submit">Open Talk.me</button></noscript>
</form>
<p>Opening the Talk.me agent platform…</p>
<script nonce="{nonce}">document.getElementById("talkme-login").submit();</script>
</body></html>"""


async def launch(request: Request) -> Response:
    if request.method != "GET":
        # HEAD (link checkers, previews) must not spend the single-use ticket.
        return Response(status_code=405, headers={"Allow": "GET", **_headers(None, None)})
    services = state_of(request.scope)["services"]
    settings, tickets = services.settings, services.tickets
    ticket = request.path_params["ticket"]
    try:
        credentials = await tickets.redeem(ticket)
    except BadUserInput:
        credentials = None
    if credentials is None:
        return HTMLResponse(_GONE, status_code=410, headers=_headers(None, None))
    log.info(
        "login page served (not confirmed by Talk.me)", extra={"agent_login": credentials.login}
    )
    nonce = secrets.token_urlsafe(16)
    page = launch_page(settings, credentials.login, credentials.password, nonce)
    return HTMLResponse(page, headers=_headers(nonce, _origin(settings.talkme_login_url)))
