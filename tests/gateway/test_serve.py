"""`talkgate serve` as deployed: a real uvicorn process on loopback."""

from __future__ import annotations

from pathlib import Path

from websockets.asyncio.client import connect

from tests.reliability.support import serve_env, start_serve


async def test_subscriptions_are_not_compressed_message_by_message(tmp_path: Path) -> None:
    served = await start_serve(tmp_path, serve_env(f"sqlite:///{tmp_path / 'talkgate.db'}"))
    try:
        address = served.base.removeprefix("http://")
        async with connect(
            f"ws://{address}/graphql",
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
            compression="deflate",  # what browsers offer
        ) as ws:
            assert ws.response is not None
            assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
    finally:
        served.kill()
