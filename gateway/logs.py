"""JSON log lines, each carrying the id of the request it belongs to."""

from __future__ import annotations

import logging
import random
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

import orjson

request_id_var: ContextVar[str | None] = ContextVar("talkgate_request_id", default=None)


def new_request_id() -> str:
    """32 random hex digits, as uuid4().hex gave, without its system call: an id tells
    requests apart in the logs, it guards nothing, so it need not be unpredictable."""
    return f"{random.getrandbits(128):032x}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, pid, request id, extra fields."""

    _SKIP = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
        "message",
        "color_message",
    }

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            # `serve --workers N` writes N processes' lines to one stream.
            "pid": record.process,
        }
        request_id = request_id_var.get()
        if request_id is not None:
            line["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in self._SKIP and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure_logging(level: str = "INFO") -> None:
    """Send talkgate's and uvicorn's logs to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # talkgate writes its own access line (without query strings, which may hold secrets).
    logging.getLogger("uvicorn.access").disabled = True
