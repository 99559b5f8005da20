"""Events between the workers of one `serve` without Redis (gateway/replicas/siblings.py)."""

from __future__ import annotations

import asyncio
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from gateway.replicas.pubsub import TALKS, LocalFanout
from gateway.replicas.siblings import SiblingBroker


@asynccontextmanager
async def started(broker: SiblingBroker) -> AsyncIterator[SiblingBroker]:
    await broker.start()
    try:
        yield broker
    finally:
        await broker.close()


def sockets(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


@pytest.fixture
def directory() -> Iterator[Path]:
    # A Unix socket path is at most 107 bytes: pytest's tmp_path may be longer.
    with tempfile.TemporaryDirectory(prefix="tg-") as name:
        yield Path(name)


async def test_an_event_reaches_the_subscribers_of_every_worker(directory: Path) -> None:
    one, other = LocalFanout(), LocalFanout()
    async with (
        started(SiblingBroker(one, directory, name="one")) as publisher,
        started(SiblingBroker(other, directory, name="other")),
        one.subscription(TALKS) as here,
        other.subscription(TALKS) as there,
    ):
        await publisher.publish(TALKS, {"id": 7})
        assert await asyncio.wait_for(here.next(), 1) == {"id": 7}
        assert await asyncio.wait_for(there.next(), 1) == {"id": 7}
    assert sockets(directory) == []


async def test_the_socket_of_a_dead_worker_is_removed_by_the_next_publish(directory: Path) -> None:
    dead = directory / "dead.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as left:
        left.bind(str(dead))  # closed without unlinking, as a killed worker leaves it
    async with started(SiblingBroker(LocalFanout(), directory, name="alive")) as broker:
        await broker.publish(TALKS, {"id": 1})
        assert sockets(directory) == ["alive.sock"]


async def test_a_worker_that_does_not_read_loses_events_counted(directory: Path) -> None:
    dropped: list[int] = []
    receiving = LocalFanout(queue_size=100_000)
    async with (
        started(
            SiblingBroker(LocalFanout(), directory, name="fast", on_drop=lambda: dropped.append(1))
        ) as publisher,
        started(SiblingBroker(receiving, directory, name="slow")),
        receiving.subscription(TALKS) as slow,
    ):
        sent = 20_000
        for i in range(sent):  # no await yields: the receiver reads nothing meanwhile
            await publisher.publish(TALKS, {"id": i})
        assert dropped, "the buffer never filled"
        received = 0
        while received + len(dropped) < sent:  # what the buffer held arrives in the end
            await asyncio.wait_for(slow.next(), 2)
            received += 1
    assert received + len(dropped) == sent
