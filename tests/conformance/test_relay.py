"""Relay's own compiler accepts schema.graphql with a sample of what Relay apps write: a
`@refetchable` fragment on Node types (refetched through `Query.node`), a `@connection` on
`talks`, and `node`/`nodes` queries; and the refetch query it generates answers. The compiler
comes from tests/conformance/relay's lock file (`npm ci`, which .ci/run runs)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from gateway.demo import example_talk
from schema.node import encode
from tests.backends import node_packages, unavailable
from tests.support import gql, push

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tests" / "conformance" / "relay"
COMPILER = SAMPLES / "node_modules" / ".bin" / "relay-compiler"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The artifacts Relay's compiler makes of the samples against schema.graphql."""
    node_packages(SAMPLES, "Relay's compiler")
    if not COMPILER.is_file():
        unavailable(f"Relay's compiler is not installed: cd {SAMPLES} && npm ci")
    work = tmp_path_factory.mktemp("relay")
    shutil.copytree(SAMPLES / "src", work / "src")
    shutil.copy(SAMPLES / "relay.config.json", work)
    shutil.copy(ROOT / "schema.graphql", work)
    (work / "__generated__").mkdir()
    run = subprocess.run(  # noqa: S603 - the pinned compiler on the repository's samples
        [str(COMPILER), "relay.config.json"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = re.sub(r"\x1b\[[0-9;]*m", "", run.stdout + run.stderr)
    assert run.returncode == 0, output
    assert "[ERROR]" not in output, output
    assert "[WARN]" not in output, output
    return work / "__generated__"


def test_relays_compiler_accepts_the_schema_and_the_samples(compiled: Path) -> None:
    assert {p.name.split(".")[0] for p in compiled.iterdir()} == {
        "CustomerCardRefetchQuery",
        "CustomerCard_customer",
        "NodeQuery",
        "TalkListPaginationQuery",
        "TalkListQuery",
        "TalkList_query",
        "TalkRowRefetchQuery",
        "TalkRow_talk",
    }


def operation_text(compiled: Path, name: str) -> str:
    """The query text Relay sends for the generated operation `name`."""
    artifact = (compiled / f"{name}.graphql.js").read_text()
    found = re.search(r'"text": ("(?:[^"\\]|\\.)*")', artifact)
    assert found, f"no operation text in {name}"
    text: str = json.loads(found.group(1))
    return text


async def test_the_refetch_query_relay_generates_answers_the_talk_by_its_global_id(
    compiled: Path, client: httpx.AsyncClient
) -> None:
    response = await push(client, example_talk())
    assert response.status_code == 202, response.text
    talk_id = encode("Talk", 114603)
    body = await gql(client, operation_text(compiled, "TalkRowRefetchQuery"), {"id": talk_id})
    assert "errors" not in body, body
    node = body["data"]["node"]
    assert node["__typename"] == "Talk"
    assert node["id"] == talk_id
    assert node["databaseId"] == "114603"
    assert node["customer"]["id"] == encode("Customer", 144527)
