"""The Talkk.me agent API over HTTP: logout, pause/resume in call queues, recording links."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
import unicodedata
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, TypeVar
from urllib.parse import quote, urlsplit

import httpx
from pydantic import SecretStr

from gateway.settings import Settings
from gateway.talkme.breaker import CircuitBreaker

logger = logging.getLogger(__name__)

Operation = Literal["logout", "status", "fetchaudio"]
AgentStatus = Literal["S", "N"]
OPERATIONS: tuple[Operation, ...] = ("logout", "status", "fetchaudio")

_T = TypeVar("_T")

_MAX_ATTEMPTS = 4
_BACKOFF_BASE_S = 0.1
_BACKOFF_CAP_S = 2.0
_BUDGET_IN_TIMEOUTS = 3
_LOGGED_BODY_CHARS = 500
_DETAIL_CHARS = 200
_SECRET_FIELDS = ("token", "externalLoginToken", "password")
_SECRET_JSON_FIELD = re.compile(
    r'("(?:token|externalLoginToken|password)"\s*:\s*)"(?:[^"\\]|\\.)*"'
)
_SECRET_FORM_FIELD = re.compile(r"\b(token|externalLoginToken|password)=[^&\s]*")

# What talkgate sends Talkk.me, checked before any call. A protocol becomes a path segment:
# Talkk.me's numbers are digits (tracking numbers such as 20250908114603) or short codes, so
# ASCII letters, digits, '.', '_' and '-', beginning and ending with a letter or digit (never
# a '.' or '..' segment), at most 64 characters.
MAX_PROTOCOL_CHARS = 64
MAX_LOGIN_CHARS = 64
MAX_PASSWORD_CHARS = 256
_PROTOCOL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?")
_NO_CONTROL = frozenset({"Cc", "Cs"})  # control characters, lone surrogates


class TalkmeError(Exception):
    """Root of every failure of a Talkk.me call."""


class TalkmeRejected(TalkmeError):
    """Talkk.me answered 4xx (wrong credentials or tokens, bad input): repeating will not help."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"Talkk.me rejected the call ({status}): {detail}")
        self.status = status
        self.detail = detail


class TalkmeBadInput(TalkmeError):
    """What talkgate was asked to send is not something Talkk.me takes; nothing was sent."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field} {rule}")
        self.field = field
        self.rule = rule


def check_protocol(protocol: object) -> str:
    """The protocol, when it may be a fetchaudio path segment; TalkmeBadInput otherwise."""
    if not isinstance(protocol, str) or not protocol:
        raise TalkmeBadInput("protocol", "is missing")
    if len(protocol) > MAX_PROTOCOL_CHARS or not _PROTOCOL.fullmatch(protocol):
        raise TalkmeBadInput(
            "protocol",
            f"must be 1 to {MAX_PROTOCOL_CHARS} ASCII letters, digits, '.', '_' or '-', "
            "beginning and ending with a letter or digit",
        )
    return protocol


def check_credentials(login: str, password: str) -> None:
    """TalkmeBadInput unless the login and password are ones Talkk.me could know."""
    if not login.strip() or len(login) > MAX_LOGIN_CHARS or not login.isprintable():
        raise TalkmeBadInput("login", f"must be 1 to {MAX_LOGIN_CHARS} printable characters")
    if (
        not password
        or len(password) > MAX_PASSWORD_CHARS
        or any(unicodedata.category(char) in _NO_CONTROL for char in password)
    ):
        raise TalkmeBadInput(
            "password", f"must be 1 to {MAX_PASSWORD_CHARS} characters, none a control character"
        )


class TalkmeNotFound(TalkmeError):
    """Talkk.me has no recording for the protocol (fetchaudio answered 404)."""

    def __init__(self, protocol: str) -> None:
        super().__init__(f"Talkk.me has no recording for protocol {protocol!r}")
        self.protocol = protocol


class TalkmeUnavailable(TalkmeError):
    """Talkk.me could not answer usefully: timeout, connection error, 5xx, garbage, open circuit."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"Talkk.me unavailable: {reason}")
        self.reason = reason


@dataclass
class _Tally:
    attempts: int = 0
    status: int | None = None


