"""One-time login tickets: the link `agentLogin` hands out, redeemed once within 60 seconds.

The link carries only a random ticket id. The store keeps the sha256 of that id and the
credentials sealed with SECRET_KEY, so neither the URL nor the database holds a password.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Protocol

from gateway.sessions import AgentCredentials, RevocationVault, SecretKeys, SessionSealer

TICKET_TTL = timedelta(seconds=60)


class TicketVault(RevocationVault, Protocol):
    """Where tickets (and session revocations) wait: the store (one replica, or a shared
    database) or Redis."""

    async def put_ticket(self, *, digest: str, sealed: str, expires_at: datetime) -> None: ...

    async def take_ticket(self, *, digest: str, now: datetime) -> str | None: ...


def _digest(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


class LoginTickets:
    """Issues tickets for credentials and redeems each one at most once."""

    def __init__(self, vault: TicketVault, secret_key: SecretKeys) -> None:
        self._vault = vault
        self._sealer = SessionSealer(secret_key, purpose="login-ticket")

    async def issue(self, credentials: AgentCredentials) -> tuple[str, datetime]:
        """A fresh ticket id and when it expires."""
        ticket = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        expires_at = now + TICKET_TTL
        sealed = self._sealer.seal(
            credentials, ttl_s=TICKET_TTL.total_seconds(), now=now.timestamp()
        )
        await self._vault.put_ticket(digest=_digest(ticket), sealed=sealed, expires_at=expires_at)
        return ticket, expires_at

    async def redeem(self, ticket: str) -> AgentCredentials | None:
        """The ticket's credentials, once; None when unknown, already used or expired."""
        if not ticket or len(ticket) > 128:
            return None
        sealed = await self._vault.take_ticket(digest=_digest(ticket), now=datetime.now(UTC))
        if sealed is None:
            return None
        return self._sealer.open(sealed)
