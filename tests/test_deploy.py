"""The deployment files, checked as far as they can be without a Docker engine: compose.yaml
parsed, the Dockerfile read, the env example against the settings, the health check against
a running `talkgate serve`, and both nginx configurations run by a real nginx."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml  # type: ignore[import-untyped]
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway import VERSION, healthcheck
from gateway.auth import key_digest
from gateway.settings import Settings
from tests.backends import unavailable

ROOT = Path(__file__).resolve().parents[1]
ANY_IPV4 = "0.0.0.0"  # noqa: S104 - a TALKGATE_HOST the health check asks on loopback


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    return loaded


GATEWAYS = ("gateway-1", "gateway-2")
PASSWORD_VARIABLE = "TALKGATE_POSTGRES_PASSWORD"
EXAMPLE = ROOT / "deploy" / "talkgate.env.example"
# name=value lines of the example, commented out ("# ") or not.
EXAMPLE_LINE = re.compile(r"^(# )?(TALKGATE_[A-Z0-9_]+)=(.*)$", re.MULTILINE)


def interpolated(value: str, environ: dict[str, str]) -> str:
    """`value` with compose's `${NAME:?message}` replaced from `environ` (compose refuses to
    start, here KeyError, when NAME is unset or empty)."""

    def one(match: re.Match[str]) -> str:
        if not environ.get(match[1]):
            raise KeyError(match[1])
        return environ[match[1]]

    return re.sub(r"\$\{([A-Z0-9_]+):\?[^}]*\}", one, value)


def test_compose_runs_two_gateways_on_postgresql_and_redis_behind_a_balancer() -> None:
    services = compose()["services"]
    assert {*GATEWAYS, "postgres", "redis", "loadbalancer"} <= set(services)
    for name in GATEWAYS:
        environment = services[name]["environment"]
        assert environment["TALKGATE_DATABASE_URL"].startswith("postgresql://")
        assert environment["TALKGATE_REDIS_URL"].startswith("redis://")


def test_compose_reads_talkgates_settings_from_an_env_file() -> None:
    services = compose()["services"]
    for name in GATEWAYS:
        # Sessions and login links must open on whichever replica the balancer picks: every
        # replica reads the same file, which has TALKGATE_SECRET_KEY (tested below).
        assert services[name]["env_file"] == ["talkgate.env"]
        # The file is the example's copy; compose.yaml itself sets only its own services'.
        assert set(services[name]["environment"]) == {
            "TALKGATE_DATABASE_URL",
            "TALKGATE_REDIS_URL",
            "TALKGATE_METRICS_PORT",
        }
    assert "deploy/talkgate.env" in (ROOT / ".gitignore").read_text().splitlines()
    assert "deploy/*.env" in (ROOT / ".dockerignore").read_text().splitlines()


def test_compose_takes_the_postgresql_password_from_the_environment() -> None:
    services = compose()["services"]
    text = (ROOT / "deploy" / "compose.yaml").read_text()
    assert "talkgate:talkgate@" not in text
    password = services["postgres"]["environment"]["POSTGRES_PASSWORD"]
    environ = {PASSWORD_VARIABLE: "s3cr3tfromtheshell"}
    assert interpolated(password, environ) == "s3cr3tfromtheshell"
    for name in GATEWAYS:
        url = services[name]["environment"]["TALKGATE_DATABASE_URL"]
        assert interpolated(url, environ) == (
            "postgresql://talkgate:s3cr3tfromtheshell@postgres:5432/talkgate"
        )
        # Unset, compose refuses to start rather than run with an empty password.
        with pytest.raises(KeyError, match=PASSWORD_VARIABLE):
            interpolated(url, {})
    with pytest.raises(KeyError, match=PASSWORD_VARIABLE):
        interpolated(password, {})


def test_compose_checks_the_replicas_readiness_on_serves_port() -> None:
    for name in GATEWAYS:
        test = compose()["services"][name]["healthcheck"]["test"]
        assert test == ["CMD", "python", "-m", "gateway.healthcheck", "--ready"]


# -- deploy/talkgate.env.example --------------------------------------------------------------


def example_lines() -> list[tuple[bool, str, str]]:
    """(commented out, name, value) of each setting line of the example."""
    text = EXAMPLE.read_text()
    return [(bool(m[1]), m[2], m[3]) for m in EXAMPLE_LINE.finditer(text)]


def image_environment() -> dict[str, str]:
    """The TALKGATE_* values the Dockerfile's ENV sets."""
    return dict(re.findall(r"\b(TALKGATE_[A-Z0-9_]+)=(\S+)", (ROOT / "Dockerfile").read_text()))


