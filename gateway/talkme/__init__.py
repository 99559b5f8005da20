"""Talkk.me, the agent platform: its HTTP client, the circuit breaker and a local sandbox."""

from gateway.talkme.breaker import BreakerState, CircuitBreaker
from gateway.talkme.client import (
    AgentStatus,
    Operation,
    TalkmeBadInput,
    TalkmeClient,
    TalkmeError,
    TalkmeNotFound,
    TalkmeRejected,
    TalkmeUnavailable,
    check_credentials,
    check_protocol,
)
from gateway.talkme.sandbox import RecordedCall, SandboxState, create_sandbox

__all__ = [
    "AgentStatus",
    "BreakerState",
    "CircuitBreaker",
    "Operation",
    "RecordedCall",
    "SandboxState",
    "TalkmeBadInput",
    "TalkmeClient",
    "TalkmeError",
    "TalkmeNotFound",
    "TalkmeRejected",
    "TalkmeUnavailable",
    "check_credentials",
    "check_protocol",
    "create_sandbox",
]
