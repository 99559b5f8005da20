"""What bench.http_floor prints: the table of each workload's gateway against its floors, and
the ruler's check that every run was bound by its server.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.ruler import Measure


@dataclass
class Line:
    """A measured workload: the gateway and the floors it is compared with."""

    name: str
    gateway: Measure
    floors: list[tuple[str, Measure]]


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:8.0f}"


def print_table(lines: Sequence[Line]) -> None:
    print()
    print(
        "rate = answers per second (wrk, 1 thread, 8 connections); p50/p99 = wrk's latency, ms;"
        " bytes = per answer with its headers; srv/cli us = CPU microseconds per request of"
        " the server's processes / of wrk; busy = CPU seconds per second of each; RSS = server"
        " VmHWM, MiB (its workers' summed); x rate = floor rate / gateway rate;"
        " x cpu = gateway srv us / floor srv us;"
        " per CPU-s = answers per second of the server's CPU time"
    )
    head = (
        f"{'workload':<9} {'server':<11} {'rate/s':>8} {'p50':>7} {'p99':>7} {'bytes':>7}"
        f" {'srv us':>8} {'cli us':>8} {'busy':>9} {'RSS':>5} {'per CPU-s':>9} |"
        f" {'x rate':>6} {'x cpu':>6}"
    )
    print(head)
    print("-" * len(head))

    def row(name: str, label: str, m: Measure) -> tuple[str, str]:
        flags = []
        if m.bad or m.socket_errors:
            flags.append(f"{m.bad} bad, {m.socket_errors} socket errors")
        if m.client_bound:
            flags.append("CLIENT-BOUND")
        return (
            f"{name:<9} {label:<11} {m.rate:8,.0f} {m.p50_ms:7.2f} {m.p99_ms:7.2f}"
            f" {m.answer_bytes:7,} {_us(m.server_cpu_per_request)} {_us(m.client_cpu_per_request)}"
            f" {m.server_busy:4.2f}/{m.client_busy:4.2f} {m.peak_mib:5.0f}"
            f" {1 / m.server_cpu_per_request if m.server_cpu_per_request else 0:9,.0f}"
        ), ("  (" + "; ".join(flags) + ")" if flags else "")

    for line in lines:
        text, flags = row(line.name, "gateway", line.gateway)
        print(text + " |" + flags)
        for label, floor in line.floors:
            text, flags = row("", label, floor)
            print(
                text
                + f" | {floor.rate / line.gateway.rate:5.2f}x"
                + f" {line.gateway.server_cpu_per_request / floor.server_cpu_per_request:5.2f}x"
                + flags
            )


def ruler_check(lines: Sequence[Line]) -> list[str]:
    """What says the ruler could not see a server: a floor or gateway run paced by wrk, or
    a gateway that answered faster than its bytes floor."""
    problems = []
    for line in lines:
        for label, m in [("gateway", line.gateway), *line.floors]:
            if m.client_bound:
                problems.append(
                    f"{line.name} {label}: wrk busy {m.client_busy:.2f} CPU/s, server"
                    f" {m.server_busy:.2f}: client-bound"
                )
            elif m.server_busy < 0.9:
                problems.append(
                    f"{line.name} {label}: the server used {m.server_busy:.2f} CPU/s and wrk"
                    f" {m.client_busy:.2f} (waits on the disk, or a shared machine): its x cpu"
                    " holds, its x rate less so"
                )
        bytes_floor = line.floors[0][1]
        if line.gateway.rate > bytes_floor.rate:
            problems.append(f"{line.name}: the gateway outran its floor: the ruler is broken")
    return problems


# The issue-20 targets: the workload, and at most how many times its floor.
TARGETS = (
    ("W1 warm", "1.5x the bytes floor"),
    ("W1 cold", "10x the bytes floor (stretch 5x)"),
    ("W2 page", "10x the bytes floor"),
    ("W3", "10x the bytes floor"),
    ("webhook", "2x the read-the-body floor"),
)


INGEST_TARGET = 3_000


@dataclass
class IngestRun:
    rows: int
    seconds: float
    peak_mib: float
    output: str

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


def print_summary(
    lines: Sequence[Line], cli: IngestRun | None, parse_floor: IngestRun | None, empty: str
) -> None:
    """The table, `talkgate ingest`'s figures against its parse-only floor (into `empty`),
    the ruler's check, and each figure against its target."""
    print_table(lines)
    if cli is not None and parse_floor is not None:
        print()
        print(
            f"talkgate ingest of {cli.rows:,} NDJSON talks into {empty}:"
            f" {cli.rate:,.0f} talks/s ({cli.seconds:.1f}s), peak RSS with its workers"
            f" {cli.peak_mib:,.0f} MiB;"
            f" parse-only floor {parse_floor.rate:,.0f} talks/s, peak RSS"
            f" {parse_floor.peak_mib:,.0f} MiB; x rate {parse_floor.rate / cli.rate:.1f}x"
        )
    problems = ruler_check(lines)
    print()
    print("the ruler: " + ("; ".join(problems) if problems else "every run server-bound"))
    print()
    print("targets (for reference, not asserted): x rate and x cpu against the floor")
    by_name = {line.name: line for line in lines}
    for name, target in TARGETS:
        if name not in by_name:
            continue
        line = by_name[name]
        base = line.floors[0][1]
        print(
            f"  {name} <= {target}: {base.rate / line.gateway.rate:.2f}x rate,"
            f" {line.gateway.server_cpu_per_request / base.server_cpu_per_request:.2f}x"
            f" cpu ({line.gateway.rate:,.0f}/s against {base.rate:,.0f}/s)"
        )
    if cli is not None:
        print(
            f"  talkgate ingest >= {INGEST_TARGET:,} talks/s, peak RSS < 300 MiB:"
            f" {cli.rate:,.0f} talks/s, {cli.peak_mib:,.0f} MiB"
        )
    print()
