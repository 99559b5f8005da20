"""The deployment files, checked as far as they can be without a Docker engine."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[1]


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
