"""Talk.me misbehaving: typed errors, a breaker that opens and closes, bounded calls and time."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gateway.http.app import create_app
from gateway.talkme.sandbox import SandboxState
from tests.reliability.support import proxy_to
from tests.support import AGENT_LOGIN, AGENT_PASSWORD, ALL_KEY, live_server, serving
from tests.support import talkme_settings as base_settings

TIMEOUT_S = 0.5  # talkme_settings' TALKME_TIMEOUT_S
BOUND_S = 3 * TIMEOUT_S + 1.0  # the client's budget is 3 timeouts; a second of slack
FAILURES = 2
RESET_S = 0.5
MAX_ATTEMPTS = 4
# For a burst: calls admitted before the breaker opened go on retrying after it opened, for
# up to 0.1 + 0.2 + 0.4 s of backoff (gateway/talkme/client.py). The breaker must stay open
# longer than that for the calls after the burst to meet it open, not half-open.
BURST_RESET_S = 2.0

PAUSE = """mutation($login: String!, $password: String!) {
  pauseAgent(input: {credentials: {login: $login, password: $password}}) { status }
}"""
RECORDING = 'query { recording(protocol: "P-1") { url } }'


def _settings(tmp_path: Path, reset_s: float = RESET_S, **overrides: Any) -> Any:
    return base_settings(tmp_path, breaker_failures=FAILURES, breaker_reset_s=reset_s, **overrides)


async def _ask(client: httpx.AsyncClient, query: str) -> tuple[dict[str, Any] | None, list[str]]:
    """One operation, bounded: (data, error codes). A hang fails the test instead of waiting."""
    response = await asyncio.wait_for(
        client.post(
            "/graphql",
            json={"query": query, "variables": {"login": AGENT_LOGIN, "password": AGENT_PASSWORD}},
            headers={"Authorization": f"Bearer {ALL_KEY}"},
        ),
        BOUND_S,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body.get("data"), [e["extensions"]["code"] for e in body.get("errors", [])]


def _state(sandbox: Starlette) -> SandboxState:
    state: SandboxState = sandbox.state.sandbox
    return state


async def _until_closed(client: httpx.AsyncClient, reset_s: float = RESET_S) -> None:
    """After `reset_s` the breaker lets one probe through; a healthy answer closes it."""
    await asyncio.sleep(reset_s)
    data, codes = await _ask(client, PAUSE)
    assert codes == []
    assert data == {"pauseAgent": {"status": "PAUSED"}}


async def test_a_5xx_burst_opens_the_breaker_without_a_retry_storm_then_it_closes(
    tmp_path: Path, sandbox: Starlette
) -> None:
    state = _state(sandbox)
    app = create_app(
        _settings(tmp_path, reset_s=BURST_RESET_S),
        talkme_transport=httpx.ASGITransport(app=sandbox),
    )
    async with serving(app) as client:
        state.fail_next(1000, 503)
        results = await asyncio.gather(*(_ask(client, PAUSE) for _ in range(8)))
        assert all(codes == ["UPSTREAM_UNAVAILABLE"] for _, codes in results)
        # Concurrent calls admitted before the breaker opened retry at most MAX_ATTEMPTS each.
        assert len(state.calls) <= 8 * MAX_ATTEMPTS
        before = len(state.calls)
        for _ in range(5):  # open: refused at once, no upstream call at all
            assert (await _ask(client, PAUSE))[1] == ["UPSTREAM_UNAVAILABLE"]
        assert len(state.calls) == before

        state.reset()
        await _until_closed(client, BURST_RESET_S)
        assert len(state.calls) == 1  # one probe, no burst of pent-up calls


async def test_latency_beyond_the_timeout_is_a_bounded_typed_error(
    tmp_path: Path, sandbox: Starlette
) -> None:
    state = _state(sandbox)
    app = create_app(_settings(tmp_path), talkme_transport=httpx.ASGITransport(app=sandbox))
    async with serving(app) as client:
        state.delay(5 * TIMEOUT_S)
        for _ in range(FAILURES):
            assert (await _ask(client, PAUSE))[1] == ["UPSTREAM_UNAVAILABLE"]  # within BOUND_S
        assert len(state.calls) <= FAILURES * MAX_ATTEMPTS
        assert (await _ask(client, PAUSE))[1] == ["UPSTREAM_UNAVAILABLE"]  # open now
        state.reset()
        await _until_closed(client)


async def test_garbage_bodies_are_unavailable_not_retried_and_open_the_breaker(
    tmp_path: Path, sandbox: Starlette
) -> None:
    state = _state(sandbox)
    app = create_app(
        _settings(tmp_path, recording_ttl_s=0),
        talkme_transport=httpx.ASGITransport(app=sandbox),
    )
    async with serving(app) as client:
        state.garbage_next(FAILURES, b"\x00\xff<html>not a link")
        for _ in range(FAILURES):
            data, codes = await _ask(client, RECORDING)
            assert codes == ["UPSTREAM_UNAVAILABLE"]
            assert data == {"recording": None}
        assert len(state.calls) == FAILURES  # a 200 with garbage is not retried
        assert (await _ask(client, RECORDING))[1] == ["UPSTREAM_UNAVAILABLE"]
        assert len(state.calls) == FAILURES  # open: not asked
        await asyncio.sleep(RESET_S)
        data, codes = await _ask(client, RECORDING)
        assert codes == []
        assert data is not None
        assert data["recording"]["url"].endswith("/P-1.mp3")


@pytest.mark.slow
async def test_connection_resets_are_retried_a_bounded_number_of_times_then_recover(
    tmp_path: Path, sandbox: Starlette
) -> None:
    async with live_server(sandbox) as address:
        host, port = address.rsplit(":", 1)
        async with proxy_to(host, int(port)) as proxy:
            url = f"http://127.0.0.1:{proxy.port}"
            app = create_app(_settings(tmp_path, talkme_agent_api_url=url, talkme_bc_api_url=url))
            async with serving(app) as client:
                proxy.cut()
                for _ in range(FAILURES):
                    assert (await _ask(client, PAUSE))[1] == ["UPSTREAM_UNAVAILABLE"]
                assert proxy.connections <= FAILURES * MAX_ATTEMPTS
                seen = proxy.connections
                for _ in range(3):
                    assert (await _ask(client, PAUSE))[1] == ["UPSTREAM_UNAVAILABLE"]
                assert proxy.connections == seen  # the breaker is open: nothing sent
                proxy.restore()
                await _until_closed(client)
