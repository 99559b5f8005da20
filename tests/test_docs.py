"""The guides are tested: every request in README.md, docs/partner-guide.md and
docs/operator-guide.md that shows its output is run against a fresh demo, and the output shown
is compared with the output got. A drifting doc fails here. Each guide gets its own fresh demo
and its blocks run in the guide's order (what one example writes, the next may read).

How a guide's blocks are read (one mechanism for all three files):

- A request block followed by an output block, nothing but blank lines between them, is a
  pair. Requests: ```graphql (each operation of the block POSTed to /graphql with the demo
  key, in order; a line `# variables: {...}` gives the variables of every operation that
  declares them, `"<session>"` standing for the `session` of the latest answer), ```sh (each
  `curl` command), ```python and ```js (scripts, run by the `$ python NAME.py` or
  `$ node NAME.mjs` line of the output block). Outputs: ```json (one JSON value per request,
  in order) and ```text (for curl: `HTTP/1.1 ...`, `name: value` headers, the body of the
  last request; the ones before must answer 200).
- In an ```sh block, the comment lines right after a `curl` command (up to a blank or other
  line) are its output, as above. bash makes each curl's words (quotes, `$VAR`, `$(...)`,
  heredocs: the guides use them all, which shlex alone cannot expand): `curl` is a shell
  function there that records them, then the request is sent with httpx. A curl shown with
  no output must still answer 200 without `errors`.
- A ```text block whose first line starts with `$ ` is a run of commands, each followed by
  its output: `talkgate ...` (the CLI as a subprocess; `talkgate serve` on a free port, read
  until it has printed as many lines as shown, then stopped), `python NAME.py` and
  `node NAME.mjs` (the script of the block before), `export V=X`, `V=X command`, `echo $?`.
  The files commands name are made by FILES below.
- A ```text block of `>` and `<` lines is a graphql-transport-ws exchange on a WebSocket to
  /graphql: `>` frames are sent in turn, the `<` frames after them must arrive (any order).
- `<!-- not compared: why -->` right before a block opts it out, and needs a reason.
  `<!-- demo: TALKGATE_X=v ... -->` right before a request runs it on a fresh demo of its own
  with those settings (a value naming a file of FILES is that file). Every ```json and
  ```text block, and every ```sh block whose curl shows output, is compared or opted out:
  nothing escapes silently, and the counts and reasons are printed.

The demo is the app `talkgate serve --demo` makes, with one key configured as the partner
guide says (`TALKGATE_API_KEYS` alongside `--demo`): `$TALKGATE_KEY` and `tgk_...` in
commands are that key (scope talks:read); requests without a key get the demo's open access
from this machine. The examples' http://127.0.0.1:8000 becomes the live server's address in
the requests, and back again in the answers.

Normalised on both sides before comparing, because they are the run's and not the product's:
API keys (`tgk_...`), agent sessions and login tickets (random each run), request ids, and
the clock's times (`changedAt`, `expiresAt`, `fetchedAt`, `receivedAt`; a CLI's `in 0.1s`
and `536/s`). Kept: cursors (they encode a talk's time and id only, the same on every fresh
demo), ids, ETags (made from the answer). In shown output `...` is a wildcard: a string
ending in `...` is a prefix (`"..."` any value), a list ending in `...` a prefix of the list,
a text line `...` any lines, and `...` inside a text line any characters.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from graphql import OperationDefinitionNode, parse
from websockets.asyncio.client import connect

from gateway.auth import key_digest, new_key
from gateway.demo import example_talk
from gateway.http.app import create_app
from gateway.replicas.pubsub import AGENT_STATUS, TALKS
from gateway.settings import ApiKeyEntry
from tests.factories import talk
from tests.support import event_streams, live_server, make_settings

ROOT = Path(__file__).resolve().parents[1]
GUIDES = ["README.md", "docs/partner-guide.md", "docs/operator-guide.md"]
DOC_BASE = "http://127.0.0.1:8000"
MORE = "..."
VOLATILE_KEYS = {"changedAt", "expiresAt", "fetchedAt", "receivedAt", "session", "requestId"}
REQUESTS = {"graphql", "sh", "python", "js"}


def export_ndjson() -> bytes:
    """Three talks and one that is not a talk (no id): the operator guide's backfill."""
    good = [orjson.dumps(talk(n)) for n in (900001, 900002, 900003)]
    return b"\n".join([*good[:2], orjson.dumps({"customer_id": 1}), good[2]]) + b"\n"


