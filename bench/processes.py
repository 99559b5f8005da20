"""The benchmarks' servers as processes: started on a free port, waited for until ready,
stopped; the gateway's environment and credentials; memory read from /proc.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

from gateway.auth import key_digest

KEY = "tgk_bench_http_floor"


SECRET = "bench-http-floor-webhook-secret-3b7e"  # noqa: S105 - a local test server's


SCOPES = ["talks:read", "customers:pii", "recordings:read", "agents:control", "webhooks:write"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_kib(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


def tree_kib(pid: int, field_name: str = "VmRSS") -> int:
    """`field_name` (VmRSS: now; VmHWM: each one's peak) of a process and of every process
    under it, summed."""
    total, pending = 0, [pid]
    while pending:
        member = pending.pop()
        try:
            total += proc_kib(member, field_name)
            for task in Path(f"/proc/{member}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):  # gone meanwhile
            continue
    return total


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    base: str

    def peak_mib(self) -> float:
        """The peak RSS of the server's process and, under `--workers`, of its workers: each
        one's peak, summed (so at most what they held together)."""
        return tree_kib(self.process.pid, "VmHWM") / 1024

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start(name: str, argv: list[str], env: dict[str, str], log: Path) -> Server:
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - our own entry points
        [*argv, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    return Server(name, process, f"http://127.0.0.1:{port}")


async def wait_ready(server: Server, log: Path) -> None:
    async with httpx.AsyncClient(base_url=server.base, timeout=2) as http:
        for _ in range(300):
            if server.process.poll() is not None:
                break
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{server.name} did not start:\n{log.read_text()[-2000:]}")  # noqa: ASYNC240 - failing anyway


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TALKGATE_")}


def gateway_env(url: str) -> dict[str, str]:
    return clean_env() | {
        "TALKGATE_DATABASE_URL": url,
        "TALKGATE_API_KEYS": json.dumps(
            [{"name": "bench", "sha256": key_digest(KEY), "scopes": SCOPES}]
        ),
        "TALKGATE_WEBHOOK_SECRET": SECRET,
        "TALKGATE_SECRET_KEY": "bench-http-floor-secret-key-9c2e51",
        "TALKGATE_RATE_LIMIT_PER_MINUTE": "100000000",
        "TALKGATE_LOG_LEVEL": "WARNING",
    }
