"""The deployment files, checked as far as they can be without a Docker engine."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml  # type: ignore[import-untyped]

from gateway import healthcheck
from gateway.auth import key_digest

ROOT = Path(__file__).resolve().parents[1]
ANY_IPV4 = "0.0.0.0"  # noqa: S104 - a TALKGATE_HOST the health check asks on loopback


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    return loaded


def test_compose_runs_two_gateways_on_postgresql_and_redis_behind_a_balancer() -> None:
    services = compose()["services"]
    assert {"gateway-1", "gateway-2", "postgres", "redis", "loadbalancer"} <= set(services)
    for name in ("gateway-1", "gateway-2"):
        environment = services[name]["environment"]
        assert environment["TALKGATE_DATABASE_URL"].startswith("postgresql://")
        assert environment["TALKGATE_REDIS_URL"].startswith("redis://")
        # Sessions and login links must open on whichever replica the balancer picks.
        assert "TALKGATE_SECRET_KEY" in environment


def test_compose_bakes_in_no_secret() -> None:
    environment = compose()["services"]["gateway-1"]["environment"]
    for name in ("TALKGATE_API_KEYS", "TALKGATE_WEBHOOK_SECRET", "TALKGATE_SECRET_KEY"):
        assert environment[name].startswith("${"), name


def test_the_balancer_passes_websocket_upgrades_and_webhook_sized_bodies() -> None:
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "proxy_set_header Upgrade $http_upgrade" in conf
    assert re.search(r"client_max_body_size\s+([6-9]|\d\d+)m", conf)
    assert conf.count("server gateway-") == 2


def test_the_image_is_multi_stage_non_root_and_runs_serve() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, re.MULTILINE)) >= 2
    user = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert user
    assert user[-1] not in ("root", "0")
    assert re.search(r'^CMD \["serve"\]', dockerfile, re.MULTILINE)
    assert "TALKGATE_HOST=0.0.0.0" in dockerfile


def test_the_image_carries_the_postgresql_and_redis_drivers() -> None:
    # compose.yaml runs the image on PostgreSQL and Redis: their extras must be installed.
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r'pip install [^\n]*"talkgate\[postgres,redis\]"', dockerfile)


def test_compose_serves_metrics_on_a_port_of_their_own_not_published() -> None:
    services = compose()["services"]
    for name in ("gateway-1", "gateway-2"):
        service = services[name]
        port = str(service["environment"]["TALKGATE_METRICS_PORT"])
        assert port.isdigit()
        assert port != "8000"
        assert port in [str(p) for p in service.get("expose", [])]
        assert "ports" not in service  # reachable on the compose network only
    published = [str(p) for p in services["loadbalancer"]["ports"]]
    assert not [p for p in published if port in p]


def test_the_balancer_forwards_no_metrics_and_keeps_the_port_in_host() -> None:
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert re.search(r"location = /metrics \{\s*return 404;", conf)
    # The gateway compares a browser's Origin with its scheme and Host, port included.
    assert "proxy_set_header Host $http_host;" in conf
    assert "proxy_set_header Host $host;" not in conf


# -- the health check (gateway/healthcheck.py) ------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "port"),
    [
        (["/usr/local/bin/python", "/usr/local/bin/talkgate", "serve"], None),
        (["talkgate", "serve", "--port", "9000"], "9000"),
        (["talkgate", "serve", "--port=9001"], "9001"),
        # argparse keeps the last one given.
        (["talkgate", "serve", "--port", "9000", "--port=9002"], "9002"),
        # `docker run --init`: PID 1 is docker-init, talkgate its argument.
        (["/sbin/docker-init", "--", "talkgate", "serve", "--workers", "2", "--port", "81"], "81"),
        # A dangling flag is no value.
        (["talkgate", "serve", "--port"], None),
    ],
)
def test_the_health_check_reads_the_port_from_the_command_line(
    argv: list[str], port: str | None
) -> None:
    assert healthcheck.option(argv, "port") == port


def test_the_command_line_wins_over_the_environment_which_wins_over_the_default() -> None:
    serve = ["talkgate", "serve", "--port", "9000", "--host", "10.0.0.5"]
    environ = {"TALKGATE_PORT": "7000", "TALKGATE_HOST": "10.0.0.6"}
    assert healthcheck.target(serve, environ) == ("10.0.0.5", 9000)
    assert healthcheck.target(["talkgate", "serve"], environ) == ("10.0.0.6", 7000)
    assert healthcheck.target([], {}) == ("127.0.0.1", 8000)


@pytest.mark.parametrize(
    ("host", "asked"),
    [(ANY_IPV4, "127.0.0.1"), ("::", "::1"), ("[::]", "::1"), ("::1", "::1"), ("gw", "gw")],
)
def test_a_wildcard_host_is_asked_on_loopback(host: str, asked: str) -> None:
    assert healthcheck.target([], {"TALKGATE_HOST": host}) == (asked, 8000)


@pytest.mark.parametrize("port", ["eighty", "0", "65536", "-1"])
def test_a_port_the_check_cannot_ask_is_an_error(port: str) -> None:
    with pytest.raises(ValueError, match="port"):
        healthcheck.target(["talkgate", "serve", f"--port={port}"], {})


@pytest.mark.parametrize(
    ("allowed", "header"),
    [
        ("", "127.0.0.1:8000"),
        ("talkgate.example.com, other.example.com", "talkgate.example.com:8000"),
        ('["talkgate.example.com"]', "talkgate.example.com:8000"),
        ("*.example.com", "healthcheck.example.com:8000"),
    ],
)
def test_the_request_names_an_allowed_host(allowed: str, header: str) -> None:
    environ = {"TALKGATE_ALLOWED_HOSTS": allowed}
    assert healthcheck.host_header("127.0.0.1", 8000, environ) == header
    if not allowed:
        assert healthcheck.host_header("::1", 8000, environ) == "[::1]:8000"


def test_the_command_line_is_read_from_a_proc_file(tmp_path: Path) -> None:
    cmdline = tmp_path / "cmdline"
    cmdline.write_bytes(b"/usr/local/bin/python\0/usr/local/bin/talkgate\0serve\0--port\x009000\0")
    assert healthcheck.read_cmdline(cmdline) == [
        "/usr/local/bin/python",
        "/usr/local/bin/talkgate",
        "serve",
        "--port",
        "9000",
    ]
    assert healthcheck.read_cmdline(tmp_path / "absent") == []


# -- against a running `talkgate serve --port N` ---------------------------------------------

ADMIN_KEY = "tg_deploy_test_admin_key_9f3a1c"
ALLOWED_HOST = "talkgate.example.com"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Gateway:
    port: int
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """`talkgate serve --port N` (keys, SQLite, TALKGATE_ALLOWED_HOSTS) as a real process,
    its TALKGATE_PORT another, closed port: a check reading the environment misses it."""
    directory = tmp_path_factory.mktemp("gateway")
    port = free_port()
    entry = {"name": "deploy-admin", "sha256": key_digest(ADMIN_KEY), "scopes": ["admin"]}
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALKGATE_")}
    env |= {
        "TALKGATE_PORT": str(free_port()),
        "TALKGATE_API_KEYS": json.dumps([entry]),
        "TALKGATE_DATABASE_URL": f"sqlite:///{directory / 'talkgate.db'}",
        "TALKGATE_ALLOWED_HOSTS": ALLOWED_HOST,
        "TALKGATE_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    log_path = directory / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own entry point
            [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)],
            cwd=directory,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    served = Gateway(port, log_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"{served.base}/readyz", headers={"Host": ALLOWED_HOST})
                if answer.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start: {log_path.read_text()}")
            time.sleep(0.1)
        yield served
    finally:
        process.terminate()
        process.wait(timeout=30)


def serve_cmdline(directory: Path, *argv: str) -> Path:
    """A stand-in for /proc/1/cmdline: the container's PID 1 running `argv`."""
    path = directory / "cmdline"
    path.write_bytes(b"".join(a.encode() + b"\0" for a in argv))
    return path


