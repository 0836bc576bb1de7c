"""Secrets in the settings stay out of URLs, logs and errors (issue 16 item 3): the snapshot store's
password joins its URL only when the engine is built (URL-encoded), the registry's URL may not carry
credentials, and a URL shown anywhere has its password masked."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from flexchain.settings import RegistrySettings, Settings, redact_url

NASTY = "it's@a:p/w?#%"  # every character a URL or SQL would trip on


def test_the_snapshot_password_is_put_into_the_url_encoded() -> None:
    s = Settings(flexchain_snapshot_url="postgresql+psycopg://order@postgres:5432/flexchain", flexchain_snapshot_password=NASTY)
    url = make_url(s.snapshot_url("order"))
    assert (url.username, url.password, url.host, url.database) == ("order", NASTY, "postgres", "flexchain")
    assert NASTY not in repr(s)  # SecretStr
    unset = Settings(flexchain_snapshot_url="postgresql+psycopg://order@postgres/flexchain")
    assert unset.snapshot_url("order") == "postgresql+psycopg://order@postgres/flexchain"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:secret@reg.example:8443/apis/ccompat/v7", "https://u:***@reg.example:8443/apis/ccompat/v7"),
        ("https://u@reg.example/x", "https://u@reg.example/x"),
        ("http://reg:8080/apis", "http://reg:8080/apis"),
        ("postgresql+psycopg://flexchain:pw@postgres/flexchain", "postgresql+psycopg://flexchain:***@postgres/flexchain"),
    ],
)
def test_redact_url_masks_the_password_only(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_registry_credentials_come_from_their_own_settings_never_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="SCHEMA_REGISTRY_USER") as refused:
        RegistrySettings(schema_registry_url="https://u:secret-pw@reg/apis/ccompat/v7")
    assert "secret-pw" not in str(refused.value)
    # compose's `${SCHEMA_REGISTRY_USER:-}` and an env file's `KEY=` give "": the same as unset
    for name in ("SCHEMA_REGISTRY_USER", "SCHEMA_REGISTRY_PASSWORD", "SCHEMA_REGISTRY_CA", "SCHEMA_REGISTRY_CERT"):
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", "https://reg/apis/ccompat/v7")
    s = RegistrySettings()
    assert (s.schema_registry_user, s.schema_registry_password, s.schema_registry_ca, s.schema_registry_cert) == (None,) * 4
