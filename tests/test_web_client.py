"""The partner guide's web-client example (docs/examples/web-client), run as a partner would:
GraphQL Code Generator makes TypeScript types from schema.graphql that compile with the code
using them, and Apollo Client's cache, with the guide's type policies, merges two pages of
talks from a live demo into one list, a pause updates the agent its normalized cache holds, and
the guide's graphql-ws client prints what the guide shows. Node packages come from the
example's lock file (`npm ci`, which .ci/run runs)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from subprocess import PIPE

import httpx
import pytest

from gateway.http.app import create_app
from tests.backends import node_packages
from tests.support import WEBHOOK_SECRET, live_server, make_settings, until_subscribed

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "web-client"
PAUSE = (
    'mutation { pauseAgent(input: {credentials: {login: "1001", password: "demo-password"}})'
    " { status } }"
)


@pytest.fixture(scope="module")
def node() -> str:
    return node_packages(EXAMPLE, "docs/examples/web-client")


@pytest.fixture(scope="module")
def npm(node: str) -> str:
    found = shutil.which("npm")
    assert found is not None  # node_packages found it
    return found


def run(npm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - npm on the example's own scripts
        [npm, "run", "--silent", *args],
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_codegen_types_the_operations_and_they_compile(npm: str) -> None:
    made = run(npm, "codegen")
    assert made.returncode == 0, made.stdout + made.stderr
    generated = (EXAMPLE / "src" / "generated" / "graphql.ts").read_text()
    # The schema's own names and nullability, as partners meet them.
    assert "export type TalkPageQuery = { talks: { totalCount: number" in generated
    assert "status: TalkStatus" in generated
    assert "| 'FINISHED'" in generated
    checked = run(npm, "typecheck")
    assert checked.returncode == 0, checked.stdout + checked.stderr


async def test_apollo_merges_two_pages_of_talks_into_one_list(tmp_path: Path, node: str) -> None:
    app = create_app(make_settings(tmp_path, demo=True, api_keys=()))
    async with live_server(app) as address:
        url = f"http://{address}/graphql"
        key = app.state.demo_key
        async with httpx.AsyncClient() as http:
            direct = await http.post(
                url,
                json={"query": "{ talks(first: 10) { edges { node { id } } } }"},
                headers={"Authorization": f"Bearer {key}"},
            )
        ten = [e["node"]["id"] for e in direct.json()["data"]["talks"]["edges"]]
        # The server answers on this loop: node runs beside it, not blocking it.
        done = await asyncio.create_subprocess_exec(
            node, "pages.mjs", url, key, cwd=EXAMPLE, stdout=PIPE, stderr=PIPE
        )
        out, err = await asyncio.wait_for(done.communicate(), 60)
    assert done.returncode == 0, err.decode()
    merged = json.loads(out.decode().strip().splitlines()[-1])
    assert merged == {"totalCount": 40, "ids": ten, "hasNextPage": True}


async def test_a_pause_updates_the_agent_apollo_watches_without_a_refetch(
    tmp_path: Path, node: str
) -> None:
    app = create_app(make_settings(tmp_path, demo=True, api_keys=()))
    async with live_server(app) as address:
        done = await asyncio.create_subprocess_exec(
            node,
            "agent-cache.mjs",
            f"http://{address}/graphql",
            app.state.demo_key,
            "1001",
            "demo-password",
            cwd=EXAMPLE,
            stdout=PIPE,
            stderr=PIPE,
        )
        out, err = await asyncio.wait_for(done.communicate(), 60)
    assert done.returncode == 0, err.decode()
    # The watched agent went from the demo's first status to PAUSED, on the mutation's answer
    # alone: two requests, the query and the mutation.
    assert json.loads(out.decode().strip().splitlines()[-1]) == {
        "seen": ["UNKNOWN", "PAUSED"],
        "requests": 2,
    }


GUIDE = ROOT / "docs" / "partner-guide.md"
TIMES = re.compile(r'"changedAt":"[^"]+"')


def guide_block(after: str, kind: str) -> str:
    """The first ```kind block of the partner guide after the text `after`."""
    text = GUIDE.read_text()
    start = text.index(f"```{kind}\n", text.index(after)) + len(f"```{kind}\n")
    return text[start : text.index("```", start)]


def test_the_guides_subscription_client_is_the_example_script() -> None:
    shown = guide_block("A `graphql-ws` client (Node, with the `ws` package", "js")
    assert shown == (EXAMPLE / "subscribe.mjs").read_text()


async def test_the_guides_subscription_client_prints_what_the_guide_shows(
    tmp_path: Path, node: str
) -> None:
    app = create_app(make_settings(tmp_path, demo=True, api_keys=()))
    key = app.state.demo_key
    async with live_server(app) as address:
        listening = await asyncio.create_subprocess_exec(
            node,
            "subscribe.mjs",
            cwd=EXAMPLE,
            stdout=PIPE,
            stderr=PIPE,
            env={
                **os.environ,
                "TALKGATE_WS_URL": f"ws://{address}/graphql",
                "TALKGATE_KEY": key,
                "LISTEN_MS": "3000",
            },
        )
        # The demo: its /metrics is open to this machine, without a key.
        await until_subscribed(address, "talks", key=None)
        await until_subscribed(address, "agent-status", key=None)
        assert listening.stdout is not None
        # As the guide says: a delivery of PipeRun's example talk, then (once its event is
        # printed: the two subscriptions' events are not ordered) agent 1001 paused.
        async with httpx.AsyncClient(base_url=f"http://{address}") as http:
            delivered = await http.post(
                "/webhooks/talks",
                content=(ROOT / "gateway" / "demo" / "talk_114603.json").read_bytes(),
                headers={"Content-Type": "application/json", "X-Webhook-Token": WEBHOOK_SECRET},
            )
            assert delivered.status_code == 202, delivered.text
            first = await asyncio.wait_for(listening.stdout.readline(), 10)
            paused = await http.post(
                "/graphql",
                json={"query": PAUSE},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert "errors" not in paused.json(), paused.text
        out, err = await asyncio.wait_for(listening.communicate(), 30)
    assert listening.returncode == 0, err.decode()
    printed = TIMES.sub('"changedAt":"..."', (first + out).decode())
    shown = TIMES.sub('"changedAt":"..."', guide_block("Output against the demo, while", "text"))
    assert printed == shown
