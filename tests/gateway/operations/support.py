"""What the operator-command tests share: everything a client can read of a store."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support import ALL_KEY

EVERYTHING = """
query ($after: String) {
  talks(first: 100, after: $after) {
    totalCount
    edges { cursor node { id databaseId status createdAt customer { name documentNumber }
      histories(first: 20) { edges { node { id message sentAt } } } events { id eventId } } }
    pageInfo { hasNextPage endCursor }
  }
  deadLetters { totalCount edges { node { id reason receivedAt source body } } }
}"""


STATUS = "query ($login: String) { agent(login: $login) { queueStatus { status changedAt } } }"


async def answers(base: str, *logins: str) -> list[Any]:
    """Every page of every talk, with their messages, events and customers, the dead
    letters, and the queue status of the agents of `logins`: what a client can read of the
    store."""
    pages: list[Any] = []
    after = None
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        while True:
            response = await client.post(
                "/graphql",
                json={"query": EVERYTHING, "variables": {"after": after}},
                headers={"Authorization": f"Bearer {ALL_KEY}"},
            )
            body = response.json()
            assert "errors" not in body, body
            pages.append(body["data"])
            info = body["data"]["talks"]["pageInfo"]
            if not info["hasNextPage"]:
                for login in logins:
                    status = await client.post(
                        "/graphql",
                        json={"query": STATUS, "variables": {"login": login}},
                        headers={"Authorization": f"Bearer {ALL_KEY}"},
                    )
                    pages.append(status.json())
                return pages
            after = info["endCursor"]