def manifest() -> bytes:
    """An allow-list of one document, for the partner guide's allow-list mode."""
    document = "{ talks(first: 1) { totalCount } }"
    return orjson.dumps({hashlib.sha256(document.encode()).hexdigest(): document})


# Files the guides' commands (and `<!-- demo: -->` settings) name, made in the demo's directory.
FILES: dict[str, Callable[[], bytes]] = {
    "export.ndjson": export_ndjson,
    "talk.json": lambda: orjson.dumps(example_talk()),
    "manifest.json": manifest,
}


# -- reading the guides ---------------------------------------------------------------------


@dataclass
class Block:
    path: str
    line: int
    lang: str
    text: str
    marker: str | None  # the HTML comment right before it, if any


FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```$", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"<!--\s*(.*?)\s*-->\s*\Z", re.DOTALL)


def blocks(path: str) -> list[tuple[Block, str]]:
    """The fenced blocks of a guide, each with the text between it and the block before."""
    text = (ROOT / path).read_text()
    found: list[tuple[Block, str]] = []
    end = 0
    for match in FENCE.finditer(text):
        between = text[end : match.start()]
        marker = MARKER.search(between)
        indent = len(match.group(1))
        body = "".join(line[indent:] for line in match.group(3).splitlines(keepends=True))
        line = text.count("\n", 0, match.start()) + 1
        block = Block(path, line, match.group(2), body, marker.group(1) if marker else None)
        found.append((block, between))
        end = match.end()
    return found


def must_be_compared(block: Block) -> bool:
    if block.lang in ("json", "text"):
        return True
    return block.lang == "sh" and any(c.shown for c in curl_commands(block.text))


# -- normalising and comparing --------------------------------------------------------------


def normal(value: Any, key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: normal(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normal(v) for v in value]
    if isinstance(value, str):
        if key in VOLATILE_KEYS:
            return f"<{key}>"
        value = re.sub(r"tgk_[A-Za-z0-9_-]+(\.\.\.)?", "tgk_...", value)
        return re.sub(r"/talkme/launch/[A-Za-z0-9_-]+", "/talkme/launch/<ticket>", value)
    return value


def doc_json_values(text: str) -> list[Any]:
    """The JSON values of a shown block, bare `...` read as the string "..."."""
    quoted = re.sub(r'("(?:[^"\\]|\\.)*")|\.\.\.', lambda m: m.group(1) or '"..."', text)
    decoder = json.JSONDecoder()
    values: list[Any] = []
    at = 0
    while True:
        while at < len(quoted) and quoted[at].isspace():
            at += 1
        if at == len(quoted):
            return values
        value, at = decoder.raw_decode(quoted, at)
        values.append(value)


def differences(shown: Any, got: Any, where: str) -> list[str]:
    if isinstance(shown, str) and shown.endswith(MORE):
        prefix = shown[: -len(MORE)]
        if isinstance(got, str) and got.startswith(prefix):
            return []
        if prefix == "":  # `...` standing for any value
            return []
        return [f"{where}: shown {shown!r}, got {got!r}"]
    if isinstance(shown, dict) and isinstance(got, dict):
        if set(shown) != set(got):
            return [f"{where}: shown keys {sorted(shown)}, got {sorted(got)}"]
        return [d for k in shown for d in differences(shown[k], got[k], f"{where}.{k}")]
    if isinstance(shown, list) and isinstance(got, list):
        more = bool(shown) and shown[-1] == MORE
        items = shown[:-1] if more else shown
        if len(got) < len(items) or (not more and len(got) != len(items)):
            return [f"{where}: shown {len(items)} items{'+' if more else ''}, got {len(got)}"]
        return [d for i, s in enumerate(items) for d in differences(s, got[i], f"{where}[{i}]")]
    if shown != got:
        return [f"{where}: shown {shown!r}, got {got!r}"]
    return []


def text_normal(line: str) -> str:
    line = re.sub(r"tgk_[A-Za-z0-9_-]+(\.\.\.)?", "tgk_...", line)
    line = re.sub(r"\bin \d+(\.\d+)?s\b", "in <time>s", line)
    line = re.sub(r"\b[\d,]+/s\b", "<rate>/s", line)
    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:8000", line)


def text_differences(shown: list[str], got: list[str], what: str) -> list[str]:
    """Lines shown against lines got: `...` alone skips lines, within a line any text."""
    pattern = ""
    for line in shown:
        if line.strip() == MORE:
            pattern += r"(?:.*\n)*?"
        else:
            parts = text_normal(line).split(MORE)
            pattern += ".*?".join(re.escape(p) for p in parts) + r"\n"
    got_text = "".join(text_normal(line) + "\n" for line in got)
    if re.fullmatch(pattern, got_text):
        return []
    return [f"{what}: shown\n  " + "\n  ".join(shown) + "\ngot\n  " + "\n  ".join(got)]


# -- a demo ---------------------------------------------------------------------------------


@dataclass
class Demo:
    base: str  # http://127.0.0.1:PORT
    demo_key: str
    partner_key: str
    workdir: Path
    env: dict[str, str]
    sessions: list[str] = field(default_factory=list)
    scripts: dict[str, str] = field(default_factory=dict)

    def local(self, text: str) -> str:
        return text.replace(DOC_BASE, self.base)

    def back(self, text: str) -> str:
        return text.replace(self.base, DOC_BASE)


@contextlib.asynccontextmanager
async def demo(tmp_path: Path, settings_env: dict[str, str]) -> AsyncIterator[Demo]:
    """A fresh demo as `talkgate serve --demo` makes it, with one configured talks:read key
    (the partner guide's `TALKGATE_API_KEYS` alongside `--demo`), on a loopback port."""
    await asyncio.to_thread(tmp_path.mkdir, parents=True, exist_ok=True)
    partner_key = new_key()
    entry = ApiKeyEntry(
        name="partner", sha256=key_digest(partner_key), scopes=frozenset({"talks:read"})
    )
    for name, make in FILES.items():
        await asyncio.to_thread((tmp_path / name).write_bytes, make())
    overrides: dict[str, Any] = {
        name.removeprefix("TALKGATE_").lower(): str(tmp_path / value) if value in FILES else value
        for name, value in settings_env.items()
    }
    settings = make_settings(
        tmp_path, demo=True, api_keys=(entry,), webhook_secret=None, **overrides
    )
    app = create_app(settings)
    async with live_server(app, settings) as hostport:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TALKGATE_")}
        env["PYTHONPATH"] = str(ROOT)
        yield Demo(f"http://{hostport}", app.state.demo_key, partner_key, tmp_path, env)


# -- running requests -----------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    reason: str
    headers: httpx.Headers
    body: str


def operations(document: str) -> Iterator[tuple[str, set[str]]]:
    parsed = parse(document)
    for definition in parsed.definitions:
        assert isinstance(definition, OperationDefinitionNode)
        assert definition.loc is not None
        names = {v.variable.name.value for v in definition.variable_definitions or ()}
        yield document[definition.loc.start : definition.loc.end], names


async def run_graphql(block: Block, d: Demo) -> list[Any]:
    code = "\n".join(line for line in block.text.splitlines() if not line.startswith("#"))
    given: dict[str, Any] = {}
    for line in block.text.splitlines():
        if line.startswith("# variables:"):
            text = line.removeprefix("# variables:").strip()
            given.update(json.JSONDecoder().raw_decode(text)[0])
    answers = []
    async with httpx.AsyncClient(timeout=30) as client:
        for operation, names in operations(code):
            variables = {
                k: d.sessions[-1] if v == "<session>" else v for k, v in given.items() if k in names
            }
            response = await client.post(
                f"{d.base}/graphql",
                json={"query": operation, "variables": variables},
                headers={"Authorization": f"Bearer {d.demo_key}"},
            )
            answers.append(got_json(response.text, d))
    return answers


def got_json(text: str, d: Demo) -> Any:
    value = json.loads(d.back(text))
    for found in re.findall(r'"session":"([^"]+)"', text):
        d.sessions.append(found)
    return value


CURL_STUB = r"""
curl() {
  printf '%s\0' "$@" > "$__TG_DIR/curl.$__TG_N.argv"
  if [[ " $* " == *" @- "* ]]; then cat > "$__TG_DIR/curl.$__TG_N.stdin"; fi
  __TG_N=$((__TG_N + 1))
}
__TG_N=0
"""


@dataclass
class Curl:
    command: str
    shown: list[str]  # its output comment lines, without "# "


def curl_commands(text: str) -> list[Curl]:
    """Each `curl` command of an sh block with the output comment lines right after it."""
    lines = text.splitlines()
    found: list[Curl] = []
    i = 0
    while i < len(lines):
        if not lines[i].startswith("curl "):
            i += 1
            continue
        start = i
        heredoc = re.search(r"<<'?(\w+)'?", lines[i])
        while lines[i].endswith("\\"):
            i += 1
            heredoc = heredoc or re.search(r"<<'?(\w+)'?", lines[i])
        if heredoc:
            while lines[i] != heredoc.group(1):
                i += 1
        i += 1
        shown = []
        while i < len(lines) and lines[i].startswith("# "):
            shown.append(lines[i][2:])
            i += 1
        found.append(Curl("\n".join(lines[start:i]), shown))
    return found


def curl_request(argv: list[str], stdin: bytes | None) -> tuple[str, str, dict[str, str], bytes]:
    """What curl would send for `argv` (its options the guides use)."""
    method, url, headers, data, urlencoded, get = None, "", {}, [], [], False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-s", "-i", "-sS"):
            pass
        elif arg == "-G":
            get = True
        elif arg == "-X":
            i += 1
            method = argv[i]
        elif arg == "-H":
            i += 1
            name, _, value = argv[i].partition(":")
            headers[name.strip()] = value.strip()
        elif arg in ("-d", "--data", "--data-raw", "--data-binary"):
            i += 1
            data.append(stdin or b"" if argv[i] == "@-" else argv[i].encode())
        elif arg == "--data-urlencode":
            i += 1
            name, _, value = argv[i].partition("=")
            urlencoded.append(urlencode({name: value}))
        elif arg.startswith("-"):
            raise AssertionError(f"curl option {arg} is not one the docs test knows")
        else:
            url = arg
        i += 1
    if get:
        query = "&".join([*(d.decode() for d in data), *urlencoded])
        return method or "GET", f"{url}?{query}", headers, b""
    body = b"&".join([*data, *(u.encode() for u in urlencoded)])
    if body and "Content-Type" not in headers:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    return method or ("POST" if body else "GET"), url, headers, body


async def run_sh(block: Block, d: Demo) -> list[tuple[list[str], Answer]]:
    """Each curl of the block, its words made by bash (quotes, $VAR, $(...), heredocs), its
    request sent with httpx."""
    scratch = d.workdir / "curl"
    scratch.mkdir(exist_ok=True)
    for old in scratch.iterdir():
        old.unlink()
    env = {**d.env, "TALKGATE_KEY": d.partner_key, "__TG_DIR": str(scratch)}
    script = CURL_STUB + d.local(block.text).replace("tgk_...", d.partner_key)
    bash = await asyncio.create_subprocess_exec(
        "bash", "-euc", script, env=env, cwd=d.workdir, stdin=asyncio.subprocess.DEVNULL
    )
    assert await asyncio.wait_for(bash.wait(), 30) == 0, f"{block.path}:{block.line}: bash failed"
    results = []
    shown = [c.shown for c in curl_commands(block.text)]
    runs = len(list(scratch.glob("curl.*.argv")))
    async with httpx.AsyncClient(timeout=30) as client:
        for n in range(runs):
            argv = (scratch / f"curl.{n}.argv").read_bytes().split(b"\0")[:-1]
            stdin_file = scratch / f"curl.{n}.stdin"
            stdin = stdin_file.read_bytes() if stdin_file.exists() else None
            method, url, headers, body = curl_request([a.decode() for a in argv], stdin)
            response = await client.request(method, url, headers=headers, content=body)
            answer = Answer(
                response.status_code, response.reason_phrase, response.headers, response.text
            )
            results.append((shown[n] if n < len(shown) else [], answer))
    return results


def answer_differences(shown: list[str], answer: Answer, d: Demo, what: str) -> list[str]:
    """An answer against its comment lines: the status line and headers shown, the body."""
    problems = []
    body_lines: list[str] = []
    for line in shown:
        if line.startswith("HTTP/"):
            got = f"HTTP/1.1 {answer.status} {answer.reason}"
            if line != got:
                problems.append(f"{what}: shown {line!r}, got {got!r}")
        elif re.match(r"^[a-z-]+: ", line) and not body_lines:
            name, _, value = line.partition(": ")
            if answer.headers.get(name) != value:
                got_value = answer.headers.get(name)
                problems.append(f"{what}: header {name}: shown {value!r}, got {got_value!r}")
        else:
            body_lines.append(line)
    if body_lines:
        if answer.body and answer.body.lstrip()[:1] in "{[":
            shown_values = doc_json_values("\n".join(body_lines))
            got = normal(got_json(answer.body, d))
            problems += differences(normal(shown_values[0]), got, f"{what} $")
        else:
            problems += text_differences(body_lines, [answer.body], what)
    return problems


# -- running commands -----------------------------------------------------------------------


async def run_commands(block: Block, d: Demo) -> list[str]:
    """A `$ ...` text block: each command run, its output compared with the lines shown."""
    problems: list[str] = []
    env = dict(d.env)
    lines = block.text.splitlines()
    status = 0
    i = 0
    while i < len(lines):
        command = lines[i].removeprefix("$ ")
        i += 1
        shown = []
        while i < len(lines) and not lines[i].startswith("$ "):
            shown.append(lines[i])
            i += 1
        words = shlex.split(command.replace("tgk_...", d.partner_key), comments=True)
        assignments = {}
        while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
            name, _, value = words.pop(0).partition("=")
            assignments[name] = value
        what = f"{block.path}:{block.line} `{command}`"
        if words[:1] == ["export"]:
            for word in words[1:]:
                name, _, value = word.partition("=")
                env[name] = value
            got = []
        elif words == ["echo", "$?"]:
            got = [str(status)]
        else:
            status, got = await run_one(words, {**env, **assignments}, len(shown), d)
        problems += text_differences(shown, got, what)
    return problems


async def run_one(
    words: list[str], env: dict[str, str], shown: int, d: Demo
) -> tuple[int, list[str]]:
    program = words[0].rsplit("/", 1)[-1]
    if program == "talkgate":
        argv = [sys.executable, "-m", "gateway.cli", *words[1:]]
    elif program == "python":
        (d.workdir / words[1]).write_text(d.local(d.scripts["python"]))
        argv = [sys.executable, *words[1:]]
    elif program == "node":
        assert shutil.which("node"), "the partner guide's JS example needs Node 18+ on PATH"
        (d.workdir / words[1]).write_text(d.scripts["js"])
        argv = ["node", *words[1:]]
    else:
        raise AssertionError(f"the docs test does not run {program}")
    env = {**env, "TALKGATE_URL": f"{d.base}/graphql", "TALKGATE_KEY": d.partner_key}
    if program == "talkgate" and words[1:2] == ["serve"]:
        return await first_lines(argv, env, shown, d)
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=d.workdir,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, d.back(out.decode()).splitlines()


async def first_lines(
    argv: list[str], env: dict[str, str], count: int, d: Demo
) -> tuple[int, list[str]]:
    """`talkgate serve`'s first `count` lines on stderr (the demo's banner, or its refusal),
    on a free port in a directory of its own; then it is stopped."""
    where = d.workdir / f"serve{len(list(d.workdir.glob('serve*')))}"
    where.mkdir()
    if "--port" not in argv:
        argv = [*argv, "--port", "0"]
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=where,
        env={**env, "TALKGATE_LOG_LEVEL": "WARNING"},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    got: list[str] = []
    status = 0  # still serving when stopped
    try:
        while len(got) < count:
            line = await asyncio.wait_for(process.stderr.readline(), 30)
            if not line:
                status = await process.wait()  # it stopped by itself
                break
            got.append(line.decode().rstrip("\n"))
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()
    return status, got


# -- WebSocket exchanges --------------------------------------------------------------------


async def listening(d: Demo) -> int:
    """The demo's event streams, as its /metrics (open to loopback) counts them."""
    address = d.base.removeprefix("http://")
    return sum([await event_streams(address, topic, key=None) for topic in (AGENT_STATUS, TALKS)])


async def run_frames(block: Block, d: Demo) -> list[str]:
    """Each `>` frame sent in turn (after a subscription's, until the server listens: what
    a client sends next may be what the subscription reports), then the `<` frames shown
    after it must arrive, in any order (a mutation's answer and the event it makes race)."""
    url = d.base.replace("http://", "ws://") + "/graphql"
    what = f"{block.path}:{block.line}"
    problems: list[str] = []
    lines = block.text.splitlines()
    async with connect(url, subprotocols=["graphql-transport-ws"]) as socket:  # type: ignore[list-item]
        i = 0
        while i < len(lines):
            if lines[i].startswith("> "):
                before = await listening(d)
                await socket.send(lines[i][2:].replace("tgk_...", d.demo_key))
                if '"query":"subscription' in lines[i]:
                    for _ in range(1000):
                        if await listening(d) > before:
                            break
                        await asyncio.sleep(0.01)
                i += 1
                continue
            shown = []
            while i < len(lines) and lines[i].startswith("< "):
                shown.append(normal(doc_json_values(lines[i][2:])[0]))
                i += 1
            for _ in range(len(shown)):
                got = normal(json.loads(await asyncio.wait_for(socket.recv(), 10)))
                match = next((s for s in shown if not differences(s, got, what)), None)
                if match is None:
                    problems.append(f"{what}: got the frame {got}, not one shown: {shown}")
                else:
                    shown.remove(match)
    return problems


# -- the test -------------------------------------------------------------------------------


def pairs(found: list[tuple[Block, str]]) -> Iterator[tuple[Block, Block | None, str | None]]:
    """(request or run, its output or None, the reason it is not compared or None)."""
    for n, (block, between) in enumerate(found):
        following = found[n + 1] if n + 1 < len(found) else None
        if block.marker and block.marker.startswith("not compared"):
            reason = block.marker.partition(":")[2].strip()
            assert reason, f"{block.path}:{block.line}: a block opts out only with a reason"
            yield block, None, reason
        elif (
            block.lang in REQUESTS
            and following
            and following[0].lang in ("json", "text")
            and not following[1].strip()
        ):
            yield block, following[0], None
        elif block.lang == "text" and block.text.startswith(("$ ", "> ")):
            if n and found[n - 1][0].lang in REQUESTS and not between.strip():
                continue  # the output of the block before
            yield block, None, None
        elif block.lang == "sh" and curl_commands(block.text):
            yield block, None, None


async def check(pair: tuple[Block, Block | None, str | None], d: Demo) -> list[str]:
    block, output, _ = pair
    what = f"{block.path}:{block.line}"
    if block.lang == "text" and block.text.startswith("> "):
        return await run_frames(block, d)
    if block.lang == "text":
        return await run_commands(block, d)
    if block.lang in ("python", "js"):
        assert output is not None, what
        assert output.lang == "text", what
        d.scripts[block.lang] = block.text
        return await run_commands(output, d)
    if block.lang == "graphql":
        assert output is not None, what
        got = await run_graphql(block, d)
        shown = doc_json_values(output.text)
        if len(shown) != len(got):
            return [f"{what}: {len(shown)} answers shown for {len(got)} operations"]
        return [
            p
            for s, g in zip(shown, got, strict=True)
            for p in differences(normal(s), normal(g), f"{what} $")
        ]
    assert block.lang == "sh", what
    problems = []
    answers = await run_sh(block, d)
    if output is not None:  # a block after it shows the answers
        if output.lang == "json":
            shown_values = doc_json_values(output.text)
            if len(shown_values) != len(answers):
                return [f"{what}: {len(shown_values)} answers shown for {len(answers)} requests"]
            for value, (_, answer) in zip(shown_values, answers, strict=True):
                got = normal(got_json(answer.body, d))
                problems += differences(normal(value), got, f"{what} $")
        else:
            for _, answer in answers[:-1]:
                assert answer.status == 200, f"{what}: {answer.status} {answer.body}"
            problems += answer_differences(output.text.splitlines(), answers[-1][1], d, what)
        return problems
    for shown, answer in answers:
        if shown:
            problems += answer_differences(shown, answer, d, what)
        elif answer.status != 200 or '"errors"' in answer.body:  # shown without its output
            problems.append(
                f"{what}: a request shown without output got {answer.status} {answer.body}"
            )
    return problems


@pytest.mark.parametrize("path", GUIDES)
async def test_the_guide_shows_what_a_fresh_demo_answers(path: str, tmp_path: Path) -> None:
    read = blocks(path)
    found = list(pairs(read))
    compared = [p for p in found if p[2] is None]
    covered = {id(b) for p in found for b in (p[0], p[1]) if b is not None}
    escaped = [
        f"{b.path}:{b.line} ```{b.lang}"
        for b, _ in read
        if must_be_compared(b) and id(b) not in covered
    ]
    # A block shown as output must be compared or opted out with its reason.
    assert not escaped, f"blocks neither compared nor opted out: {escaped}"
    problems: list[str] = []
    async with demo(tmp_path / "demo", {}) as d:
        for pair in compared:
            marker = pair[0].marker or ""
            if marker.startswith("demo:"):
                env = dict(w.split("=", 1) for w in marker.removeprefix("demo:").split())
                async with demo(tmp_path / f"demo{pair[0].line}", env) as own:
                    problems += await check(pair, own)
            else:
                problems += await check(pair, d)
    opted = [f"{b.path}:{b.line}: {reason}" for b, _, reason in found if reason]
    print(f"\n{path}: {len(compared)} compared, {len(opted)} not compared:", *opted, sep="\n  ")
    assert not problems, "\n".join(problems)
