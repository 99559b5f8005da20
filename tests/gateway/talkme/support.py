"""What the Talk.me client's tests share that is not a fixture: the sandbox's credentials, the
client's settings, a recorded sleep, and checks that no secret reached a text.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from pydantic import SecretStr

from gateway.settings import Settings
from tests.clock import FakeClock

TOKEN = "tok-sandbox-7f3a9c51"


EXTERNAL_LOGIN_TOKEN = "ext-sandbox-21bd04e8"


LOGIN = "1234"


PASSWORD = "pw-agent-5555-q9"


SECRETS = (TOKEN, EXTERNAL_LOGIN_TOKEN, PASSWORD)


SANDBOX_URL = "http://talkme.sandbox"


FAILURES = 3


RESET_S = 30.0


def talkme_settings(**overrides: Any) -> Settings:
    """Settings pointing both Talkk.me bases at the sandbox, with its tokens."""
    values: dict[str, Any] = {
        "talkme_agent_api_url": SANDBOX_URL,
        "talkme_bc_api_url": SANDBOX_URL,
        "talkme_token": SecretStr(TOKEN),
        "talkme_external_login_token": SecretStr(EXTERNAL_LOGIN_TOKEN),
        "talkme_timeout_s": 1.0,
        "breaker_failures": FAILURES,
        "breaker_reset_s": RESET_S,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


class RecordedSleep:
    """An `asyncio.sleep` stand-in that notes each delay and returns at once."""

    def __init__(self, clock: FakeClock | None = None, *, advances_by: float | None = None) -> None:
        self.delays: list[float] = []
        self._clock = clock
        self._advances_by = advances_by

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self._clock is not None:
            self._clock.advance(delay if self._advances_by is None else self._advances_by)


def assert_no_secrets(texts: Iterable[str]) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def record_texts(records: Iterable[logging.LogRecord]) -> list[str]:
    """Everything a log record could print: its message and every attribute."""
    texts: list[str] = []
    for record in records:
        texts.append(record.getMessage())
        texts.extend(str(value) for value in record.__dict__.values())
    return texts
