"""Where waitgate is, from an Airflow connection (default id ``waitgate_default``).

The connection's host is waitgate's base URL (``http://waitgate:5678``, or a bare host with
``schema`` ``http``/``https`` and a port), its password the API key. Its extra may name the
relay (``{"relay_url": "http://relay:8001/"}``) that HITL callbacks go to. As an environment
variable::

    AIRFLOW_CONN_WAITGATE_DEFAULT='{"conn_type": "http", "host": "http://127.0.0.1:5678",
                                    "password": "wg_...", "extra": {"relay_url": "..."}}'
"""

from __future__ import annotations

from typing import Any, Protocol

from gateway.integrations.airflow.waitgate_api import Gateway


class ConnectionLike(Protocol):
    """The fields of an Airflow ``Connection`` read here."""

    host: str | None
    schema: str | None
    port: int | None
    password: str | None

    @property
    def extra_dejson(self) -> dict[str, Any]:
        """The connection's extra, decoded."""
        ...


def base_url(connection: ConnectionLike) -> str:
    """waitgate's base URL from the connection's host (and schema and port, for a bare host)."""
    host = (connection.host or "").rstrip("/")
    if "://" in host:
        return host
    scheme = connection.schema or "http"
    port = f":{connection.port}" if connection.port else ""
    return f"{scheme}://{host}{port}"


def gateway_of(connection: ConnectionLike) -> Gateway:
    """The gateway a connection names (``ValueError`` saying what is missing)."""
    return Gateway(base_url(connection), connection.password or "")


def relay_url_of(connection: ConnectionLike) -> str | None:
    """The relay URL in the connection's extra, if any."""
    found = connection.extra_dejson.get("relay_url")
    return str(found) if found else None
