"""Settings: environment, validation, and secrets that never show."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.auth import key_digest
from gateway.settings import Settings


def test_defaults_follow_the_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(_env_file=None)
    assert settings.database_url == "sqlite:///./talkgate.db"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.talkme_login_url == "https://agente.talkk.me/login"
    assert settings.talkme_agent_api_url == "https://api-agente.talk.me"
    assert settings.talkme_bc_api_url == "https://api-bc.talk.me"
    assert settings.talkme_timeout_s == 10
    assert settings.source_timezone == "America/Sao_Paulo"
    assert settings.recording_ttl_s == 300
    assert (settings.breaker_failures, settings.breaker_reset_s) == (5, 30)
    assert settings.base_url == "http://127.0.0.1:8000"
    assert settings.api_keys == ()


def test_settings_come_from_talkgate_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = {"name": "crm", "sha256": key_digest("k"), "scopes": ["talks:read"]}
    monkeypatch.setenv("TALKGATE_API_KEYS", json.dumps([entry]))
    monkeypatch.setenv("TALKGATE_PORT", "9001")
    monkeypatch.setenv("TALKGATE_WEBHOOK_SECRET", "s3cr3t-value-0a9b8c7d")
    settings = Settings(_env_file=None)
    assert settings.port == 9001
    assert settings.api_keys[0].name == "crm"
    assert settings.api_keys[0].scopes == {"talks:read"}
    assert settings.webhook_secrets == ("s3cr3t-value-0a9b8c7d",)


def test_settings_are_read_from_a_dotenv_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("TALKGATE_SOURCE_TIMEZONE=America/Manaus\n")
    assert Settings().source_timezone == "America/Manaus"


def test_secrets_never_show_in_repr_or_str(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WEBHOOK_SECRET", "SECRET_KEY", "TALKME_TOKEN", "TALKME_EXTERNAL_LOGIN_TOKEN"):
        monkeypatch.setenv(f"TALKGATE_{name}", f"very-secret-{name.lower()}")
    monkeypatch.setenv("TALKGATE_REDIS_URL", "redis://:hunter2@localhost:6379/0")
    monkeypatch.setenv("TALKGATE_DATABASE_URL", "postgresql://talkgate:pg-s3cret@db:5432/tg")
    settings = Settings(_env_file=None)
    shown = repr(settings) + str(settings)
    assert "very-secret" not in shown + repr(settings.model_dump())
    assert "hunter2" not in shown + repr(settings.model_dump())
    assert "pg-s3cret" not in shown


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TALKGATE_API_KEYS", '[{"name": "x", "sha256": "abc", "scopes": []}]'),
        ("TALKGATE_API_KEYS", '[{"name": "x", "sha256": "' + "a" * 64 + '", "scopes": ["root"]}]'),
        ("TALKGATE_API_KEYS", "not json"),
        ("TALKGATE_SOURCE_TIMEZONE", "Mars/Olympus"),
        ("TALKGATE_DATABASE_URL", "mysql://db"),
        ("TALKGATE_WEBHOOK_SECRET", "changethis"),
        ("TALKGATE_WEBHOOK_SECRET", "fifteen-chars-x"),
        ("TALKGATE_WEBHOOK_SECRET", "[]"),
        ("TALKGATE_WEBHOOK_SECRET", '["a-real-secret-0123456789", "changethis"]'),
        ("TALKGATE_WEBHOOK_SECRET", '["a-real-secret-0123456789", "a-real-secret-0123456789"]'),
        ("TALKGATE_WEBHOOK_SECRET", '["a-real-secret-0123456789", 7]'),
        ("TALKGATE_WEBHOOK_SECRET", "[not json"),
        ("TALKGATE_SECRET_KEY", "short-key"),
        ("TALKGATE_SECRET_KEY", '["a-real-secret-key-0123456", "short"]'),
        ("TALKGATE_METRICS_TOKEN", "tok"),
        ("TALKGATE_TALKME_TOKEN", "ABCDEFGHJKLM"),
        ("TALKGATE_TALKME_TIMEOUT_S", "0"),
    ],
)
def test_invalid_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


def test_every_setting_has_a_row_in_the_readme_settings_table() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `TALKGATE_")]
    missing = []
    for name in Settings.model_fields:
        variable = f"TALKGATE_{name.upper()}"
        # A row may name several: `TALKGATE_MAX_QUERY_DEPTH` / `_ALIASES` / ...
        head, _, tail = variable.rpartition("_")
        if not any(
            f"`{variable}`" in row or (f"`{head}_" in row and f"`_{tail}`" in row) for row in rows
        ):
            missing.append(variable)
    assert missing == []


@pytest.mark.parametrize("name", ["WEBHOOK_SECRET", "SECRET_KEY"])
def test_a_rotated_secret_is_a_json_list_with_the_one_in_use_first(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(f"TALKGATE_{name}", '["the-one-in-use-0123456", "the-one-before-0123456"]')
    settings = Settings(_env_file=None)
    values = settings.webhook_secrets if name == "WEBHOOK_SECRET" else settings.secret_keys
    assert values == ("the-one-in-use-0123456", "the-one-before-0123456")
    assert "the-one" not in repr(settings) + str(settings) + repr(settings.model_dump())


def test_one_secret_is_a_list_of_one_and_none_is_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TALKGATE_SECRET_KEY", "[bracketless-is-not-a-list?]-no")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # starts with "[": read as a list, and is not one
    monkeypatch.setenv("TALKGATE_SECRET_KEY", "plain-secret-key-with-[brackets]")
    assert Settings(_env_file=None).secret_keys == ("plain-secret-key-with-[brackets]",)
    monkeypatch.delenv("TALKGATE_SECRET_KEY")
    assert Settings(_env_file=None).secret_keys == ()
    assert Settings(_env_file=None).webhook_secrets == ()


def test_every_secret_shown_in_the_docs_is_refused() -> None:
    # The README's, the guides' and deploy/'s example values, copied as they are, never start
    # a gateway: each literal value they give a secret setting is a placeholder.
    root = Path(__file__).resolve().parents[2]
    docs = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    found: set[str] = set()
    for path in [*docs, *sorted((root / "deploy").iterdir())]:
        text = path.read_text()
        for match in re.finditer(
            r"TALKGATE_(?:SECRET_KEY|WEBHOOK_SECRET|METRICS_TOKEN)="
            r"""('(?P<list>\[[^']*\])'|"(?P<quoted>[^"$]*)"|(?P<bare>[^\s'"$`]+))""",
            text,
        ):
            if match["list"] is not None:
                found |= set(json.loads(match["list"]))
            elif match["quoted"] or match["bare"]:
                found.add(match["quoted"] or match["bare"].rstrip(".,;:)"))
    assert "change-me" in found  # the pattern still finds the examples
    for value in found:
        with pytest.raises(ValidationError):
            Settings(_env_file=None, secret_key=value)