def test_the_env_example_lists_every_setting_once() -> None:
    names = [name for _, name, _ in example_lines()]
    settings = {f"TALKGATE_{field.upper()}" for field in Settings.model_fields}
    assert len(names) == len(set(names)), "a setting listed twice"
    assert set(names) - settings == set(), "not settings of gateway/settings.py"
    assert settings - set(names) == set(), "settings missing from deploy/talkgate.env.example"


@pytest.fixture
def no_settings_around(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings built here see no TALKGATE_* variable of the caller's and no .env file."""
    for name in list(os.environ):
        if name.startswith("TALKGATE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.mark.usefixtures("no_settings_around")
def test_the_env_examples_commented_values_are_what_talkgate_does_unset() -> None:
    image = image_environment()
    assert image  # HOST, PORT and DATABASE_URL
    defaults = Settings.model_validate({}).model_dump()
    for commented, name, value in example_lines():
        if not commented:
            continue
        field = name.removeprefix("TALKGATE_").lower()
        if not value:
            assert defaults[field] in (None, ()), f"{name} is unset by default"
            continue
        expected = image.get(name)
        told = Settings.model_validate({field: value}).model_dump()[field]
        if expected is not None:
            assert told == Settings.model_validate({field: expected}).model_dump()[field], name
        else:
            assert told == defaults[field], name


def test_the_env_example_does_not_start_until_its_secrets_are_set(tmp_path: Path) -> None:
    values = {name: value for commented, name, value in example_lines() if not commented}
    assert {"TALKGATE_API_KEYS", "TALKGATE_SECRET_KEY", "TALKGATE_PUBLIC_URL"} <= set(values)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALKGATE_")}
    env |= {"PYTHONPATH": str(ROOT), "TALKGATE_DATABASE_URL": f"sqlite:///{tmp_path}/t.db"}

    def serve(values: dict[str, str]) -> str:
        done = subprocess.run(  # noqa: S603 - our own entry point
            [sys.executable, "-m", "gateway.cli", "serve", "--port", str(free_port())],
            cwd=tmp_path,
            env=env | values,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        return done.stderr

    # As copied: a placeholder secret is refused...
    assert "placeholder value" in serve(values)
    # ...and with real secrets, the empty list of keys.
    values |= {"TALKGATE_SECRET_KEY": "k" * 32, "TALKGATE_WEBHOOK_SECRET": "w" * 32}
    assert "no API keys configured" in serve(values)


NGINX_CONFS = ("nginx.conf", "nginx-tls.conf")


@pytest.mark.parametrize("name", NGINX_CONFS)
def test_the_balancer_passes_websocket_upgrades_and_webhook_sized_bodies(name: str) -> None:
    conf = (ROOT / "deploy" / name).read_text()
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


@pytest.mark.parametrize("name", NGINX_CONFS)
def test_the_balancer_forwards_no_metrics_and_keeps_the_port_in_host(name: str) -> None:
    conf = (ROOT / "deploy" / name).read_text()
    assert re.search(r"location = /metrics \{\s*return 404;", conf)
    assert re.search(r"location \^~ /metrics/ \{\s*return 404;", conf)
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
        # PID 1 is some other program (no talkgate serve): its options are not serve's.
        (["/usr/bin/other-server", "--port", "1234"], None),
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


# -- nginx, for real: Debian's nginx-light (.ci/run installs it) ------------------------------

GATEWAY_SERVERS = ("server gateway-1:8000;", "server gateway-2:8000;")


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if found is None:
        unavailable("nginx not installed: apt-get install nginx-light (.ci/run does)")
    return found


def nginx_version(binary: str) -> tuple[int, ...]:
    done = subprocess.run([binary, "-v"], capture_output=True, text=True, check=True)  # noqa: S603
    found = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", done.stderr)
    assert found, done.stderr
    return tuple(int(part) for part in found.groups())


def self_signed(directory: Path) -> Path:
    """fullchain.pem and privkey.pem in `directory`, for talkgate.example.com and 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ALLOWED_HOST)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(ALLOWED_HOST), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "fullchain.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "privkey.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return directory / "fullchain.pem"


def local_copy(
    name: str, directory: Path, binary: str, upstream: int, ports: dict[str, int]
) -> Path:
    """deploy/`name` runnable here: the replicas at 127.0.0.1:`upstream`, each `listen X`
    on 127.0.0.1:ports[X], the certificates in `directory`/certs, logs and temporary files in
    `directory`. Every replacement must apply, so a changed file cannot pass unchecked."""
    conf = (ROOT / "deploy" / name).read_text()

    def replace(old: str, new: str) -> None:
        nonlocal conf
        assert old in conf, f"{name} has no {old!r}"
        conf = conf.replace(old, new)

    for server in GATEWAY_SERVERS:
        replace(server, f"server 127.0.0.1:{upstream};")
    for listen, port in ports.items():
        replace(f"listen {listen}", f"listen 127.0.0.1:{port}")
    if "/etc/nginx/certs/" in conf:
        replace("/etc/nginx/certs/", f"{directory}/certs/")
    if "http2 on;" in conf and nginx_version(binary) < (1, 25, 1):
        # Before 1.25.1 nginx spells it on the listen directive.
        replace("http2 on;", "")
        conf = re.sub(r"(listen \S+ ssl);", r"\1 http2;", conf)
    temporary = "".join(
        f"  {kind}_temp_path {directory}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    replace("http {\n", f"http {{\n  access_log {directory}/access.log;\n{temporary}")
    conf = f"pid {directory}/nginx.pid;\nerror_log {directory}/error.log;\n" + conf
    path = directory / name
    path.write_text(conf)
    return path


@contextmanager
def nginx_running(binary: str, conf: Path, ports: list[int]) -> Iterator[None]:
    directory = conf.parent
    command = [binary, "-p", str(directory), "-e", str(directory / "error.log"), "-c", str(conf)]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)  # noqa: S603
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen([*command, "-g", "daemon off;"], stderr=subprocess.DEVNULL)  # noqa: S603
    try:
        deadline = time.monotonic() + 15
        for port in ports:
            while True:
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"nginx did not start: {(directory / 'error.log').read_text()}"
                    )
                time.sleep(0.05)
        yield
    finally:
        process.terminate()
        process.wait(timeout=15)


def raw_get(port: int, path: str, **headers: str) -> tuple[int, str]:
    """GET `path` exactly as written (no client normalising it), the status and body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": ALLOWED_HOST, **headers})
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


# Ways of spelling /metrics that the gateway would answer on its main port.
METRICS_PATHS = ("/metrics", "/metrics?format=text", "//metrics", "/%6Detrics", "/./metrics")


@pytest.mark.slow
def test_the_balancer_keeps_metrics_off_its_port_and_proxies_the_rest(
    gateway: Gateway, tmp_path: Path
) -> None:
    binary = nginx_binary()
    listen = free_port()
    conf = local_copy("nginx.conf", tmp_path, binary, gateway.port, {"8080": listen})
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    # The gateway itself answers /metrics to an admin key on this port (no METRICS_PORT)...
    assert raw_get(gateway.port, "/metrics", **admin)[0] == 200
    with nginx_running(binary, conf, [listen]):
        status, body = raw_get(listen, "/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok", "version": VERSION})
        # ...and nginx does not forward it, however it is spelled.
        for path in (*METRICS_PATHS, "/metrics/", "/metrics/anything"):
            status, body = raw_get(listen, path, **admin)
            assert status == 404, path
            assert "nginx" in body, path  # nginx's page, not the gateway's answer


@pytest.mark.slow
def test_the_tls_balancer_serves_https_with_http2_and_redirects_http(
    gateway: Gateway, tmp_path: Path
) -> None:
    binary = nginx_binary()
    http_port, https_port = free_port(), free_port()
    ca = self_signed(tmp_path / "certs")
    ports = {"80": http_port, "443": https_port}
    conf = local_copy("nginx-tls.conf", tmp_path, binary, gateway.port, ports)
    with nginx_running(binary, conf, [http_port, https_port]):
        connection = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
        connection.request("POST", "/webhooks/talks", headers={"Host": ALLOWED_HOST})
        redirect = connection.getresponse()
        assert redirect.status == 301
        assert redirect.getheader("Location") == f"https://{ALLOWED_HOST}/webhooks/talks"
        connection.close()

        context = ssl.create_default_context(cafile=str(ca))
        context.set_alpn_protocols(["h2", "http/1.1"])
        with (
            socket.create_connection(("127.0.0.1", https_port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=ALLOWED_HOST) as tls,
        ):
            assert tls.selected_alpn_protocol() == "h2"
        with httpx.Client(
            base_url=f"https://127.0.0.1:{https_port}",
            verify=ssl.create_default_context(cafile=str(ca)),
            headers={"Host": ALLOWED_HOST},
        ) as client:
            assert client.get("/healthz").json() == {"status": "ok", "version": VERSION}
            for path in ("/metrics", "/metrics/x"):
                answer = client.get(path, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
                assert answer.status_code == 404, path
                assert "nginx" in answer.text


# -- the Dockerfile -----------------------------------------------------------------------------


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def test_the_image_builds_on_node_22_lts_or_later_from_pinnable_bases() -> None:
    text = dockerfile()
    head = text[: text.index("\nFROM ")]
    arguments = dict(re.findall(r"^ARG (\w+)=(\S+)$", head, re.MULTILINE))
    node = re.fullmatch(r"node:(\d+)-slim", arguments["NODE_IMAGE"])
    assert node, arguments
    # Even majors are the LTS lines; 20 reached its end of life in April 2026.
    assert int(node[1]) >= 22
    assert int(node[1]) % 2 == 0
    # Every stage's base is a build argument, so `--build-arg X=image@sha256:...` pins it.
    bases = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert bases == ["${NODE_IMAGE}", "${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]
    assert "--build-arg PYTHON_IMAGE=python:3.11-slim@sha256:" in head


def test_data_belongs_to_the_user_the_image_runs_as() -> None:
    text = dockerfile()
    uid = re.search(r"useradd [^\n]*--uid (\d+)", text)
    assert uid
    assert re.search(rf"chown {uid[1]}:{uid[1]} /data", text)
    assert re.findall(r"^USER (\S+)", text, re.MULTILINE)[-1] == uid[1]


def test_the_images_health_check_follows_serves_port() -> None:
    check = re.search(r"^HEALTHCHECK [^\n]*\\\n\s+CMD (.+)$", dockerfile(), re.MULTILINE)
    assert check
    assert json.loads(check[1]) == ["python", "-m", "gateway.healthcheck"]


# -- the documented commands --------------------------------------------------------------------


def section(doc: str, heading: str) -> str:
    """The text under `heading` (a Markdown heading line) up to the next heading."""
    text = (ROOT / doc).read_text()
    start = text.index(f"{heading}\n")
    following = re.search(r"^#{1,4} ", text[start + len(heading) :], re.MULTILINE)
    return text[start : start + len(heading) + (following.start() if following else len(text))]


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, re.DOTALL)


DOCKER_SECTIONS = [("README.md", "## Running in Docker"), ("docs/operator-guide.md", "### Docker")]
COMPOSE_SECTIONS = [
    ("README.md", "## Running several replicas"),
    ("docs/operator-guide.md", "### Docker Compose (two replicas, PostgreSQL, Redis, nginx)"),
]


@pytest.mark.parametrize(("doc", "heading"), DOCKER_SECTIONS)
def test_the_documented_docker_run_sets_what_a_real_gateway_needs(doc: str, heading: str) -> None:
    runs = [b for b in shell_blocks(section(doc, heading)) if "docker run -d" in b]
    assert runs, f"no docker run in {doc} {heading}"
    for name in (
        "TALKGATE_API_KEYS",
        "TALKGATE_WEBHOOK_SECRET",
        "TALKGATE_SECRET_KEY",
        "TALKGATE_PUBLIC_URL",
    ):
        assert f"-e {name}=" in runs[0], (doc, name)


@pytest.mark.parametrize(("doc", "heading"), COMPOSE_SECTIONS)
def test_the_documented_compose_commands_make_the_env_file_and_the_password(
    doc: str, heading: str
) -> None:
    blocks = [b for b in shell_blocks(section(doc, heading)) if "docker compose" in b]
    assert blocks, f"no docker compose command in {doc} {heading}"
    commands = blocks[0]
    assert "cp deploy/talkgate.env.example deploy/talkgate.env" in commands
    assert f"export {PASSWORD_VARIABLE}=" in commands
    assert "docker compose -f deploy/compose.yaml up" in commands


@pytest.mark.parametrize(("doc", "heading"), DOCKER_SECTIONS)
def test_the_docker_sections_say_who_owns_data(doc: str, heading: str) -> None:
    uid = re.search(r"useradd [^\n]*--uid (\d+)", dockerfile())
    assert uid
    # A bind mount keeps its host owner: the docs say to hand it to the image's user.
    assert f"chown {uid[1]}:{uid[1]}" in section(doc, heading)


@pytest.mark.parametrize(
    ("argv", "environ"),
    [
        (["/usr/bin/python", "/usr/bin/talkgate", "serve", "--demo"], {}),
        (["talkgate", "serve"], {"TALKGATE_DEMO": "true"}),
    ],
)
def test_the_demo_is_asked_by_its_address_whatever_the_allowed_hosts(
    argv: list[str], environ: dict[str, str]
) -> None:
    # The demo answers to loopback names only: an allowed host as Host would get 400.
    env = {**environ, "TALKGATE_ALLOWED_HOSTS": "talkgate.example.com"}
    is_demo = healthcheck.demo(argv, env)
    assert is_demo
    assert healthcheck.host_header("127.0.0.1", 8000, env, demo=is_demo) == "127.0.0.1:8000"
    assert not healthcheck.demo(["talkgate", "serve"], {"TALKGATE_ALLOWED_HOSTS": "x"})
