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
        talk.update(
            id=talk_id,
            customer_id=customer_id,
            agent_id=agent_id,
            queue_id=17 + n % 3,
            created_at=created.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            tracking_number=created.strftime("%Y%m%d") + str(talk_id),
            external_protocol=f"PRT-{talk_id}" if n % 2 else None,
            is_critical=n % 7 == 0,
            was_success=n % 3 == 0,
            is_waiting=n % 5 == 1,
            # Naive local time, as PipeRun sends `finished_at`.
            finished_at=(
                (created + timedelta(minutes=25)).astimezone(_LOCAL).strftime("%Y-%m-%d %H:%M:%S")
                if n % 4
                else None
            ),
        )
        talk["customer"].update(id=customer_id, name=_NAMES[n % len(_NAMES)])
        for history_number, history in enumerate(talk["talk_histories"]):
            moment = created + timedelta(minutes=2 * history_number)
            history.update(
                id=talk_id * 10 + history_number,
                talk_id=talk_id,
                # PipeRun's mix of spellings: naive local `sent_at`, UTC `created_at`.
                sent_at=moment.astimezone(_LOCAL).strftime("%Y-%m-%d %H:%M:%S"),
                created_at=moment.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
                read_at=None,
                left_at=None,
            )
        talk["talk_histories"][0]["message"] = _LINES[n % len(_LINES)]
        user = talk["talk_histories"][2]["user"]
        email = agent_name.split()[0].lower() + "@example.com"
        user.update(id=agent_id, login=login, name=agent_name, is_bot=False, email=email)
        talk["talk_histories"][2]["user_id"] = agent_id
        for event in talk["talk_events"]:
            event.update(id=talk_id * 10, talk_id=talk_id, agent_id=agent_id)
        talks.append(talk)
    return talks
