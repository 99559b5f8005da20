"""Sharing between replicas through Redis: events, rate limits, tickets, persisted queries,
responses.

Imported only when TALKGATE_REDIS_URL is set (the `redis` extra). Each part keeps working in
this process while Redis is unreachable, and says so once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.graphql.persisted import LocalPersistedQueries
from gateway.graphql.response_cache import SharedUnavailable
from gateway.ratelimit import LocalRateLimiter
from gateway.recordings import FetchedRecording
from gateway.replicas.pubsub import AGENT_STATUS, TALKS, Event, LocalFanout
from gateway.storage import StoreUnavailable

log = logging.getLogger("talkgate.redis")


class RedisBroker:
    """Events cross replicas through Redis pub/sub; each replica fans them out locally.

    A replica publishes to Redis and receives its own events back through its listener, like
    every other replica. If Redis is unreachable, events stay in this process (said once in
    the log and in the `talkgate_redis_up` gauge) until Redis answers again.
    """

    def __init__(
        self,
        client: Redis,
        fanout: LocalFanout,
        *,
        prefix: str = "talkgate:",
        on_health: Callable[[bool], None] | None = None,
    ) -> None:
        self._client = client
        self.fanout = fanout
        self._prefix = prefix
        self._on_health = on_health or (lambda up: None)
        self._healthy: bool | None = None
        self._listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="talkgate-redis-listener")

    async def wait_listening(self) -> None:
        """Returns once the listener is subscribed (callers bound the wait themselves)."""
        await self._listening.wait()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def publish(self, topic: str, event: Event) -> None:
        try:
            await self._client.publish(self._prefix + topic, orjson.dumps(event))
        except (RedisError, OSError) as exc:
            self._health(False, f"publish failed: {exc}")
            self.fanout.deliver(topic, event)

    def subscribe(self, topic: str) -> AsyncIterator[Event]:
        return self.fanout.stream(topic)

    async def _listen(self) -> None:
        backoff = 0.1
        channels = [self._prefix + TALKS, self._prefix + AGENT_STATUS]
        while True:
            try:
                pubsub = self._client.pubsub()
                try:
                    await pubsub.subscribe(*channels)
                    self._listening.set()
                    self._health(True, "listening")
                    backoff = 0.1
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        channel = message["channel"]
                        if isinstance(channel, bytes):
                            channel = channel.decode()
                        self.fanout.deliver(
                            channel.removeprefix(self._prefix), orjson.loads(message["data"])
                        )
                finally:
                    with contextlib.suppress(RedisError, OSError):
                        await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # typed from redis 8.2
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self._listening.clear()
                self._health(False, f"listener lost Redis: {exc}")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _health(self, up: bool, detail: str) -> None:
        if self._healthy is up:
            return
        if self._healthy is not None or not up:
            if up:
                log.info("Redis is back: events are shared between replicas again")
            else:
                log.warning("Redis unreachable, events stay in this replica: %s", detail)
        self._healthy = up
        self._on_health(up)


# A token bucket in one Redis hash, updated atomically; Redis's clock serves every replica.
_TAKE = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(bucket[1]) or capacity
local at = tonumber(bucket[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
return tostring(wait)
"""


class RedisRateLimiter:
    """Per-key token buckets shared by every replica; local buckets while Redis is away."""

    def __init__(self, client: Redis, per_minute: int, *, prefix: str = "talkgate:") -> None:
        self._client = client
        self._per_minute = per_minute
        self._prefix = prefix + "rate:"
        self._script = client.register_script(_TAKE)
        self._fallback = LocalRateLimiter(per_minute)
        self._warned = False

    async def take(self, key: str) -> float | None:
        try:
            wait = float(
                await self._script(
                    keys=[self._prefix + key], args=[self._per_minute, self._per_minute / 60]
                )
            )
        except (RedisError, OSError) as exc:
            if not self._warned:
                log.warning("Redis unreachable, rate limits are counted per replica: %s", exc)
                self._warned = True
            return await self._fallback.take(key)
        if self._warned:
            log.info("Redis is back: rate limits are shared again")
            self._warned = False
        return wait if wait > 0 else None


# Set a key to expire at ARGV[2] (ms), unless it already expires later.
_KEEP_LATER = """
local left = redis.call('PTTL', KEYS[1])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
if left >= 0 and now + left >= tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return 1
"""