class TalkmeClient:
    """Calls the Talkk.me agent API with retries, a time budget and one breaker per operation.

    It borrows `http` and never closes it; the owner (the app lifespan, a test) does.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: Settings,
        *,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        observe: Callable[[Operation, str], None] | None = None,
    ) -> None:
        self._http = http
        self._observe = observe
        self._agent_api_url = settings.talkme_agent_api_url.rstrip("/")
        self._bc_api_url = settings.talkme_bc_api_url.rstrip("/")
        self._token = _reveal(settings.talkme_token)
        self._external_login_token = _reveal(settings.talkme_external_login_token)
        self._timeout_s = settings.talkme_timeout_s
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 (jitter, not crypto)
        self._clock = clock
        self._breakers: dict[Operation, CircuitBreaker] = {
            operation: CircuitBreaker(settings.breaker_failures, settings.breaker_reset_s, clock)
            for operation in OPERATIONS
        }

    @property
    def breakers(self) -> Mapping[Operation, CircuitBreaker]:
        return MappingProxyType(self._breakers)

    async def logout(self, *, login: str, password: str) -> None:
        """End the agent's session on the Talkk.me agent platform."""
        check_credentials(login, password)
        body = {"login": login, "password": password, **self._tokens()}
        url = f"{self._agent_api_url}/api/external/logout"
        await self._call("logout", url, body, _expect_success)

    async def set_status(self, *, login: str, password: str, status: AgentStatus) -> None:
        """Set the agent's status in the call queues: `S` active, `N` paused."""
        check_credentials(login, password)
        body = {"login": login, "password": password, **self._tokens(), "status": status}
        url = f"{self._bc_api_url}/talkme-ui/integration/attendants/status"
        await self._call("status", url, body, _expect_success)

    async def pause(self, *, login: str, password: str) -> None:
        await self.set_status(login=login, password=password, status="N")

    async def resume(self, *, login: str, password: str) -> None:
        await self.set_status(login=login, password=password, status="S")

    async def fetch_audio(self, protocol: str) -> str:
        """The public link to the recording of the call with that protocol number."""
        # Checked before the breaker is asked: refused input is no call, and never a failure.
        check_protocol(protocol)
        body = self._tokens()
        url = (
            f"{self._bc_api_url}/talkme-ui/external/operational/fetchaudio/"
            f"{quote(protocol, safe='')}"
        )

        def recording_link(response: httpx.Response, secrets: list[str]) -> str:
            if response.status_code == httpx.codes.NOT_FOUND:
                raise TalkmeNotFound(protocol)
            _expect_success(response, secrets)
            link = _find_link(response.text)
            if link is None:
                logger.warning(
                    "talkme fetchaudio answered without a usable link: %s",
                    _scrub(response.text, secrets)[:_LOGGED_BODY_CHARS],
                    extra={"operation": "fetchaudio", "status": response.status_code},
                )
                raise TalkmeUnavailable("fetchaudio answered without a usable link")
            return link

        return await self._call("fetchaudio", url, body, recording_link)

    def _tokens(self) -> dict[str, str]:
        return {"token": self._token, "externalLoginToken": self._external_login_token}

    async def _call(
        self,
        operation: Operation,
        url: str,
        body: dict[str, str],
        interpret: Callable[[httpx.Response, list[str]], _T],
    ) -> _T:
        """One call: breaker check, attempts, interpretation; counted once by the breaker."""
        breaker = self._breakers[operation]
        tally = _Tally()
        started = time.perf_counter()
        if not breaker.allow():
            self._log_outcome(operation, "unavailable", tally, started, "circuit open")
            raise TalkmeUnavailable("circuit open")
        secrets = [value for key, value in body.items() if key in _SECRET_FIELDS and value]
        outcome, reason = "aborted", None
        try:
            response = await self._send(operation, url, body, tally)
            result = interpret(response, secrets)
        except TalkmeUnavailable as exc:
            outcome, reason = "unavailable", exc.reason
            breaker.record_failure()
            raise
        except TalkmeNotFound:
            outcome = "not_found"
            breaker.record_success()
            raise
        except TalkmeRejected:
            outcome = "rejected"
            breaker.record_success()
            raise
        else:
            outcome = "ok"
            breaker.record_success()
            return result
        finally:
            self._log_outcome(operation, outcome, tally, started, reason)

    async def _send(
        self, operation: Operation, url: str, body: dict[str, str], tally: _Tally
    ) -> httpx.Response:
        """POST until an answer below 500 arrives; retry timeouts, connection errors and 5xx."""
        deadline = self._clock() + _BUDGET_IN_TIMEOUTS * self._timeout_s
        reason = ""
        while True:
            remaining = deadline - self._clock()
            if remaining <= 0:  # the last wait overran the budget
                raise TalkmeUnavailable(f"{reason} after {tally.attempts} attempt(s)")
            tally.attempts += 1
            tally.status = None
            attempt_s = min(self._timeout_s, remaining)
            try:
                # The ASGI transport ignores httpx timeouts, hence the outer bound as well.
                async with asyncio.timeout(attempt_s):
                    response = await self._http.post(url, json=body, timeout=attempt_s)
            except (TimeoutError, httpx.TimeoutException):
                reason = "timed out"
            except httpx.TransportError as exc:
                reason = f"connection failed ({type(exc).__name__})"
            except httpx.HTTPError as exc:
                raise TalkmeUnavailable(f"unreadable answer ({type(exc).__name__})") from None
            else:
                tally.status = response.status_code
                if response.status_code < httpx.codes.INTERNAL_SERVER_ERROR:
                    return response
                reason = f"answered {response.status_code}"
            delay = self._backoff(tally.attempts)
            if tally.attempts >= _MAX_ATTEMPTS or self._clock() + delay >= deadline:
                raise TalkmeUnavailable(f"{reason} after {tally.attempts} attempt(s)")
            logger.debug(
                "talkme %s attempt %d %s; retrying in %.3f s",
                operation,
                tally.attempts,
                reason,
                delay,
                extra={"operation": operation, "attempts": tally.attempts},
            )
            await self._sleep(delay)

    def _backoff(self, attempts: int) -> float:
        """Full jitter: a uniform pick below an exponentially growing, capped ceiling."""
        ceiling = min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2 ** (attempts - 1))
        return self._rng.uniform(0, ceiling)

    def _log_outcome(
        self,
        operation: Operation,
        outcome: str,
        tally: _Tally,
        started: float,
        reason: str | None = None,
    ) -> None:
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        if self._observe is not None:
            self._observe(operation, outcome)
        logger.info(
            "talkme %s %s%s: status %s, %d attempt(s), %.1f ms",
            operation,
            outcome,
            f" ({reason})" if reason else "",
            tally.status,
            tally.attempts,
            duration_ms,
            extra={
                "operation": operation,
                "outcome": outcome,
                "reason": reason,
                "status": tally.status,
                "attempts": tally.attempts,
                "duration_ms": duration_ms,
            },
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(agent_api_url={self._agent_api_url!r}, "
            f"bc_api_url={self._bc_api_url!r}, timeout_s={self._timeout_s})"
        )


def _reveal(secret: SecretStr | None) -> str:
    # Unset tokens are sent empty: Talkk.me rejects them, which says more than failing here.
    return secret.get_secret_value() if secret is not None else ""


def _expect_success(response: httpx.Response, secrets: list[str]) -> None:
    status = response.status_code
    if httpx.codes.is_success(status):
        return
    if httpx.codes.is_client_error(status):
        raise TalkmeRejected(status, _rejection_detail(response, secrets))
    raise TalkmeUnavailable(f"unexpected answer {status}")


def _rejection_detail(response: httpx.Response, secrets: list[str]) -> str:
    detail = response.reason_phrase or "rejected"
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("error", "message", "detail"):
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                detail = value.strip()
                break
    return _scrub(detail, secrets)[:_DETAIL_CHARS]


def _find_link(text: str) -> str | None:
    """The recording link in a fetchaudio answer, whichever of the shapes seen it takes."""
    try:
        data: object = json.loads(text)
    except ValueError:
        data = text
    candidates: list[object] = []
    if isinstance(data, str):
        candidates.append(data)
    elif isinstance(data, dict):
        candidates += [data.get("url"), data.get("link")]
        inner = data.get("data")
        if isinstance(inner, dict):
            candidates += [inner.get("url"), inner.get("link")]
    for candidate in candidates:
        if isinstance(candidate, str) and _is_web_url(candidate.strip()):
            return candidate.strip()
    return None


def _is_web_url(text: str) -> bool:
    if not text or any(char.isspace() or not char.isprintable() for char in text):
        return False
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(host)


def _scrub(text: str, secrets: list[str]) -> str:
    """The text with secret fields and known secret values masked."""
    for secret in secrets:
        text = text.replace(secret, "***")
    text = _SECRET_JSON_FIELD.sub(r'\1"***"', text)
    return _SECRET_FORM_FIELD.sub(r"\1=***", text)
