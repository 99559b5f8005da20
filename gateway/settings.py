"""Settings: one validated object built from `TALKGATE_*` variables and `.env`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SCOPES: frozenset[str] = frozenset(
    {"talks:read", "customers:pii", "recordings:read", "agents:control", "webhooks:write", "admin"}
)

# Values copied from documentation examples are never real secrets (the README's, the
# operator guide's and deploy/'s: tests/gateway/test_settings.py finds each one here).
_PLACEHOLDERS = frozenset(
    {
        "changethis",
        "change-me",
        "secret",
        "ABCDEFGHJKLM",
        "ABCDEFGHJKLMN",
        "the-new-secret-key-0123456789",
        "the-old-secret-key-0123456789",
        "the-new-webhook-secret-0123456",
        "the-old-webhook-secret-0123456",
    }
)
# Secrets talkgate's operators choose (not ones Talk.me gives): at least this long.
SECRET_MIN_CHARS = 16


def _secret_list(value: object) -> object:
    """One secret, or a JSON list of them (`["new", "old"]`): a rotation's secrets, the first
    signing and sealing, every one verifying and opening."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, str):
        if not value.lstrip().startswith("["):
            return (value,)
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError("not a secret nor a JSON list of secrets") from None
    if isinstance(value, list | tuple):
        return tuple(v.get_secret_value() if isinstance(v, SecretStr) else v for v in value)
    return value


# A secret that can be rotated: one, or several with the one in use first.
RotatedSecret = Annotated[tuple[SecretStr, ...], NoDecode, BeforeValidator(_secret_list)]
# An allowed host: a name (optionally `*.` for its subdomains), an IPv4 address or [IPv6].
_HOST_PATTERN = re.compile(r"(\*\.)?[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\]")


def _real(value: str) -> str:
    if value in _PLACEHOLDERS:
        raise ValueError("a placeholder value (from an example); set a real secret")
    return value


def _long_enough(value: str) -> str:
    if len(value) < SECRET_MIN_CHARS:
        raise ValueError(
            f"shorter than {SECRET_MIN_CHARS} characters; make one with"
            " `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    return value


class ApiKeyEntry(BaseModel):
    """One configured API key: only the sha256 of the key is known to talkgate."""

    name: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: frozenset[str]

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, scopes: frozenset[str]) -> frozenset[str]:
        unknown = scopes - SCOPES
        if unknown:
            raise ValueError(f"unknown scopes {sorted(unknown)}; known: {sorted(SCOPES)}")
        return scopes


