"""Delivery operations' settings and pure parts: several callback secrets (newest first, spaces
or commas), the endpoint settings, endpoints named from URLs, and the per-endpoint rate."""

from __future__ import annotations

import pytest

from gateway.config import Settings, callback_keys
from gateway.endpoints import RateLimiter, endpoint_of
from gateway.errors import ConfigError

NEW = "whsec_" + "bmV3LXNlY3JldC1vZi10aGlydHktdHdvLWJ5dGVzISE="
OLD = "whsec_" + "b2xkLXNlY3JldC1vZi10aGlydHktdHdvLWJ5dGVzISE="


@pytest.mark.parametrize("raw", [f"{NEW} {OLD}", f"{NEW},{OLD}", f" {NEW} ,\t{OLD} "])
def test_several_callback_secrets_are_read_newest_first(raw: str) -> None:
    settings = Settings.from_env({"WAITGATE_CALLBACK_SECRET": raw})
    assert settings.callback_secret is not None
    keys = callback_keys(settings.callback_secret.reveal())
    assert [k[:3] for k in keys] == [b"new", b"old"]


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (f"{NEW} whsec_nope!", "not valid base64"),
        (f"{NEW} {OLD[6:]}", "must look like whsec_"),
        (f"{NEW};{OLD}", "not valid base64"),
        ("whsec_" + "QUFB", "24 to 64 bytes"),
    ],
)
def test_a_bad_secret_among_several_is_refused_at_start(raw: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        Settings.from_env({"WAITGATE_CALLBACK_SECRET": raw})


def test_the_endpoint_settings_are_read_and_checked() -> None:
    settings = Settings.from_env(
        {
            "WAITGATE_ENDPOINT_FAILURE_THRESHOLD": "3",
            "WAITGATE_ENDPOINT_COOLDOWN": "2.5",
            "WAITGATE_ENDPOINT_CONCURRENCY": "1",
            "WAITGATE_ENDPOINT_RATE_LIMIT": "0.5",
            "WAITGATE_OPERATIONS_URL": "https://ops.example.com/waitgate",
        }
    )
    assert settings.endpoint_failure_threshold == 3
    assert settings.endpoint_cooldown_seconds == 2.5
    assert settings.endpoint_concurrency == 1
    assert settings.endpoint_rate_limit == 0.5
    assert settings.operations_url == "https://ops.example.com/waitgate"
    for name, raw in [
        ("WAITGATE_ENDPOINT_FAILURE_THRESHOLD", "0"),
        ("WAITGATE_ENDPOINT_CONCURRENCY", "-1"),
        ("WAITGATE_ENDPOINT_RATE_LIMIT", "-1"),
        ("WAITGATE_ENDPOINT_RATE_LIMIT", "nan"),
        ("WAITGATE_ENDPOINT_RATE_LIMIT", "inf"),
        ("WAITGATE_OPERATIONS_URL", "ftp://ops.example.com"),
    ]:
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({name: raw})


@pytest.mark.parametrize(
    ("url", "channel", "endpoint"),
    [
        ("https://Engine.Example.com/hook?x=1", None, "https://engine.example.com:443"),
        ("http://127.0.0.1:5680/callbacks", None, "http://127.0.0.1:5680"),
        ("channel:ops", "ops", "channel:ops"),
        ("mailto:ann@example.com", "mail", "channel:mail"),
    ],
)
def test_a_deliverys_endpoint_is_its_origin_or_its_channel(
    url: str, channel: str | None, endpoint: str
) -> None:
    assert endpoint_of(url, channel) == endpoint


def test_the_rate_limit_spaces_starts_per_endpoint() -> None:
    limiter = RateLimiter(2.0)
    assert [limiter.delay_ms("a", 0) for _ in range(3)] == [0, 0, 500]
    assert limiter.delay_ms("b", 0) == 0  # each endpoint has its own
    assert limiter.delay_ms("a", 499) > 0
    assert limiter.delay_ms("a", 500) == 0
    slow = RateLimiter(0.5)
    assert [slow.delay_ms("a", 0), slow.delay_ms("a", 0)] == [0, 2000]
    assert RateLimiter(0).delay_ms("a", 0) == 0
