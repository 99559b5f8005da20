"""The ruler: load from `wrk` (C, its own process, its own CPU), CPU time read off /proc.

A Python client in the benchmark's own process was the bottleneck of every throughput
figure before this module (httpx measured a server that answers precomputed bytes at
~1,100 requests/s; wrk, on the same machine, at ~15,000). So throughput is driven here by
Debian's `wrk` (`apt-get install wrk`), one thread and CONNECTIONS connections, with a Lua
script (`SCRIPT`) that sends a list of prepared requests in turn, or bodies whose `@ID@`
marks take a new number for each request (cold reads, webhook deliveries of new talks).

The ruler proves it sees the server: for each run it reads the CPU seconds the server's
process tree spent (utime + stime from /proc/PID/stat, before and after) and the CPU seconds
wrk spent (its rusage, from wait4), and prints both per request beside the rate. A floor
whose server is not near one CPU second per second while wrk is, is a client-bound figure,
and `Measure.client_bound` says so. `pin` puts the servers on one CPU and wrk on another
(`taskset`), so that neither takes the other's CPU.

Latency percentiles are wrk's own (its histogram, in microseconds), at the run's
concurrency; they are queueing included.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

CONNECTIONS = 8
# Marks in a request body that take the request's number (`Load.numbered`).
ID_MARK = "@ID@"

# One thread (`-t1`), so one Lua state: `init` loads the requests, `request` sends them in
# turn (or numbers the template), `response` counts answers that are not the expected status,
# or that carry `"errors"` when asked, and `done` writes one RESULT line of JSON.
SCRIPT = r"""
local requests = {}
local templates = {}
local numbered_request = nil
local first = 0
local offset = 0
local span = 0
local expect = 200
local check_errors = false
local n = 0
bad = 0
sent = 0

