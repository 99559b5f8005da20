"""graphql-http's `serverAudits`, the GraphQL-over-HTTP conformance suite, against a demo and
a keyed gateway served by uvicorn. Node packages come from tests/conformance/graphql-http's
lock file (`npm ci`, which .ci/run runs).

No MUST may fail. An audit that only warns (a SHOULD, or notes a MAY) must be listed, with its
reason, in the README's "GraphQL over HTTP" section; a listed audit that passes again must be
taken off the list.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from subprocess import PIPE
from typing import Any

import pytest

from gateway.http.app import create_app
from tests.backends import node_packages
from tests.support import READ_KEY, live_server, make_settings

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "tests" / "conformance" / "graphql-http"
README = ROOT / "README.md"
# `- `22EB`: why` lines of the README's list of audits that warn.
LISTED = re.compile(r"^- `([0-9A-Z]{4})`: \S", re.M)


@pytest.fixture(scope="module")
def node() -> str:
    return node_packages(RUNNER, "graphql-http's audits")


def warned_in_readme() -> set[str]:
    text = README.read_text()
    start = text.index("<!-- graphql-http audits that warn -->")
    end = text.index("<!-- end of graphql-http audits -->", start)
    return set(LISTED.findall(text[start:end]))


async def audit(node: str, url: str, key: str | None) -> list[dict[str, Any]]:
    env = {**os.environ, "TALKGATE_URL": url}
    if key is not None:
        env["TALKGATE_KEY"] = key
    done = await asyncio.create_subprocess_exec(
        node, "audit.mjs", cwd=RUNNER, stdout=PIPE, stderr=PIPE, env=env
    )
    out, err = await asyncio.wait_for(done.communicate(), 120)
    assert done.returncode == 0, err.decode()
    results = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert len(results) > 40, results  # the suite ran whole
    return results


def judged(results: list[dict[str, Any]]) -> tuple[list[str], set[str]]:
    """The MUSTs failed (as lines to show), and the ids of the audits that warned."""
    failed = [f"{r['id']} {r['name']}: {r['reason']}" for r in results if r["status"] == "error"]
    warned = {r["id"] for r in results if r["status"] not in ("ok", "error")}
    return failed, warned


@pytest.mark.parametrize("keyed", [False, True], ids=["demo", "keyed"])
async def test_graphql_http_audits_pass(tmp_path: Path, node: str, keyed: bool) -> None:
    if keyed:
        settings = make_settings(tmp_path)
        key: str | None = READ_KEY
    else:
        # The demo from this machine: no key at all, as a first run is tried.
        settings = make_settings(tmp_path, demo=True, api_keys=(), webhook_secret=None)
        key = None
    app = create_app(settings)
    async with live_server(app) as address:
        results = await audit(node, f"http://{address}/graphql", key)
    failed, warned = judged(results)
    assert failed == []
    listed = warned_in_readme()
    assert warned - listed == set(), "audits that warn, not listed in the README with why"
    assert listed - warned == set(), "audits listed in the README that pass: take them off"
