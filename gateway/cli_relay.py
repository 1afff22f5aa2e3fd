"""``waitgate relay --engine <engine>``: serve the callback relay for one engine."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click
import uvicorn

if TYPE_CHECKING:
    from gateway.integrations.relay import AdapterFactory

ENGINES = ("temporal", "prefect", "airflow", "langgraph", "celery")
"""The engines with an adapter in ``gateway.integrations``."""
SECRET_VARIABLE = "WAITGATE_CALLBACK_SECRET"  # noqa: S105 - a variable's name


def adapter_factory(engine: str) -> AdapterFactory:
    """``gateway.integrations.<engine>.relay_adapter``; a clear error when the engine's extra
    is not installed."""
    try:
        module = importlib.import_module(f"gateway.integrations.{engine}")
    except ImportError as exc:
        raise click.ClickException(
            f"the {engine} adapter needs its engine's SDK ({exc}): pip install 'waitgate[{engine}]'"
        ) from None
    return cast("AdapterFactory", module.relay_adapter)


def relay_secrets(secret_file: Path | None) -> tuple[str, ...]:
    """The callback secrets, newest first: ``--secret-file`` (the gateway's
    ``callback.secret``), else ``WAITGATE_CALLBACK_SECRET`` (several separated by spaces)."""
    from gateway.integrations.relay import parse_secrets  # noqa: PLC0415 - not for `serve`

    raw = secret_file.read_text() if secret_file is not None else os.environ.get(SECRET_VARIABLE)
    found = parse_secrets(raw or "")
    if not found:
        raise click.ClickException(
            f"no callback secret: set {SECRET_VARIABLE} to the gateway's whsec_… secret "
            "or pass --secret-file"
        )
    return found


@click.command("relay")
@click.option("--engine", required=True, type=click.Choice(ENGINES), help="Whose runs to resume.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5679, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--state",
    default="waitgate-relay.db",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite file of handled webhook-ids (duplicates stay out across restarts).",
)
@click.option(
    "--secret-file",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="File holding the gateway's callback secret(s); default: $WAITGATE_CALLBACK_SECRET.",
)
def relay(engine: str, host: str, port: int, state: Path, secret_file: Path | None) -> None:
    """Take waitgate's callbacks and resume the engine's runs (point callbackUrl here)."""
    from gateway.integrations.relay import relay_app  # noqa: PLC0415 - not for `serve`
    from gateway.integrations.seen_ids import SqliteSeenIds  # noqa: PLC0415

    secrets = relay_secrets(secret_file)
    factory = adapter_factory(engine)
    seen = SqliteSeenIds(state)
    try:
        uvicorn.run(relay_app(factory, secrets, seen=seen), host=host, port=port)
    finally:
        seen.close()
