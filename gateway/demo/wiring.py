"""What `serve --demo` changes in the app: Talk.me is the built-in sandbox, a fresh key with
every scope serves the explorer, and the sample talks are loaded through the webhook's path."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import orjson
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp

from gateway.auth import key_digest, new_key
from gateway.demo import sample_talks
from gateway.ingest.ingestor import Body, Ingestor
from gateway.settings import SCOPES, ApiKeyEntry, Settings
from gateway.talkme import create_sandbox

SANDBOX_PREFIX = "/_sandbox/talkme"
# The demo's sandbox accepts these; they are sample values, not secrets.
DEMO_AGENTS = {"1001": "demo-password", "1002": "demo-password", "1003": "demo-password"}
DEMO_TOKEN = "demo-token"  # noqa: S105
DEMO_EXTERNAL_LOGIN_TOKEN = "demo-external-login-token"  # noqa: S105


@dataclass(frozen=True, slots=True)
class Demo:
    """The demo's parts of an app."""

    # The settings, Talk.me pointed at the sandbox and the demo key among the API keys.
    settings: Settings
    # The key the explorer is served with (this run only).
    key: str
    # The sandbox, mounted at SANDBOX_PREFIX.
    sandbox: ASGIApp
    # What carries the Talk.me client's requests: to the sandbox unless given another.
    transport: httpx.AsyncBaseTransport


def demo_wiring(settings: Settings, transport: httpx.AsyncBaseTransport | None) -> Demo:
    """The demo's parts for `settings` (a `--demo` run's)."""
    key = new_key()
    entry = ApiKeyEntry(name="demo", sha256=key_digest(key), scopes=SCOPES)
    settings = demo_settings(settings).model_copy(update={"api_keys": (*settings.api_keys, entry)})
    sandbox = create_sandbox(
        DEMO_AGENTS, token=DEMO_TOKEN, external_login_token=DEMO_EXTERNAL_LOGIN_TOKEN
    )
    if transport is None:
        transport = httpx.ASGITransport(app=Starlette(routes=[Mount(SANDBOX_PREFIX, app=sandbox)]))
    return Demo(settings=settings, key=key, sandbox=sandbox, transport=transport)


def demo_settings(settings: Settings) -> Settings:
    """Point Talk.me at the built-in sandbox, with demo tokens."""
    base = settings.base_url + SANDBOX_PREFIX
    return settings.model_copy(
        update={
            "talkme_login_url": base + "/login",
            "talkme_agent_api_url": base,
            "talkme_bc_api_url": base,
            "talkme_token": SecretStr(DEMO_TOKEN),
            "talkme_external_login_token": SecretStr(DEMO_EXTERNAL_LOGIN_TOKEN),
        }
    )


async def seed_demo(ingestor: Ingestor) -> int:
    """Load the sample talks through the webhook's own path; reloading changes nothing."""
    bodies = [Body(orjson.dumps(t), "demo") for t in sample_talks()]
    outcomes = await ingestor.ingest_many(bodies)
    return len(outcomes)
