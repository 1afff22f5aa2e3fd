"""What ``waitgate serve`` settles and says before it serves: the public URL resume URLs are
built on (given, or derived from the address served), warnings when the two plainly disagree,
and one start-up line naming the address, the database (never its credentials), the public
URL and where the API reference and the dashboard are."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.config import Settings, variable_of
from gateway.origins import DEFAULT_PORTS

log = logging.getLogger("waitgate.serve")
PUBLIC_URL = variable_of("public_url")
WILDCARDS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - names, compared with --host
LOOPBACK_NAMES = frozenset({"localhost"})


@dataclass(frozen=True)
class PublicUrl:
    """The base of every signed URL, and whether it was derived (``WAITGATE_PUBLIC_URL``
    unset) from the address served."""

    url: str
    derived: bool

    @property
    def source(self) -> str:
        """Where the URL came from, for the start-up line."""
        if self.derived:
            return f"derived from --host and --port ({PUBLIC_URL} is unset)"
        return PUBLIC_URL


def served_url(host: str, port: int) -> str:
    """``http://host:port`` of a bind address (an IPv6 host in brackets)."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def resolve_public_url(env: Mapping[str, str], host: str, port: int) -> PublicUrl:
    """``WAITGATE_PUBLIC_URL`` when set (and not empty), else the address served; on a wildcard
    address (all interfaces) that is this machine's loopback address."""
    given = env.get(PUBLIC_URL, "").rstrip("/")
    if given:
        return PublicUrl(given, derived=False)
    return PublicUrl(served_url("127.0.0.1" if host in WILDCARDS else host, port), derived=True)


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def public_url_warning(public: PublicUrl, host: str, port: int) -> str | None:
    """Why resume URLs built on ``public`` plainly cannot reach a gateway bound to
    ``host:port``; ``None`` when they may (a proxy in front may change host and port)."""
    if public.derived:
        if host in WILDCARDS:
            return (
                f"the gateway listens on all interfaces but {PUBLIC_URL} is unset: resume URLs "
                f"use {public.url}, which only this machine reaches; set {PUBLIC_URL} to the "
                "address callers use"
            )
        return None
    parts = urlsplit(public.url)
    given_host = parts.hostname or ""
    if not _is_loopback(given_host):
        return None
    if host not in WILDCARDS and not _is_loopback(host):
        return (
            f"{PUBLIC_URL} {public.url} names this machine's loopback address, but the gateway "
            f"listens only on {host}: resume URLs will not reach it"
        )
    try:
        given_port = parts.port or DEFAULT_PORTS.get(parts.scheme, 0)
    except ValueError:
        return None
    if given_port != port:
        return (
            f"{PUBLIC_URL} {public.url} names port {given_port} of this machine, but the "
            f"gateway listens on port {port}: resume URLs will not reach it (unless a proxy on "
            f"this machine forwards that port); unset {PUBLIC_URL} to use {served_url(host, port)}"
        )
    return None


def database_shown(url: str) -> str:
    """The database URL without credentials: user, password and query parameters (which may
    hold a password) are left out."""
    parts = urlsplit(url)
    if parts.scheme.startswith("sqlite"):
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = ("***@" if parts.username or parts.password else "") + host
    netloc += "" if port is None else f":{port}"
    return f"{parts.scheme}://{netloc}{parts.path}"


def announce(settings: Settings, public: PublicUrl, host: str, port: int) -> None:
    """Log where the gateway serves, which database, which public URL and where the docs are;
    warn when the public URL plainly cannot reach it."""
    warning = public_url_warning(public, host, port)
    if warning is not None:
        log.warning(warning, extra={"action": "config.public_url"})
    log.info(
        "waitgate serves",
        extra={
            "action": "gateway.serving",
            "listen": served_url(host, port),
            "database": database_shown(settings.database_url),
            "public_url": public.url,
            "public_url_from": public.source,
            "docs": f"{public.url}/api/v1/docs",
            "dashboard": f"{settings.ui_origin or public.url}/ui",
        },
    )
