"""``waitgate executions``: operator commands that talk to a running gateway over its HTTP API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, ParamSpec, TypeVar

import click
import httpx

from gateway.client import WaitgateClient
from gateway.client import WaitgateError as GatewayError
from gateway.domain import FOREVER_MS, Status, format_instant
from gateway.pagination import MAX_LIMIT

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:5678"
NO_LIMIT = format_instant(FOREVER_MS)
SUMMARY_WIDTH = 40


def connection_options(command: Callable[P, None]) -> Callable[P, None]:
    """Add ``--url``, ``--api-key`` and ``--json`` to a command."""
    command = click.option(
        "--json", "as_json", is_flag=True, help="Print the gateway's JSON answer instead."
    )(command)
    command = click.option(
        "--api-key",
        envvar="WAITGATE_API_KEY",
        show_envvar=True,
        help="An API key with the scopes the command needs (required).",
    )(command)
    return click.option(
        "--url",
        envvar="WAITGATE_URL",
        default=DEFAULT_URL,
        show_default=True,
        show_envvar=True,
        help="The gateway's base URL.",
    )(command)


def call_gateway(
    url: str, api_key: str | None, work: Callable[[WaitgateClient], Awaitable[T]]
) -> T:
    """Run ``work`` with a client of the gateway; its errors become clean CLI errors (exit 1)."""
    if not api_key:
        raise click.UsageError(
            "an API key is required: pass --api-key or set WAITGATE_API_KEY",
            click.get_current_context(silent=True),
        )

    async def run() -> T:
        async with WaitgateClient(url, api_key) as client:
            return await work(client)

    try:
        return asyncio.run(run())
    except GatewayError as exc:
        hint = f"\n{exc.hint}" if exc.hint else ""
        raise click.ClickException(f"{exc.message} (HTTP {exc.status}){hint}") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        reason = str(exc) or type(exc).__name__
        raise click.ClickException(f"cannot reach the gateway at {url}: {reason}") from None
    except json.JSONDecodeError:
        raise click.ClickException(
            f"the answer from {url} is not JSON; is it a waitgate gateway?"
        ) from None


def print_json(value: Any) -> None:
    """``value`` as indented JSON on stdout."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def columns(rows: Iterable[Sequence[str]]) -> list[str]:
    """Left-aligned columns, two spaces apart; the last column is not padded."""
    cells = [list(row) for row in rows]
    if not cells:
        return []
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]) - 1)]
    return [
        "  ".join(
            [*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]
        ).rstrip()
        for row in cells
    ]


def instant(value: str | None) -> str:
    """An instant for a table: ``-`` when absent, ``no limit`` for n8n's year-3000 deadline."""
    if value is None:
        return "-"
    return "no limit" if value == NO_LIMIT else value


def summary(custom_data: dict[str, str] | None) -> str:
    """``key=value, …`` cut to fit a table column."""
    text = ", ".join(f"{key}={value}" for key, value in (custom_data or {}).items())
    return text if len(text) <= SUMMARY_WIDTH else text[: SUMMARY_WIDTH - 3] + "..."


def one_line(execution: dict[str, Any]) -> str:
    """An execution in one line: id, status, workflow and what else applies."""
    parts = [
        f"execution {execution['id']}",
        execution["status"],
        f"workflow {execution['workflowId']}",
    ]
    if execution.get("waitTill"):
        parts.append(f"waitTill {instant(execution['waitTill'])}")
    if execution.get("stoppedAt"):
        parts.append(f"stopped {execution['stoppedAt']}")
    if execution.get("retryOf") is not None:
        parts.append(f"retry of {execution['retryOf']}")
    waits = (execution.get("data") or {}).get("waits") or []
    if waits and waits[-1]["resumedAt"]:
        parts.append(f"resumed by {waits[-1]['resumedBy']} at {waits[-1]['resumedAt']}")
    return "  ".join(parts)


