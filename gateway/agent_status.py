"""Recording an agent's queue status: stored, then announced to subscribers."""

from __future__ import annotations

from gateway.replicas.pubsub import AGENT_STATUS, Broker
from gateway.storage import TalkStore
from gateway.utc import now_iso


async def record_status(store: TalkStore, broker: Broker, *, login: str, status: str) -> str:
    """Remember `status` (ACTIVE, PAUSED, LOGGED_OUT) for `login`; returns when, ISO UTC."""
    changed_at = now_iso(timespec="seconds")
    await store.set_agent_status(login=login, status=status, changed_at=changed_at)
    await broker.publish(AGENT_STATUS, {"login": login, "status": status, "changed_at": changed_at})
    return changed_at
