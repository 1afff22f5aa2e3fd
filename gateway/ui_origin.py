"""``WAITGATE_UI_ORIGIN``: the dashboard on an origin of its own.

Answers under ``/webhook-waiting`` are written by engines. Served on the dashboard's origin
they are sandboxed (see ``gateway.answers``); on a separate origin they cannot reach the
dashboard at all. With the option set, ``/ui`` is answered only for requests to that origin's
host, and that host answers nothing but ``/ui``: the dashboard's host-only cookie is never sent
with a resume, API or page request, and no engine answer is served where the cookie lives.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import Scope

from gateway.errors import ConfigError

UI_PREFIX = "/ui"
DEFAULT_PORTS = {"http": 80, "https": 443}


def is_ui_path(path: str) -> bool:
    """Whether ``path`` belongs to the dashboard."""
    return path == UI_PREFIX or path.startswith(UI_PREFIX + "/")


@dataclass(frozen=True)
class UiOrigin:
    """The dashboard's own origin: its host, and its port (the scheme's default if unsaid)."""

    host: str
    port: int

    @classmethod
    def parse(cls, ui_origin: str | None, public_url: str) -> UiOrigin | None:
        """``WAITGATE_UI_ORIGIN`` checked against the public URL; ``None`` when unset."""
        if ui_origin is None:
            return None
        parts = urlsplit(ui_origin)
        try:
            port = parts.port or DEFAULT_PORTS.get(parts.scheme, 0)
        except ValueError:
            port = 0
        if not port or not parts.hostname or parts.path not in {"", "/"}:
            raise ConfigError(
                f"WAITGATE_UI_ORIGIN must be an origin such as https://admin.example.com, "
                f"got {ui_origin!r}"
            )
        if parts.hostname.lower() == (urlsplit(public_url).hostname or "").lower():
            raise ConfigError(
                "WAITGATE_UI_ORIGIN must name another host than WAITGATE_PUBLIC_URL: "
                "browsers share cookies between the ports of one host"
            )
        return cls(parts.hostname.lower(), port)

    def named_by(self, host_header: str) -> bool:
        """Whether a request's ``Host`` names this origin (a missing port is its default)."""
        try:
            parts = urlsplit("//" + host_header)
            port = parts.port or self.port
        except ValueError:
            return False
        return (parts.hostname or "").lower() == self.host and port == self.port

    def misdirected(self, scope: Scope) -> bool:
        """Whether a request asks the dashboard's host for something else, or another host for
        the dashboard (both are answered 404)."""
        on_ui = self.named_by(Headers(scope=scope).get("host", ""))
        return on_ui != is_ui_path(str(scope["path"]))