class RedisTicketVault:
    """Login tickets and session revocations in Redis, so a ticket made on one replica is
    redeemed on any other, and a session revoked on one is refused by all."""

    def __init__(self, client: Redis, *, prefix: str = "talkgate:") -> None:
        self._client = client
        self._prefix = prefix + "ticket:"
        self._keep_later = client.register_script(_KEEP_LATER)

    async def put_ticket(self, *, digest: str, sealed: str, expires_at: datetime) -> None:
        await self._client.set(
            self._prefix + digest, sealed, pxat=int(expires_at.timestamp() * 1000)
        )

    async def take_ticket(self, *, digest: str, now: datetime) -> str | None:
        # GETDEL is atomic: of two replicas redeeming at once, one gets the ticket.
        value = await self._client.getdel(self._prefix + digest)
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def put_revocation(self, *, digest: str, mark: str, expires_at: datetime) -> None:
        try:
            await self._keep_later(
                keys=[self._prefix + digest], args=[mark, int(expires_at.timestamp() * 1000)]
            )
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"Redis unreachable: {exc}") from None

    async def revocation_marks(self, *, digests: Sequence[str], now: datetime) -> list[str]:
        # Unreachable Redis refuses sessions (fails closed): a revocation must not be missed.
        try:
            values = await self._client.mget([self._prefix + d for d in digests])
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"Redis unreachable: {exc}") from None
        return [v.decode() if isinstance(v, bytes) else str(v) for v in values if v is not None]


class RedisRecordings:
    """Recording links shared by the replicas for `ttl_s`; a Redis failure is only a miss."""

    def __init__(self, client: Redis, ttl_s: float, *, prefix: str = "talkgate:") -> None:
        self._client = client
        self._ttl_ms = int(ttl_s * 1000)
        self._prefix = prefix + "recording:"
        self._warned = False

    async def get(self, protocol: str) -> FetchedRecording | None:
        try:
            raw = await self._client.get(self._prefix + protocol)
        except (RedisError, OSError) as exc:
            self._warn(exc)
            return None
        if raw is None:
            return None
        data = orjson.loads(raw)
        return FetchedRecording(protocol, data["url"], data["fetched_at"])

    async def put(self, recording: FetchedRecording) -> None:
        if self._ttl_ms <= 0:
            return
        value = orjson.dumps({"url": recording.url, "fetched_at": recording.fetched_at})
        try:
            await self._client.set(self._prefix + recording.protocol, value, px=self._ttl_ms)
        except (RedisError, OSError) as exc:
            self._warn(exc)

    def _warn(self, exc: Exception) -> None:
        if not self._warned:
            log.warning("Redis unreachable, recordings are cached per replica: %s", exc)
            self._warned = True


class RedisPersistedQueries:
    """APQ documents shared by the replicas, kept `ttl_s` after their last registration.

    While Redis is unreachable, documents are registered and found in this process.
    """

    def __init__(
        self, client: Redis, *, ttl_s: float = 7 * 24 * 3600, prefix: str = "talkgate:"
    ) -> None:
        self._client = client
        self._ttl_ms = int(ttl_s * 1000)
        self._prefix = prefix + "pq:"
        self._fallback = LocalPersistedQueries()
        self._warned = False

    async def get(self, digest: str) -> str | None:
        try:
            raw = await self._client.get(self._prefix + digest)
        except (RedisError, OSError) as exc:
            self._warn(exc)
            return await self._fallback.get(digest)
        if raw is None:
            return await self._fallback.get(digest)
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    async def put(self, digest: str, document: str) -> None:
        try:
            await self._client.set(self._prefix + digest, document, px=self._ttl_ms)
        except (RedisError, OSError) as exc:
            self._warn(exc)
            await self._fallback.put(digest, document)

    def _warn(self, exc: Exception) -> None:
        if not self._warned:
            log.warning("Redis unreachable, persisted queries are kept per replica: %s", exc)
            self._warned = True


class RedisResponses:
    """Responses shared by the replicas, each under the store generation it was computed at
    (a write moves the store on, so older entries are never read again and expire)."""

    def __init__(self, client: Redis, ttl_s: float, *, prefix: str = "talkgate:") -> None:
        self._client = client
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._prefix = prefix + "response:"

    async def get(self, key: str, generation: str) -> bytes | None:
        try:
            kept = await self._client.get(f"{self._prefix}{generation}:{key}")
        except (RedisError, OSError) as exc:
            raise SharedUnavailable(str(exc)) from None
        return kept if isinstance(kept, bytes) else None

    async def put(self, key: str, generation: str, body: bytes) -> None:
        try:
            await self._client.set(f"{self._prefix}{generation}:{key}", body, px=self._ttl_ms)
        except (RedisError, OSError) as exc:
            raise SharedUnavailable(str(exc)) from None