local function read_all(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

function init(args)
  local kind, path, headers_path = args[1], args[2], args[3]
  expect = tonumber(args[4])
  check_errors = args[5] == "1"
  first = tonumber(args[6] or "0")
  offset = tonumber(args[9] or "0")
  span = tonumber(args[10] or "0")
  local headers = {}
  for line in io.lines(headers_path) do
    local name, value = line:match("^([^:]+):%s*(.*)$")
    if name then headers[name] = value end
  end
  local method, target = args[7], args[8]
  local bodies = read_all(path)
  -- A numbered body is kept as its parts around the marks and joined with the number
  -- (table.concat), after a head formatted once: cheaper for wrk than a gsub and a
  -- wrk.format per request.
  local head = wrk.format(method, target, headers):gsub("\r\n$", "")
  for body in bodies:gmatch("([^\n]*)\n") do
    if kind == "numbered" then
      local parts, from = {}, 1
      while true do
        local at, to = body:find("@ID@", from, true)
        if not at then break end
        parts[#parts + 1] = body:sub(from, at - 1)
        from = to + 1
      end
      parts[#parts + 1] = body:sub(from)
      templates[#templates + 1] = parts
    else
      requests[#requests + 1] = wrk.format(method, target, headers, body)
    end
  end
  numbered_request = function(parts, number)
    local text = table.concat(parts, number)
    return head .. "Content-Length: " .. #text .. "\r\n\r\n" .. text
  end
end

function request()
  n = n + 1
  sent = sent + 1
  if #templates > 0 then
    -- Templates and numbers go on from where the last run with this Load stopped.
    local k = offset + n
    local template = templates[(k - 1) % #templates + 1]
    if span > 0 then k = (k - 1) % span + 1 end
    return numbered_request(template, tostring(first + k))
  end
  return requests[(n - 1) % #requests + 1]
end

function response(status, headers, body)
  if status ~= expect or (check_errors and body:find('"errors"', 1, true)) then
    bad = bad + 1
  end
end

local threads = {}
function setup(thread) threads[#threads + 1] = thread end

function done(summary, latency, requests_)
  local bad_total, sent_total = 0, 0
  for _, t in ipairs(threads) do
    bad_total = bad_total + t:get("bad")
    sent_total = sent_total + t:get("sent")
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"bad":%d,"sent":%d,'
    .. '"socket_errors":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, bad_total, sent_total,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("bench: wrk is not installed (apt-get install wrk)")
    return path


def tick() -> float:
    return 1.0 / os.sysconf("SC_CLK_TCK")


def _own_cpu(pid: int) -> float:
    # Fields after the command name, which is in parentheses and may hold spaces.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of stat; here 11 and 12 after the name and state.
    return (int(fields[11]) + int(fields[12])) * tick()


def tree(pid: int) -> list[int]:
    """A process and every live process under it."""
    found, pending = [], [pid]
    while pending:
        member = pending.pop()
        found.append(member)
        try:
            for task in Path(f"/proc/{member}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) spent so far by a process and the live processes under
    it; all of its threads are in a process's own figure."""
    total = 0.0
    for member in tree(pid):
        try:
            total += _own_cpu(member)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


@dataclass(frozen=True, slots=True)
class Load:
    """What wrk sends: `bodies` in turn. `numbered`: each body's ID_MARK marks take the
    request's number: `first_id` + how many requests this Wrk has sent before with the same
    target and `first_id` + n, so that no two requests of a bench are alike (no cache hit,
    each delivery a new talk); within `span` numbers, if it is bounded (see `span`)."""

    target: str
    bodies: Sequence[bytes]
    numbered: bool = False
    first_id: int = 0
    # How many numbers the marks' field holds (numbers run first_id + 1 .. first_id + span),
    # None when unbounded (a talk id). Past the span the numbers start again: harmless for a
    # floor (`wraps`), which answers alike whatever the number; for the gateway a repeated
    # number may be a cache hit, so a run that would repeat one fails instead.
    span: int | None = None
    wraps: bool = False
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    expect: int = 200
    check_errors: bool = False

    def __post_init__(self) -> None:
        if not self.bodies:
            raise ValueError("a Load sends at least one body")
        if any(b"\n" in body for body in self.bodies):
            raise ValueError("a body is sent as one line of the bodies file")
        if self.numbered and not all(ID_MARK.encode() in body for body in self.bodies):
            raise ValueError(f"a numbered Load's bodies each hold {ID_MARK}")
        if self.span is not None and self.span < 1:
            raise ValueError("a numbered Load's span holds at least one number")


@dataclass
class Measure:
    """wrk's figures for one or more runs against one server, pooled."""

    requests: int = 0
    seconds: float = 0.0
    bad: int = 0
    socket_errors: int = 0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    answer_bytes: int = 0
    p50_us: list[int] = field(default_factory=list)
    p99_us: list[int] = field(default_factory=list)
    peak_mib: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def server_cpu_per_request(self) -> float:
        return self.server_cpu / self.requests if self.requests else 0.0

    @property
    def client_cpu_per_request(self) -> float:
        return self.client_cpu / self.requests if self.requests else 0.0

    @property
    def server_busy(self) -> float:
        """CPU seconds per second of the server while it was measured (1.0: one CPU)."""
        return self.server_cpu / self.seconds if self.seconds else 0.0

    @property
    def client_busy(self) -> float:
        return self.client_cpu / self.seconds if self.seconds else 0.0

    @property
    def client_bound(self) -> bool:
        """The load generator, not the server, set the pace: wrk near a whole CPU while
        the server has time to spare."""
        return self.client_busy > 0.85 and self.server_busy < 0.85

    @property
    def p50_ms(self) -> float:
        return sorted(self.p50_us)[len(self.p50_us) // 2] / 1000 if self.p50_us else 0.0

    @property
    def p99_ms(self) -> float:
        return max(self.p99_us) / 1000 if self.p99_us else 0.0

    def add(self, other: Measure) -> None:
        self.requests += other.requests
        self.seconds += other.seconds
        self.bad += other.bad
        self.socket_errors += other.socket_errors
        self.server_cpu += other.server_cpu
        self.client_cpu += other.client_cpu
        self.p50_us += other.p50_us
        self.p99_us += other.p99_us
        self.answer_bytes = other.answer_bytes or self.answer_bytes
        self.peak_mib = max(self.peak_mib, other.peak_mib)


@dataclass
class Wrk:
    """Runs wrk against servers; `pin`: wrk on `client_cpu` (the servers are pinned by
    whoever starts them, `server_prefix`)."""

    pin: bool = False
    client_cpu: int = 1
    server_cpu: int = 0
    connections: int = CONNECTIONS
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-wrk-")))
    binary: str = field(default_factory=require_wrk)
    _count: int = 0
    # Numbered requests sent so far, by (target, first_id) (`Load.numbered`).
    _issued: dict[tuple[str, int], int] = field(default_factory=dict)

    def server_prefix(self) -> list[str]:
        """What to put before a server's argv: `taskset -c CPU` when pinning."""
        return ["taskset", "-c", str(self.server_cpu)] if self.pin else []

    def _files(self, load: Load) -> tuple[Path, Path, Path]:
        self._count += 1
        base = self.directory / f"load{self._count}"
        script, bodies, headers = (base.with_suffix(s) for s in (".lua", ".bodies", ".headers"))
        script.write_text(SCRIPT)
        bodies.write_bytes(b"".join(body + b"\n" for body in load.bodies))
        headers.write_text("".join(f"{k}: {v}\n" for k, v in load.headers.items()))
        return script, bodies, headers

    def run(self, base_url: str, server_pid: int, load: Load, seconds: float) -> Measure:
        """One wrk run of `seconds` against `base_url`; the server's CPU is read around it."""
        script, bodies, headers = self._files(load)
        argv = [
            *(["taskset", "-c", str(self.client_cpu)] if self.pin else []),
            self.binary,
            "-t1",
            f"-c{self.connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "30s",
            "-s",
            str(script),
            base_url.rstrip("/") + load.target,
            "--",
            "numbered" if load.numbered else "list",
            str(bodies),
            str(headers),
            str(load.expect),
            "1" if load.check_errors else "0",
            str(load.first_id),
            load.method,
            load.target,
            str(self._issued.get((load.target, load.first_id), 0)),
            str(load.span or 0),
        ]
        out_path, err_path = script.with_suffix(".out"), script.with_suffix(".err")
        before = cpu_seconds(server_pid)
        with out_path.open("wb") as out_file, err_path.open("wb") as err_file:
            process = subprocess.Popen(  # noqa: S603 - wrk, with our own script
                argv, stdout=out_file, stderr=err_file
            )
            _, status, usage = os.wait4(process.pid, 0)
        after = cpu_seconds(server_pid)
        process.returncode = os.waitstatus_to_exitcode(status)
        out, err = out_path.read_text(), err_path.read_text()
        lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
        if process.returncode or not lines:
            raise RuntimeError(f"wrk failed ({process.returncode}): {err or out}")
        result = json.loads(lines[-1].removeprefix("RESULT "))
        if load.numbered:
            key = (load.target, load.first_id)
            self._issued[key] = issued = self._issued.get(key, 0) + result["sent"]
            if load.span is not None and issued > load.span and not load.wraps:
                raise RuntimeError(
                    f"{load.target}: {issued:,} numbered requests so far, but the marks hold"
                    f" {load.span:,} numbers: some were sent twice and may have been cache hits"
                )
        return Measure(
            requests=result["requests"],
            seconds=result["duration_us"] / 1e6,
            bad=result["bad"],
            socket_errors=result["socket_errors"],
            server_cpu=after - before,
            client_cpu=usage.ru_utime + usage.ru_stime,
            answer_bytes=result["bytes"] // max(1, result["requests"]),
            p50_us=[result["p50_us"]],
            p99_us=[result["p99_us"]],
        )