@pytest.mark.slow
def test_the_health_check_follows_serve_port_on_the_command_line(
    gateway: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cmdline = serve_cmdline(tmp_path, "/usr/local/bin/talkgate", "serve", f"--port={gateway.port}")
    # The image's environment: a wildcard host, asked on loopback.
    environ = {"TALKGATE_HOST": ANY_IPV4, "TALKGATE_ALLOWED_HOSTS": ALLOWED_HOST}
    assert healthcheck.main([], cmdline=cmdline, environ=environ) == 0
    assert healthcheck.main(["--ready"], cmdline=cmdline, environ=environ) == 0

    # The environment's port alone (no --port on PID 1) is not where serve listens.
    closed = free_port()
    environ["TALKGATE_PORT"] = str(closed)
    assert healthcheck.main([], cmdline=tmp_path / "absent", environ=environ) == 1
    assert f"/healthz on 127.0.0.1:{closed}: ConnectionRefusedError" in capsys.readouterr().err


@pytest.mark.slow
def test_the_health_check_names_an_allowed_host(
    gateway: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cmdline = serve_cmdline(tmp_path, "talkgate", "serve", "--port", str(gateway.port))
    # Without it the gateway refuses the check's Host (127.0.0.1) with 400.
    assert healthcheck.main([], cmdline=cmdline, environ={}) == 1
    assert "400" in capsys.readouterr().err
    environ = {"TALKGATE_ALLOWED_HOSTS": f"{ALLOWED_HOST},other.example.com"}
    assert healthcheck.main([], cmdline=cmdline, environ=environ) == 0


@pytest.mark.slow
def test_the_health_check_runs_as_a_module(gateway: Gateway) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALKGATE_")}
    env |= {
        "PYTHONPATH": str(ROOT),
        "TALKGATE_PORT": str(gateway.port),
        "TALKGATE_ALLOWED_HOSTS": ALLOWED_HOST,
    }
    # Here PID 1 is no talkgate: the environment's port is the one asked.
    done = subprocess.run(
        [sys.executable, "-m", "gateway.healthcheck", "--ready"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    env["TALKGATE_PORT"] = str(free_port())
    done = subprocess.run(
        [sys.executable, "-m", "gateway.healthcheck"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("healthcheck: /healthz on 127.0.0.1:")
