"""Where callbacks may go: an allow-list of whole origins (scheme, host and port).

An origin is written ``scheme://host:port`` with the port always explicit and the host in
lower case, so ``https://Engine.example.com`` and ``https://engine.example.com:443`` are the
same origin. ``WAITGATE_CALLBACK_ALLOWED_ORIGINS`` lists origins; the origin of
``WAITGATE_CALLBACK_URL`` and that of ``WAITGATE_OPERATIONS_URL`` are always allowed; the
deprecated ``WAITGATE_CALLBACK_ALLOWED_HOSTS`` allows ``https://host:443`` and
``http://host:80`` of each host, but never the gateway's own origin
(``WAITGATE_PUBLIC_URL``), which only an explicit origin entry can allow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from gateway.config import Settings

DEFAULT_PORTS = {"http": 80, "https": 443}
PORTS = {**DEFAULT_PORTS, "smtp": 25, "smtps": 465}
"""Schemes an origin may have: http(s) for callbacks and web channels, smtp(s) for email
channels (``smtp://mail.example.com:587`` must be listed to be allowed)."""


class OriginRefused(ValueError):
    """A URL whose origin is not on the allow-list (the message names the origin)."""


def origin_of(url: str) -> str:
    """The normalized origin of an http(s) or smtp(s) URL; ``ValueError`` if it has none."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in PORTS or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) or smtp(s) URL")
    port = parts.port  # raises ValueError when out of range
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{PORTS[scheme] if port is None else port}"


def parse_origin(entry: str) -> str:
    """A configured origin, normalized; ``ValueError`` if it carries more than an origin."""
    parts = urlsplit(entry.strip())
    if parts.path not in {"", "/"} or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{entry!r} must be scheme://host[:port] only")
    origin = origin_of(entry)
    if origin.endswith(":0"):
        raise ValueError(f"{entry!r} has port 0")
    return origin


@dataclass(frozen=True)
class CallbackOrigins:
    """The origins callbacks may be sent to."""

    allowed: frozenset[str]

    @classmethod
    def from_settings(cls, settings: Settings) -> CallbackOrigins:
        """The allow-list the settings describe (see the module docstring)."""
        explicit = {parse_origin(o) for o in settings.callback_allowed_origins}
        if settings.callback_url:
            explicit.add(origin_of(settings.callback_url))
        if settings.operations_url:
            explicit.add(origin_of(settings.operations_url))
        legacy = {
            origin_of(f"{scheme}://{f'[{host}]' if ':' in host else host}")
            for host in settings.callback_allowed_hosts
            for scheme in DEFAULT_PORTS
        }
        legacy.discard(origin_of(settings.public_url))
        return cls(frozenset(explicit | legacy))

    def check(self, url: str) -> str:
        """``url`` if its origin is allowed; ``OriginRefused`` (a ``ValueError``) otherwise."""
        try:
            origin = origin_of(url)
        except ValueError as exc:
            raise OriginRefused(f"callback URL {url!r} is invalid: {exc}") from None
        if origin not in self.allowed:
            allowed = ", ".join(sorted(self.allowed)) or "none"
            raise OriginRefused(
                f"callback origin {origin} is not allowed (WAITGATE_CALLBACK_ALLOWED_ORIGINS; "
                f"allowed: {allowed})"
            )
        return url
