"""The benchmarks' talks: PipeRun's example rewritten so that talk i has its own id, message
ids, time (one talk every STEP_S seconds), customer (TALKS_PER_CUSTOMER talks each) and one
of AGENTS agents, every field depending on i alone (`Layout`, `talk_payloads`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from gateway.demo import numbered_talk, sample_talks

TALK_BASE = 3_000_000


CUSTOMER_BASE = 7_000_000


AGENT_BASE = 9_100


AGENTS = 40


TALKS_PER_CUSTOMER = 20


STEP_S = 30


START = datetime(2024, 1, 1, tzinfo=UTC)


LOCAL = ZoneInfo("America/Sao_Paulo")  # the zone PipeRun's naive datetimes are in


NAMES = ("JONAS", "MARIA SILVA", "JOÃO PEREIRA", "ANA COSTA", "PEDRO SOUZA", "LUCIA ALVES")


@dataclass(frozen=True, slots=True)
class Layout:
    """Who talk number i (0-based) is: its id, customer and time.

    Talks come in blocks of `block`; block b is block 0 shifted by b * block ids, by
    b * customers customer ids and by b * block * STEP_S seconds, which is exactly what the
    SQL copies do, so a copied talk is the talk the generator would have made."""

    block: int

    @property
    def customers(self) -> int:
        return max(self.block // TALKS_PER_CUSTOMER, 1)

    def talk_id(self, i: int) -> int:
        return TALK_BASE + i

    def customer_id(self, i: int) -> int:
        b, j = divmod(i, self.block)
        # 7907 is prime: position j walks over all customers, 20 talks each, spread in time.
        return CUSTOMER_BASE + b * self.customers + (j * 7907) % self.customers

    def created(self, i: int) -> datetime:
        j = i % self.block
        return START + timedelta(seconds=i * STEP_S + (j * 7919) % 60)

    def shift(self, b: int) -> tuple[int, int, int]:
        """(id, customer id, seconds) added to block 0 to make block b."""
        return b * self.block, b * self.customers, b * self.block * STEP_S


def talk_payloads(layout: Layout, start: int, stop: int) -> list[dict[str, Any]]:
    """PipeRun payloads for talks start..stop-1; every field the store indexes or the talk's
    document holds depends on i alone (and on i % block for the varied flags)."""
    talks = sample_talks(stop - start)
    for i, talk in enumerate(talks, start=start):
        j = i % layout.block
        talk_id = layout.talk_id(i)
        customer_id = layout.customer_id(i)
        agent_id = AGENT_BASE + j % AGENTS
        created = layout.created(i)
        numbered_talk(
            talk, j, talk_id=talk_id, customer_id=customer_id, agent_id=agent_id, created=created
        )
        local_customer = (customer_id - CUSTOMER_BASE) % layout.customers
        talk["customer"].update(
            id=customer_id, name=f"{NAMES[local_customer % len(NAMES)]} {local_customer}"
        )
        login = f"agent{agent_id}"
        talk["talk_histories"][2]["user"].update(
            id=agent_id, login=login, name=f"Agent {agent_id}", email=f"{login}@example.com"
        )
        talk["talk_histories"][2]["user_id"] = agent_id
    return talks


def canonical(doc: Any) -> str:
    """A document as the stores write it."""
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()


def micros(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1_000_000)
