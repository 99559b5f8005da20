"""Talkk.me, the agent platform: its HTTP client, the circuit breaker and a local sandbox."""

from gateway.talkme.breaker import BreakerState, CircuitBreaker
from gateway.talkme.client import (
    AgentStatus,
    Operation,
    TalkmeClient,
    TalkmeError,
    TalkmeNotFound,
    TalkmeRejected,
    TalkmeUnavailable,
)
from gateway.talkme.sandbox import RecordedCall, SandboxState, create_sandbox

__all__ = [
    "AgentStatus",
    "BreakerState",
    "CircuitBreaker",
    "Operation",
    "RecordedCall",
    "SandboxState",
    "TalkmeClient",
    "TalkmeError",
    "TalkmeNotFound",
    "TalkmeRejected",
    "TalkmeUnavailable",
    "create_sandbox",
]
