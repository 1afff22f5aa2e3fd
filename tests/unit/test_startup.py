"""What ``waitgate serve`` settles before serving: the public URL, its warnings, and the
database as the start-up line shows it (never with credentials)."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from gateway.app import create_app
from gateway.config import Secret, Settings
from gateway.startup import (
    PublicUrl,
    database_shown,
    public_url_warning,
    resolve_public_url,
)


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("127.0.0.1", 5701, "http://127.0.0.1:5701"),
        ("localhost", 8080, "http://localhost:8080"),
        ("0.0.0.0", 5678, "http://127.0.0.1:5678"),
        ("::", 5678, "http://127.0.0.1:5678"),
        ("::1", 5679, "http://[::1]:5679"),
    ],
)
def test_an_unset_public_url_is_derived_from_the_address_served(
    host: str, port: int, expected: str
) -> None:
    for env in ({}, {"WAITGATE_PUBLIC_URL": ""}):
        assert resolve_public_url(env, host, port) == PublicUrl(expected, derived=True)


def test_a_given_public_url_is_kept_without_its_trailing_slash() -> None:
    given = {"WAITGATE_PUBLIC_URL": "https://gw.example.com/"}
    assert resolve_public_url(given, "0.0.0.0", 5678) == PublicUrl(
        "https://gw.example.com", derived=False
    )


@pytest.mark.parametrize(
    ("public_url", "host", "port", "names"),
    [
        ("http://127.0.0.1:5678", "127.0.0.1", 5701, "port 5678"),
        ("http://localhost", "0.0.0.0", 5678, "port 80"),
        ("https://[::1]", "::1", 8443, "port 443"),
        ("http://127.0.0.1:5678", "10.1.2.3", 5678, "listens only on 10.1.2.3"),
    ],
)
def test_a_public_url_that_plainly_misses_the_address_served_is_warned_about(
    public_url: str, host: str, port: int, names: str
) -> None:
    warning = public_url_warning(PublicUrl(public_url, derived=False), host, port)
    assert warning is not None
    assert names in warning
    assert "WAITGATE_PUBLIC_URL" in warning


@pytest.mark.parametrize(
    ("public_url", "host", "port"),
    [
        ("http://127.0.0.1:5678", "127.0.0.1", 5678),
        ("http://localhost:5678", "0.0.0.0", 5678),
        ("https://gw.example.com", "127.0.0.1", 5678),  # a proxy in front
        ("http://10.1.2.3:8080", "0.0.0.0", 5678),
    ],
)
def test_a_public_url_a_proxy_may_serve_is_not_warned_about(
    public_url: str, host: str, port: int
) -> None:
    assert public_url_warning(PublicUrl(public_url, derived=False), host, port) is None


def test_a_derived_public_url_is_warned_about_only_on_all_interfaces() -> None:
    assert public_url_warning(resolve_public_url({}, "127.0.0.1", 5701), "127.0.0.1", 5701) is None
    everywhere = public_url_warning(resolve_public_url({}, "0.0.0.0", 5678), "0.0.0.0", 5678)
    assert everywhere is not None
    assert "set WAITGATE_PUBLIC_URL" in everywhere


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:///./data/waitgate.db", "sqlite:///./data/waitgate.db"),
        ("postgresql://waitgate:s3cret@db:5432/waitgate", "postgresql://***@db:5432/waitgate"),
        ("postgresql://only-user@db/waitgate", "postgresql://***@db/waitgate"),
        ("postgresql://db/waitgate?password=s3cret&sslmode=require", "postgresql://db/waitgate"),
        ("postgres://u:p@[::1]:5433/x", "postgres://***@[::1]:5433/x"),
    ],
)
def test_the_database_is_shown_without_credentials(url: str, shown: str) -> None:
    assert database_shown(url) == shown


@pytest.mark.parametrize("freeze", [False, True])
async def test_a_served_gateway_keeps_what_start_up_made_out_of_the_collectors_sight(
    tmp_path: Path, freeze: bool
) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'w.db'}",
        secret_keys=(Secret("k" * 40),),
        data_dir=tmp_path,
    )
    app = create_app(settings, freeze_after_start=freeze)
    gc.unfreeze()
    try:
        async with app.router.lifespan_context(app):
            frozen = gc.get_freeze_count()
            assert (frozen > 10_000) is freeze, frozen  # the modules' objects and more
    finally:
        gc.unfreeze()  # the rest of the test session collects as usual
