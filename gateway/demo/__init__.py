"""Sample talks for the first run (`talkgate serve --demo`), made from PipeRun's real example."""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import orjson

_LOCAL = ZoneInfo("America/Sao_Paulo")
_NAMES = ("JONAS", "MARIA SILVA", "JOÃO PEREIRA", "ANA COSTA", "PEDRO SOUZA", "LUCIA ALVES")
# Logins are the agents' Talk.me login numbers, which the demo's sandbox accepts.
_AGENTS = (
    (31, "1001", "Carla Mendes"),
    (32, "1002", "Rafael Lima"),
    (33, "1003", "Bianca Rocha"),
)
_LINES = (
    "Olá, preciso de ajuda com minha fatura",
    "Minha internet está lenta desde ontem",
    "Quero mudar meu plano para a fibra de 500 mega",
    "Obrigado pelo atendimento!",
    "Pode me enviar a segunda via do boleto?",
)


def example_talk() -> dict[str, Any]:
    """PipeRun's documented example payload, as it was delivered (dirty fields included)."""
    raw = resources.files("gateway.demo").joinpath("talk_114603.json").read_bytes()
    talk: dict[str, Any] = orjson.loads(raw)
    return talk


def numbered_talk(
    talk: dict[str, Any],
    variant: int,
    *,
    talk_id: int,
    customer_id: int,
    agent_id: int,
    created: datetime,
) -> None:
    """Make `talk` (a copy of the example) talk `talk_id`, created at `created` by customer
    `customer_id` and handled by agent `agent_id`: its queue and flags vary with `variant`,
    its histories follow two minutes apart (PipeRun's mix of spellings: naive local
    `sent_at`, UTC `created_at`), its events are the agent's. The demo's sample talks and
    the benchmarks' stores are made by this one function."""
    talk.update(
        id=talk_id,
        customer_id=customer_id,
        agent_id=agent_id,
        queue_id=17 + variant % 3,
        created_at=created.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        tracking_number=created.strftime("%Y%m%d") + str(talk_id),
        external_protocol=f"PRT-{talk_id}" if variant % 2 else None,
        is_critical=variant % 7 == 0,
        was_success=variant % 3 == 0,
        is_waiting=variant % 5 == 1,
        # Naive local time, as PipeRun sends `finished_at`.
        finished_at=(
            (created + timedelta(minutes=25)).astimezone(_LOCAL).strftime("%Y-%m-%d %H:%M:%S")
            if variant % 4
            else None
        ),
    )
    for number, history in enumerate(talk["talk_histories"]):
        moment = created + timedelta(minutes=2 * number)
        history.update(
            id=talk_id * 10 + number,
            talk_id=talk_id,
            sent_at=moment.astimezone(_LOCAL).strftime("%Y-%m-%d %H:%M:%S"),
            created_at=moment.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        )
    for event in talk["talk_events"]:
        event.update(id=talk_id * 10, talk_id=talk_id, agent_id=agent_id)


def renumbered_talk(talk_id: int, tracking_number: str) -> dict[str, Any]:
    """The example talk as it was delivered, but for its ids: talk `talk_id`, its histories
    and events numbered after it (the benchmarks' webhook bodies)."""
    talk = example_talk()
    talk["id"] = talk_id
    talk["tracking_number"] = tracking_number
    for n, history in enumerate(talk["talk_histories"]):
        history["id"] = talk_id * 10 + n
        history["talk_id"] = talk_id
    for event in talk["talk_events"]:
        event["id"] = talk_id * 10
        event["talk_id"] = talk_id
    return talk


def sample_talks(count: int = 40, *, seed: int = 7) -> list[dict[str, Any]]:
    """`count` varied talks derived from the example: customers, agents, states, messages."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not secrets
    base = example_talk()
    start = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)
    talks = []
    for n in range(count):
        talk = copy.deepcopy(base)
        talk_id = 200_000 + n
        customer_id = 500_000 + n % len(_NAMES)
        agent_id, login, agent_name = _AGENTS[n % len(_AGENTS)]
        created = start + timedelta(hours=7 * n, minutes=rng.randrange(60))
        numbered_talk(
            talk, n, talk_id=talk_id, customer_id=customer_id, agent_id=agent_id, created=created
        )
        talk["customer"].update(id=customer_id, name=_NAMES[n % len(_NAMES)])
        for history in talk["talk_histories"]:
            history.update(read_at=None, left_at=None)
        talk["talk_histories"][0]["message"] = _LINES[n % len(_LINES)]
        user = talk["talk_histories"][2]["user"]
        email = agent_name.split()[0].lower() + "@example.com"
        user.update(id=agent_id, login=login, name=agent_name, is_bot=False, email=email)
        talk["talk_histories"][2]["user_id"] = agent_id
        talks.append(talk)
    return talks