class Settings(BaseSettings):
    """Everything talkgate can be told; see the README's settings table."""

    model_config = SettingsConfigDict(
        env_prefix="TALKGATE_", env_file=".env", extra="ignore", frozen=True
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # A PostgreSQL URL may hold a password: kept out of repr() and str().
    database_url: str = Field(default="sqlite:///./talkgate.db", repr=False)
    # False: `serve` refuses a store with pending migrations (run `talkgate migrate`).
    auto_migrate: bool = True
    # Talks finished longer ago than this many days are purged daily by `serve`; None: kept.
    retention_days: int | None = Field(default=None, ge=1)
    redis_url: SecretStr | None = None

    talkme_login_url: str = "https://agente.talkk.me/login"
    talkme_agent_api_url: str = "https://api-agente.talk.me"
    talkme_bc_api_url: str = "https://api-bc.talk.me"
    talkme_token: SecretStr | None = None
    talkme_external_login_token: SecretStr | None = None
    talkme_timeout_s: float = Field(default=10.0, gt=0)

    # One secret or a JSON list (the first in use, every one accepted: a rotation).
    webhook_secret: RotatedSecret | None = None
    api_keys: Annotated[tuple[ApiKeyEntry, ...], NoDecode] = ()
    # One secret or a JSON list (the first seals, every one opens: a rotation).
    secret_key: RotatedSecret | None = None
    source_timezone: str = "America/Sao_Paulo"
    public_url: str | None = None
    recording_ttl_s: float = Field(default=300.0, ge=0)
    recording_concurrency: int = Field(default=16, ge=1)
    session_ttl_s: float = Field(default=12 * 3600.0, gt=0)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_reset_s: float = Field(default=30.0, gt=0)

    webhook_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1)
    graphql_max_bytes: int = Field(default=1024 * 1024, ge=1)
    # Containers nested deeper than this in any JSON body are refused (gateway/nesting.py).
    max_json_depth: int = Field(default=64, ge=1, le=200)
    max_query_depth: int = Field(default=12, ge=1)
    max_query_aliases: int = Field(default=30, ge=0)
    max_query_tokens: int = Field(default=3000, ge=1)
    max_query_cost: int = Field(default=10_000, ge=1)
    # Fields of the widest selection set, fragments expanded and same-named fields merged.
    max_query_fields: int = Field(default=100, ge=1)
    rate_limit_per_minute: int = Field(default=600, ge=1)
    max_subscriptions_per_connection: int = Field(default=20, ge=1)
    subscription_queue_size: int = Field(default=100, ge=1)
    introspection: bool = True
    graphiql: bool = True
    # Automatic persisted queries; the manifest's documents; only those (allow-list mode).
    persisted_queries: bool = True
    # Whole responses of store-only queries; 0 turns the cache off.
    response_cache_mb: int = Field(default=64, ge=0)
    response_cache_ttl_s: float = Field(default=300.0, gt=0)
    response_cache_control: str = "private, no-cache"
    # Answers of at least this many bytes are compressed for a client that asks (gzip, br);
    # 0 compresses every answer, and `compression = false` none.
    compression: bool = True
    compress_min_bytes: int = Field(default=1024, ge=0)
    # Decoded documents of stored rows, reused while a row's stored text is unchanged.
    doc_cache_mb: int = Field(default=32, ge=0)
    persisted_queries_file: Path | None = None
    persisted_queries_only: bool = False
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    # Host names (any port) requests must be addressed to; empty: any. The demo answers to
    # localhost, 127.0.0.1 and [::1] only, whatever this says (DNS rebinding).
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = ()
    # /metrics needs an API key with `admin` or this token, unless it is on its own port.
    metrics_token: SecretStr | None = None
    # When set, `serve` answers /metrics on this port only (0: any free port), bound to
    # METRICS_HOST (default: HOST); the main port answers 404 there.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str | None = None
    log_level: str = "INFO"
    # How long `serve` lets in-flight requests finish after SIGTERM before cancelling them.
    shutdown_grace_s: float = Field(default=30.0, gt=0)
    # A connection that has not sent a request's headers (or a WebSocket its connection_init)
    # this long after opening, or after the request began, is closed (slowloris).
    header_timeout_s: float = Field(default=10.0, gt=0)
    # A GraphQL request body must arrive whole this long after its headers (slow bodies).
    body_timeout_s: float = Field(default=30.0, gt=0)
    # An idle keep-alive connection is closed this long after its last response.
    keep_alive_timeout_s: int = Field(default=5, ge=1)
    demo: bool = False

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_api_keys(cls, value: object) -> object:
        if isinstance(value, str):
            from pydantic import TypeAdapter

            return TypeAdapter(tuple[ApiKeyEntry, ...]).validate_json(value or "[]")
        return value

    @field_validator("cors_origins", "allowed_hosts", mode="before")
    @classmethod
    def _parse_origins(cls, value: object) -> object:
        """A JSON list, or values separated by commas."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                from pydantic import TypeAdapter

                return TypeAdapter(tuple[str, ...]).validate_json(text)
            return tuple(o.strip() for o in text.split(",") if o.strip())
        return value

    @field_validator("persisted_queries_only")
    @classmethod
    def _allow_list_given(cls, only: bool, info: ValidationInfo) -> bool:
        if only and info.data.get("persisted_queries_file") is None:
            raise ValueError("allow-list mode needs TALKGATE_PERSISTED_QUERIES_FILE")
        return only

    @field_validator("source_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_store(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:///, postgresql:// or postgres://")
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        for host in hosts:
            if not _HOST_PATTERN.fullmatch(host):
                raise ValueError(
                    f"{host!r} is not a host name (example.com, *.example.com, 10.0.0.5,"
                    " [::1]; no scheme, port or path)"
                )
        return tuple(h.lower() for h in hosts)

    @field_validator("metrics_port")
    @classmethod
    def _own_port(cls, port: int | None, info: ValidationInfo) -> int | None:
        if port and port == info.data.get("port"):
            raise ValueError("must differ from TALKGATE_PORT")
        return port

    @field_validator("talkme_token", "talkme_external_login_token")
    @classmethod
    def _no_placeholder(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None:
            _real(secret.get_secret_value())
        return secret

    @field_validator("metrics_token")
    @classmethod
    def _chosen_secret(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None:
            _long_enough(_real(secret.get_secret_value()))
        return secret

    @field_validator("webhook_secret", "secret_key")
    @classmethod
    def _rotated(cls, secrets: tuple[SecretStr, ...] | None) -> tuple[SecretStr, ...] | None:
        if secrets is None:
            return None
        values = [secret.get_secret_value() for secret in secrets]
        if not values:
            raise ValueError("an empty list: give at least one secret")
        for value in values:
            _long_enough(_real(value))
        if len(set(values)) != len(values):
            raise ValueError("the same secret twice in the list")
        return secrets

    @property
    def webhook_secrets(self) -> tuple[str, ...]:
        """The webhook's secrets, the one in use first; () when none is set."""
        return tuple(s.get_secret_value() for s in self.webhook_secret or ())

    @property
    def secret_keys(self) -> tuple[str, ...]:
        """SECRET_KEY's keys, the sealing one first; () when none is set."""
        return tuple(s.get_secret_value() for s in self.secret_key or ())

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.source_timezone)

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")
