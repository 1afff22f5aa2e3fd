"""The ``waitgate`` command: serve, migrate, and manage API keys."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click
import uvicorn

from gateway.auth import SCOPES, check_scopes, generate_key, hash_key
from gateway.cli_executions import executions
from gateway.cli_relay import relay
from gateway.clock import SystemClock
from gateway.config import Settings
from gateway.domain import ApiKey, format_instant
from gateway.errors import WaitgateError
from gateway.logs import configure_logging, log_config
from gateway.retention import RetentionPolicy, prune
from gateway.startup import PUBLIC_URL, announce, resolve_public_url
from persistence import open_store
from persistence.base import Store

T = TypeVar("T")


def _with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    async def run() -> T:
        store = open_store(settings.database_url)
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except WaitgateError as exc:
        raise click.ClickException(str(exc)) from None


async def _create_key(
    store: Store, label: str, scopes: tuple[str, ...], project: str | None
) -> tuple[ApiKey, str]:
    key = generate_key()
    record = await store.create_api_key(
        label, hash_key(key), key[:10], scopes, project, SystemClock().now_ms()
    )
    return record, key


async def _first_start(store: Store) -> str | None:
    """Migrate; on a database without keys, create the admin key and return it."""
    await store.migrate()
    key = generate_key()
    created = await store.create_first_api_key(
        "admin (created at first start)",
        hash_key(key),
        key[:10],
        ("admin",),
        SystemClock().now_ms(),
    )
    return None if created is None else key


def _program() -> str:
    """The command as the operator typed it (``.venv/bin/waitgate`` after ``make run``)."""
    invoked = sys.argv[0]
    return invoked if Path(invoked).name == "waitgate" else "waitgate"


def _hand_over(admin_key: str, key_file: Path | None) -> None:
    """Give the first admin key to the operator: printed once, or only into ``key_file``
    (``WAITGATE_ADMIN_KEY_FILE``, mode 0600) so it never reaches the service's logs."""
    bar = "=" * 72
    more = f"{_program()} api-key create"
    if key_file is None:
        click.echo(
            f"{bar}\n waitgate created an admin API key. It is shown only this once:\n\n"
            f"   {admin_key}\n\n Send it in the X-N8N-API-KEY header. Keep it somewhere safe;\n"
            f" more keys: {more} --scope ...\n{bar}",
        )
    else:
        try:
            key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(admin_key + "\n")
        except OSError as exc:
            raise click.ClickException(
                f"the first admin API key was created but could not be written to {key_file}: "
                f"{exc.strerror}; make another with: {more}"
            ) from None
        click.echo(
            f"{bar}\n waitgate created an admin API key and wrote it to {key_file} (mode 0600).\n"
            f" It is not printed. Move it somewhere safe and delete the file;\n"
            f" more keys: {more} --scope ...\n{bar}",
        )
    sys.stdout.flush()


@click.group()
def main() -> None:
    """waitgate: park workflow executions and resume them exactly once."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5678, show_default=True, type=int, help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
def serve(host: str, port: int, workers: int) -> None:
    """Apply migrations, then serve the gateway.

    Without ``WAITGATE_PUBLIC_URL``, resume URLs are built on the address served (the workers,
    which read the environment again, are handed the derived value).
    """
    public = resolve_public_url(os.environ, host, port)
    if public.derived:
        os.environ[PUBLIC_URL] = public.url
    settings = Settings.from_env().with_secret_keys()
    configure_logging(settings.log_level)
    admin_key = _with_store(settings, _first_start)
    if admin_key is not None:
        _hand_over(admin_key, settings.admin_key_file)
    announce(settings, public, host, port)
    uvicorn.run(
        "gateway.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        log_config=log_config(settings.log_level),
        access_log=False,
        proxy_headers=False,
        http="gateway.serving:GuardedHttpProtocol",
        limit_concurrency=settings.max_concurrency,
        timeout_keep_alive=settings.keep_alive_timeout_seconds,
    )


@main.command()
def migrate() -> None:
    """Apply the database migrations that are not applied yet."""
    applied = _with_store(Settings.from_env(), lambda store: store.migrate())
    click.echo(f"applied migrations: {applied}" if applied else "database is up to date")


@main.command("prune")
def prune_command() -> None:
    """Delete finished executions past WAITGATE_RETENTION_MAX_AGE / _MAX_COUNT now."""
    settings = Settings.from_env()

    async def work(store: Store) -> int:
        await store.migrate()
        return await prune(store, SystemClock(), RetentionPolicy.from_settings(settings))

    deleted = _with_store(settings, work)
    click.echo(f"deleted {deleted} finished execution(s)")


@main.group("api-key")
def api_key() -> None:
    """Create, list and revoke API keys."""


@api_key.command("create")
@click.option("--label", default="", help="A note to recognise the key by.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help=f"Repeatable; default admin. Known: {', '.join(SCOPES)}.",
)
@click.option("--project", default=None, help="Bind the key to one project's executions.")
def api_key_create(label: str, scopes: tuple[str, ...], project: str | None) -> None:
    """Create a key; it is printed once, as the last line."""
    scopes = scopes or ("admin",)
    try:
        check_scopes(scopes)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--scope") from None

    async def work(store: Store) -> tuple[ApiKey, str]:
        await store.migrate()
        return await _create_key(store, label, scopes, project)

    record, key = _with_store(Settings.from_env(), work)
    click.echo(f"created key {record.id} with scopes {', '.join(record.scopes)}", err=True)
    click.echo(key)


@api_key.command("list")
def api_key_list() -> None:
    """List keys (never their values)."""

    async def work(store: Store) -> list[ApiKey]:
        await store.migrate()
        return await store.list_api_keys()

    keys = _with_store(Settings.from_env(), work)
    click.echo(
        f"{'ID':>4}  {'PREFIX':<10}  {'CREATED':<24}  {'STATE':<8}  {'PROJECT':<10}  SCOPES / LABEL"
    )
    for key in keys:
        state = "revoked" if key.revoked_at else "active"
        click.echo(
            f"{key.id:>4}  {key.prefix:<10}  {format_instant(key.created_at):<24}  {state:<8}  "
            f"{key.project_id or '-':<10}  {','.join(key.scopes)}  {key.label}"
        )


@api_key.command("revoke")
@click.argument("key_id", type=int)
def api_key_revoke(key_id: int) -> None:
    """Revoke a key at once."""

    async def work(store: Store) -> bool:
        await store.migrate()
        return await store.revoke_api_key(key_id, SystemClock().now_ms())

    revoked = _with_store(Settings.from_env(), work)
    if not revoked:
        raise click.ClickException(f"no active key with id {key_id}")
    click.echo(f"revoked key {key_id}")


main.add_command(executions)
main.add_command(relay)
