"""The container's health check: `python -m gateway.healthcheck [--ready]`.

It asks the gateway the container runs for `/healthz` (liveness; `--ready`: `/readyz`, the
store reachable) and exits 0 when the answer is 200, 1 otherwise, with one line on stderr
saying why (Docker keeps it in `docker inspect`'s health log).

The address is the one `serve` listens on, found the way `serve` finds it: `--port N` /
`--port=N` and `--host` after `serve` on PID 1's command line (`/proc/1/cmdline`: the
container's `talkgate serve ...`, also behind `docker run --init`), else `TALKGATE_PORT` and
`TALKGATE_HOST`, else 8000 and 127.0.0.1. A wildcard host is asked on loopback (`0.0.0.0`:
127.0.0.1, `::`: ::1). When `TALKGATE_ALLOWED_HOSTS` is set the request names its first host
(a `*.example.com` entry as `healthcheck.example.com`), which the gateway would otherwise
refuse with 400.

Standard library only, and no import of the settings: it runs every few seconds.
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

DEFAULT_PORT = 8000
PID1_CMDLINE = Path("/proc/1/cmdline")
# A wildcard address is asked on loopback, never bound.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104


def read_cmdline(path: Path = PID1_CMDLINE) -> list[str]:
    """The arguments of the process whose `/proc/<pid>/cmdline` is `path`; [] if unreadable."""
    try:
        raw = path.read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def option(argv: Sequence[str], name: str) -> str | None:
    """The value of `--name V` or `--name=V` after `serve` in `argv`, the last one given (as
    argparse keeps it); None when absent, or when `argv` is no `serve` (another program's)."""
    if "serve" not in argv:
        return None
    argv = argv[list(argv).index("serve") + 1 :]
    flag = f"--{name}"
    found: str | None = None
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith(flag + "="):
            found = arg[len(flag) + 1 :]
    return found


def target(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[str, int]:
    """The (host, port) to ask: the command line's, else the environment's, else defaults.
    Raises ValueError for a port that is not a number from 1 to 65535."""
    port_text = option(argv, "port") or environ.get("TALKGATE_PORT") or str(DEFAULT_PORT)
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"port {port_text!r} is not a number") from None
    if port == 0:
        raise ValueError("port 0 (any free port): the port serve took is not known")
    if not 0 < port <= 65535:
        raise ValueError(f"port {port} is not from 1 to 65535")
    host = option(argv, "host") or environ.get("TALKGATE_HOST") or "127.0.0.1"
    host = host.strip().strip("[]")
    return _WILDCARDS.get(host, host), port


def demo(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Whether the serve asked is the demo (`--demo`, or TALKGATE_DEMO), which answers to
    loopback names only, whatever TALKGATE_ALLOWED_HOSTS says."""
    if "serve" in argv and "--demo" in argv[list(argv).index("serve") + 1 :]:
        return True
    return environ.get("TALKGATE_DEMO", "").strip().lower() in ("1", "true", "yes", "on")


def host_header(host: str, port: int, environ: Mapping[str, str], *, demo: bool = False) -> str:
    """The Host to send: the first of TALKGATE_ALLOWED_HOSTS when set (not for the demo),
    else the address."""
    allowed = "" if demo else environ.get("TALKGATE_ALLOWED_HOSTS", "").strip()
    names = [n.strip().strip('"').strip() for n in allowed.strip("[]").split(",")]
    names = [n for n in names if n]
    if names:
        name = names[0]
        if name.startswith("*."):
            name = "healthcheck" + name[1:]
        return f"{name}:{port}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def probe(host: str, port: int, path: str, *, host_name: str, timeout: float) -> str | None:
    """None when GET `path` answers 200; else what went wrong, in one line."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": host_name, "Connection": "close"})
        response = connection.getresponse()
        body = response.read(200).decode(errors="replace").strip()
    except (OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        connection.close()
    if response.status != 200:
        return f"{response.status} {body}"
    return None


def main(
    argv: Sequence[str] | None = None,
    *,
    cmdline: Path = PID1_CMDLINE,
    environ: Mapping[str, str] = os.environ,
) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.healthcheck", description=__doc__)
    parser.add_argument("--ready", action="store_true", help="ask /readyz instead of /healthz")
    parser.add_argument("--timeout", type=float, default=4.0, help="seconds (default 4)")
    args = parser.parse_args(argv)
    path = "/readyz" if args.ready else "/healthz"
    pid1 = read_cmdline(cmdline)
    try:
        host, port = target(pid1, environ)
    except ValueError as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 1
    name = host_header(host, port, environ, demo=demo(pid1, environ))
    problem = probe(host, port, path, host_name=name, timeout=args.timeout)
    if problem is not None:
        print(f"healthcheck: {path} on {host}:{port}: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
