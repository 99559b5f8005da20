"""The lenient coercers of PipeRun's dirty values: ints as strings, booleans in Portuguese,
three datetime spellings (stray spaces inside times, zero dates), broken URLs, blank ids; and
the annotated field types of the payload model (gateway/ingest/payload.py) built on them."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, tzinfo
from typing import Annotated
from zoneinfo import ZoneInfo

import orjson
from annotated_types import Ge
from pydantic import (
    BeforeValidator,
    ValidationInfo,
)

DEFAULT_ZONE = ZoneInfo("America/Sao_Paulo")

_SPACED_COLON = re.compile(r"\s*:\s*")
_BROKEN_SCHEME = re.compile(r"^(https?):\s*/\s*/\s*", re.IGNORECASE)
_ZERO_DATES = ("0000-00-00",)


def blank_to_none(value: object) -> object:
    if isinstance(value, str) and not value.strip():
        return None
    return value


_INT64 = range(-(2**63), 2**63)
INT64_MIN, INT64_STOP = -(2**63), 2**63


def lenient_int(value: object) -> object:
    # Most values are already ints (or absent): answer those without the general path.
    if type(value) is int:
        if INT64_MIN <= value < INT64_STOP:
            return value
        raise ValueError("the integer is outside the 64-bit range")
    if value is None:
        return None
    value = int_from(value)
    if isinstance(value, int) and not isinstance(value, bool) and value not in _INT64:
        raise ValueError("the integer is outside the 64-bit range")
    return value


def int_from(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("a boolean is not an integer")
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return value
            return int(number) if number.is_integer() else value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


_TRUE = frozenset({"1", "true", "t", "yes", "y", "s", "sim", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "nao", "não", "off", ""})


def lenient_bool(value: object) -> object:
    if value is True or value is False:
        return value
    if value is None:
        return False
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return value


def as_text(value: object) -> object:
    """External ids and similar codes are strings whatever their JSON type."""
    if value is None or type(value) is str:
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    return value


def repair_url(value: object) -> object:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        return _BROKEN_SCHEME.sub(lambda m: f"{m.group(1).lower()}://", text)
    return value


def parse_datetime(value: object, zone: tzinfo = DEFAULT_ZONE) -> datetime | None:
    """Read any of PipeRun's datetime spellings; naive ones are local time in `zone`.

    Accepts `2025-09-08T14:01:17.000000Z`, `2025-09-08 11:01:19`, `2025-09-08 11: 01: 18`,
    offsets, and epoch seconds. Returns an aware UTC datetime, or None for blanks and
    MySQL zero dates. Raises ValueError for anything else.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, bool):
        raise ValueError("a datetime cannot be a boolean")
    elif isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError("a datetime cannot be NaN or infinite")
        try:
            moment = datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError("the timestamp is out of range") from None
    elif isinstance(value, str):
        try:
            # Most values are plain ISO 8601 already; the repairs below cannot change
            # one that parses as it is (they touch only spaces, which it has none of
            # around its colons or at its ends).
            moment = datetime.fromisoformat(value)
        except ValueError:
            repaired = _repaired_datetime(value)
            if repaired is None:
                return None
            moment = repaired
    else:
        raise ValueError(f"a datetime must be a string, not {type(value).__name__}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("the datetime is out of range") from None


def _repaired_datetime(value: str) -> datetime | None:
    text = _SPACED_COLON.sub(":", value.strip())
    if not text or text.startswith(_ZERO_DATES):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("not a datetime in any known spelling") from None


def datetime_field(value: object, info: ValidationInfo) -> datetime | None:
    zone = (info.context or {}).get("zone", DEFAULT_ZONE)
    return parse_datetime(value, zone)


def iso(moment: datetime) -> str:
    """A UTC datetime as pydantic's JSON mode writes it (`...Z`, microseconds only if any)."""
    # Spelled naive: writing the offset (then cut) tripled the cost of isoformat.
    return moment.replace(tzinfo=None).isoformat() + "Z"


# The texts of datetimes already read, by spelling and zone. Datetimes repeat: an agent's or
# a customer's come with every talk that carries them, and a message is often sent, delivered
# and created in the same second. Reading one costs microseconds, a hit a dict lookup.
_ISO_TEXTS: dict[tuple[str, tzinfo], str | None] = {}
_ISO_TEXTS_LIMIT = 4096


def iso_datetime_field(value: object, info: ValidationInfo) -> str | None:
    if value is None:
        return None
    zone = (info.context or {}).get("zone", DEFAULT_ZONE)
    if type(value) is not str:
        moment = parse_datetime(value, zone)
        return None if moment is None else iso(moment)
    key = (value, zone)
    try:
        return _ISO_TEXTS[key]
    except KeyError:
        pass
    moment = parse_datetime(value, zone)  # a ValueError is raised again each time
    text = None if moment is None else iso(moment)
    if len(_ISO_TEXTS) >= _ISO_TEXTS_LIMIT:
        _ISO_TEXTS.clear()
    _ISO_TEXTS[key] = text
    return text


def initiation_type(value: object) -> object:
    if isinstance(value, str):
        text = value.strip().lower()
        return {"comment": "c", "mention": "m", "normal": "n", "reaction": "r"}.get(text, text)
    return value


def lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


Int = Annotated[int, BeforeValidator(lenient_int)]
OptInt = Annotated[int | None, BeforeValidator(lenient_int)]
# PipeRun's internal ids ("identificador interno") count from 1. Those that key a row talkgate
# keeps (talks, messages, events, customers, agents, channels) or point at one must be
# positive: a talk -5 or an agent 0 is no PipeRun talk or agent.
Id = Annotated[int, Ge(1), BeforeValidator(lenient_int)]
OptId = Annotated[int | None, Ge(1), BeforeValidator(lenient_int)]
Flag = Annotated[bool, BeforeValidator(lenient_bool)]
Text = Annotated[str | None, BeforeValidator(as_text)]
ExternalId = Annotated[str | None, BeforeValidator(as_text), BeforeValidator(blank_to_none)]
Url = Annotated[str | None, BeforeValidator(repair_url)]
DateTime = Annotated[datetime, BeforeValidator(datetime_field)]
OptDateTime = Annotated[datetime | None, BeforeValidator(datetime_field)]


def list_or_empty(value: object) -> object:
    return [] if value is None else value


def custom_fields(value: object) -> object:
    """PipeRun sends custom fields as an object; lists of {name, value} are accepted too."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [{"name": str(k), "value": v} for k, v in value.items()]
    return value


def custom_value(value: object) -> object:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return as_text(value)
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        # An int past 64 bits inside (a payload given as Python values: orjson, which parses
        # every body, reads such a number as a float), or a value JSON has no word for.
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)
