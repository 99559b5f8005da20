"""A stand-in for Talkk.me that answers like the documented API, for tests and `serve --demo`."""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from urllib.parse import parse_qsl, quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

RECORDINGS_URL = "https://recordings.sandbox.talk.me"


@dataclass(frozen=True)
class RecordedCall:
    """One request the sandbox received: `body` is the parsed JSON, the form fields, or None."""

    method: str
    path: str
    body: object


class SandboxState:
    """The sandbox's agents and tokens, what it received, and the misbehaviour asked of it."""

    def __init__(self, agents: Mapping[str, str], *, token: str, external_login_token: str) -> None:
        self.agents = dict(agents)
        self.token = token
        self.external_login_token = external_login_token
        self.calls: list[RecordedCall] = []
        self._failures: list[int] = []
        self._delay_s = 0.0
        self._garbage: list[bytes] = []
        self._missing: set[str] = set()

    def fail_next(self, n: int, status: int = 503) -> None:
        """Answer the next `n` requests with `status` instead of doing their work."""
        self._failures = [status] * n

    def delay(self, seconds: float) -> None:
        """Wait that long before answering each request."""
        self._delay_s = seconds

    def garbage_next(self, n: int, body: bytes = b"<html>oops") -> None:
        """Answer the next `n` fetchaudio requests with 200 and that body."""
        self._garbage = [body] * n

    def missing(self, protocol: str) -> None:
        """Have no recording for that protocol (fetchaudio answers 404)."""
        self._missing.add(protocol)

    def reset(self) -> None:
        """Forget the calls and every misbehaviour asked for."""
        self.calls.clear()
        self._failures.clear()
        self._delay_s = 0.0
        self._garbage.clear()
        self._missing.clear()

    async def _misbehave(self) -> Response | None:
        """Play the delay and the failure asked for, if any, before a request is answered."""
        if self._delay_s:
            await asyncio.sleep(self._delay_s)
        if self._failures:
            status = self._failures.pop(0)
            return JSONResponse({"error": "sandbox failure"}, status_code=status)
        return None

    def _take_garbage(self) -> bytes | None:
        return self._garbage.pop(0) if self._garbage else None

    def _tokens_ok(self, fields: Mapping[str, object]) -> bool:
        return _same(fields.get("token"), self.token) and _same(
            fields.get("externalLoginToken"), self.external_login_token
        )

    def _credentials_ok(self, fields: Mapping[str, object]) -> bool:
        login = fields.get("login")
        return isinstance(login, str) and _same(fields.get("password"), self.agents.get(login))


def create_sandbox(
    agents: Mapping[str, str], *, token: str, external_login_token: str
) -> Starlette:
    """A Talkk.me look-alike knowing `agents` (login → password).

    Its `SandboxState` is `app.state.sandbox`: what it received, and how it should misbehave.
    """
    state = SandboxState(agents, token=token, external_login_token=external_login_token)
    endpoints = _Endpoints(state)
    app = Starlette(
        routes=[
            Route("/api/external/logout", endpoints.logout, methods=["POST"]),
            Route(
                "/talkme-ui/integration/attendants/status",
                endpoints.attendant_status,
                methods=["POST"],
            ),
            Route(
                "/talkme-ui/external/operational/fetchaudio/{protocol:path}",
                endpoints.fetchaudio,
                methods=["POST"],
            ),
            Route("/login", endpoints.login_form, methods=["POST"]),
            Route(
                "/{anything:path}", endpoints.elsewhere, methods=["GET", "POST", "PUT", "DELETE"]
            ),
        ]
    )
    app.state.sandbox = state
    return app


class _Endpoints:
    """The sandbox's endpoints, each recording what it received (`SandboxState.calls`)."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    async def receive(self, request: Request) -> tuple[object, Response | None]:
        """Record the request, then play any delay or failure asked for."""
        raw = await request.body()
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            body: object = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        else:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
        self.state.calls.append(RecordedCall(request.method, path, body))
        return body, await self.state._misbehave()

    def check_agent(self, body: object) -> Response | Mapping[str, object]:
        if not isinstance(body, dict):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
        if not self.state._tokens_ok(body):
            return JSONResponse({"error": "invalid token"}, status_code=401)
        if not self.state._credentials_ok(body):
            return JSONResponse({"error": "invalid credentials"}, status_code=401)
        return body

    async def agent_call(self, request: Request) -> Response | Mapping[str, object]:
        """An agent's call received (`receive`), then its body checked (`check_agent`): the
        body, or the answer that refuses it."""
        body, failure = await self.receive(request)
        return failure if failure is not None else self.check_agent(body)

    async def logout(self, request: Request) -> Response:
        checked = await self.agent_call(request)
        if isinstance(checked, Response):
            return checked
        return JSONResponse({"success": True})

    async def attendant_status(self, request: Request) -> Response:
        checked = await self.agent_call(request)
        if isinstance(checked, Response):
            return checked
        if checked.get("status") not in ("S", "N"):
            return JSONResponse({"error": "status must be S or N"}, status_code=422)
        return JSONResponse({"success": True, "status": checked["status"]})

    async def fetchaudio(self, request: Request) -> Response:
        body, failure = await self.receive(request)
        if failure is not None:
            return failure
        garbage = self.state._take_garbage()
        if garbage is not None:
            return Response(garbage, status_code=200)
        if not isinstance(body, dict):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
        if not self.state._tokens_ok(body):
            return JSONResponse({"error": "invalid token"}, status_code=401)
        protocol: str = request.path_params["protocol"]
        if protocol in self.state._missing:
            return JSONResponse({"error": "recording not found"}, status_code=404)
        return JSONResponse({"url": f"{RECORDINGS_URL}/{quote(protocol, safe='')}.mp3"})

    async def login_form(self, request: Request) -> Response:
        body, failure = await self.receive(request)
        if failure is not None:
            return failure
        fields = body if isinstance(body, dict) else {}
        if not (self.state._tokens_ok(fields) and self.state._credentials_ok(fields)):
            return HTMLResponse(_page("Login refused (sandbox)"), status_code=401)
        return HTMLResponse(_page(f"Agent {fields['login']} logged in (sandbox)"))

    async def elsewhere(self, request: Request) -> Response:
        # A request that went astray (a path normalised one level up) is recorded like any
        # other. What Talkk.me answers off its documented endpoints is unknown: the sandbox
        # answers 500, the worst case for a caller's circuit breaker.
        await self.receive(request)
        return JSONResponse({"error": "no such endpoint"}, status_code=500)


def _same(given: object, expected: str | None) -> bool:
    if not isinstance(given, str) or expected is None:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def _page(text: str) -> str:
    title = escape(text)
    return f"<!doctype html><title>{title}</title><p>{title}</p>"