def custom_data_pairs(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    """``KEY=VALUE`` options as a dict; a malformed or repeated key is a usage error."""
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, wanted = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", ctx, param)
        if key in pairs:
            raise click.BadParameter(f"key {key!r} is given twice", ctx, param)
        pairs[key] = wanted
    return pairs


def json_data(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """The ``--data`` option parsed as JSON."""
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", ctx, param) from None


@click.group()
def executions() -> None:
    """List, inspect, stop, retry and resume executions of a running gateway."""


@executions.command("list")
@click.option("--status", type=click.Choice([s.value for s in Status]), help="Only this status.")
@click.option("--workflow-id", help="Only this workflow.")
@click.option("--limit", type=click.IntRange(1, MAX_LIMIT), help="Rows per page (default 100).")
@click.option("--cursor", help="The next page: the cursor a previous list printed.")
@click.option(
    "--custom-data",
    multiple=True,
    callback=custom_data_pairs,
    metavar="KEY=VALUE",
    help="Repeatable; only executions whose customData has KEY=VALUE.",
)
@connection_options
def list_command(
    status: str | None,
    workflow_id: str | None,
    limit: int | None,
    cursor: str | None,
    custom_data: dict[str, str],
    url: str,
    api_key: str | None,
    as_json: bool,
) -> None:
    """One page of executions, newest first.

    Running executions are listed only with --status running, as in n8n.
    """
    filters = {
        "status": status,
        "workflowId": workflow_id,
        "limit": None if limit is None else str(limit),
        "cursor": cursor,
        **{f"customData[{key}]": value for key, value in custom_data.items()},
    }
    found, next_cursor = call_gateway(
        url,
        api_key,
        lambda client: client.list(**{k: v for k, v in filters.items() if v is not None}),
    )
    if as_json:
        print_json({"data": [e.raw for e in found], "nextCursor": next_cursor})
        return
    if not found:
        click.echo("no executions found")
    else:
        rows = [
            [
                str(e.id),
                e.status,
                e.raw["workflowId"],
                instant(e.raw["startedAt"]),
                instant(e.raw.get("waitTill")),
                summary(e.raw.get("customData")),
            ]
            for e in found
        ]
        headers = ["ID", "STATUS", "WORKFLOW", "STARTED", "WAIT TILL", "CUSTOM DATA"]
        for line in columns([headers, *rows]):
            click.echo(line)
    if next_cursor:
        click.echo(f"next page: --cursor {next_cursor}")


def _show_lines(execution: dict[str, Any], deliveries: list[dict[str, Any]]) -> list[str]:
    """The human view of ``executions show``."""
    fields = [
        ("workflow", execution["workflowId"]),
        ("mode", execution.get("mode")),
        ("project", execution.get("projectId")),
        ("started", execution.get("startedAt")),
        ("stopped", execution.get("stoppedAt")),
        ("waitTill", execution.get("waitTill")),
        ("retryOf", execution.get("retryOf")),
        ("retrySuccessId", execution.get("retrySuccessId")),
        ("resumeUrl", execution.get("resumeUrl")),
    ]
    lines = [f"execution {execution['id']}  {execution['status']}"]
    lines += [f"  {line}" for line in columns([k, instant(_text(v))] for k, v in fields)]
    custom = execution.get("customData") or {}
    lines.append("customData" + ("" if custom else ": none"))
    lines += [f"  {line}" for line in columns(custom.items())]
    data = execution.get("data")
    waits: list[dict[str, Any]] = [] if data is None else data.get("waits") or []
    if data is None:
        lines.append("waits: not shown (the execution's data is too large to display)")
    else:
        lines.append("waits" + ("" if waits else ": none"))
    wait_rows = [
        [
            str(w["seq"]),
            instant(w["parkedAt"]),
            instant(w["waitTill"]),
            instant(w["resumedAt"]),
            w["resumedBy"] or "-",
        ]
        for w in waits
    ]
    if wait_rows:
        headers = ["SEQ", "PARKED", "DUE", "RESUMED AT", "RESUMED BY"]
        lines += [f"  {line}" for line in columns([headers, *wait_rows])]
    lines.append("deliveries" + ("" if deliveries else ": none"))
    delivery_rows = [
        [
            d["id"],
            d["event"],
            d["status"],
            str(len(d["attempts"])),
            instant(d["deliveredAt"] or d["nextAttemptAt"]),
            d["lastError"] or "-",
        ]
        for d in deliveries
    ]
    if delivery_rows:
        headers = ["ID", "EVENT", "STATUS", "ATTEMPTS", "DELIVERED / NEXT", "LAST ERROR"]
        lines += [f"  {line}" for line in columns([headers, *delivery_rows])]
    return lines


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


@executions.command("show")
@click.argument("execution_id", type=int)
@connection_options
def show_command(execution_id: int, url: str, api_key: str | None, as_json: bool) -> None:
    """An execution with its waits, callback deliveries and customData."""

    async def fetch(client: WaitgateClient) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        execution = await client.get(execution_id, include_data=True)
        if as_json:
            return execution.raw, []
        return execution.raw, await client.deliveries(execution_id)

    execution, deliveries = call_gateway(url, api_key, fetch)
    if as_json:
        print_json(execution)
        return
    for line in _show_lines(execution, deliveries):
        click.echo(line)


def print_execution(execution: dict[str, Any], as_json: bool) -> None:
    """The execution as JSON, or in one line."""
    if as_json:
        print_json(execution)
    else:
        click.echo(one_line(execution))


@executions.command("stop")
@click.argument("execution_id", type=int)
@connection_options
def stop_command(execution_id: int, url: str, api_key: str | None, as_json: bool) -> None:
    """Cancel a new, running or waiting execution."""
    stopped = call_gateway(url, api_key, lambda client: client.stop(execution_id))
    print_execution(stopped.raw, as_json)


@executions.command("retry")
@click.argument("execution_id", type=int)
@connection_options
def retry_command(execution_id: int, url: str, api_key: str | None, as_json: bool) -> None:
    """Retry a failed, crashed or canceled execution.

    Prints the new execution, whose retryOf is ID.
    """
    retry = call_gateway(url, api_key, lambda client: client.retry(execution_id))
    print_execution(retry.raw, as_json)


@executions.command("resume")
@click.argument("execution_id", type=int)
@click.option("--data", callback=json_data, help="JSON handed to the engine as the resume body.")
@connection_options
def resume_command(
    execution_id: int, data: Any, url: str, api_key: str | None, as_json: bool
) -> None:
    """End the current wait of a waiting execution now (resumedBy api)."""
    resumed = call_gateway(url, api_key, lambda client: client.resume(execution_id, data))
    print_execution(resumed.raw, as_json)
