"""Log lines stay the same while they get cheaper: JSON fields and time, one write per turn."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from datetime import UTC, datetime

import pytest

from gateway.logs import JsonFormatter, TurnBatchedHandler, info, timestamp


class CountingStream(io.StringIO):
    """A text stream that counts its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def _record(message: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    record = logging.makeLogRecord({"name": "waitgate.test", "levelno": logging.INFO})
    record.levelname = "INFO"
    record.msg, record.args = message, args
    record.__dict__.update(extra)
    return record


@pytest.mark.parametrize("created", [0.0, 1.0005, 1_767_225_600.123456, 1_767_225_600.9999])
def test_time_is_iso_8601_utc_to_the_millisecond(created: float) -> None:
    record = _record()
    record.created = created
    second = datetime.fromtimestamp(int(created), UTC).isoformat(timespec="seconds")
    text = timestamp(record)
    assert text.startswith(second.removesuffix("+00:00") + ".")
    assert text.endswith("+00:00")
    assert datetime.fromisoformat(text).timestamp() == pytest.approx(created, abs=0.001)


def test_json_line_has_message_level_logger_and_every_extra() -> None:
    line = JsonFormatter().format(_record("resumed by %s", "webhook", action="wait.resumed", n=3))
    decoded = json.loads(line)
    assert decoded["message"] == "resumed by webhook"
    assert decoded["level"] == "info"
    assert decoded["logger"] == "waitgate.test"
    assert decoded["action"] == "wait.resumed"
    assert decoded["n"] == 3
    assert "\n" not in line


def test_values_json_cannot_hold_are_logged_as_text() -> None:
    decoded = json.loads(JsonFormatter().format(_record(where=object(), when=datetime(2026, 1, 1))))
    assert decoded["where"].startswith("<object object")
    assert decoded["when"].startswith("2026-01-01")


def test_outside_an_event_loop_each_line_is_written_at_once() -> None:
    stream = CountingStream()
    handler = TurnBatchedHandler(stream)
    handler.handle(_record("one"))
    assert stream.getvalue() == "one\n"
    handler.handle(_record("two"))
    assert stream.getvalue() == "one\ntwo\n"


async def test_lines_of_one_loop_turn_go_out_in_one_write_in_order() -> None:
    stream = CountingStream()
    handler = TurnBatchedHandler(stream)
    for n in range(5):
        handler.handle(_record(f"line {n}"))
    assert stream.getvalue() == ""  # not before the turn ends
    await asyncio.sleep(0)
    assert stream.getvalue() == "".join(f"line {n}\n" for n in range(5))
    assert stream.writes == 1


async def test_pending_lines_are_written_by_flush() -> None:
    stream = CountingStream()
    handler = TurnBatchedHandler(stream)
    handler.handle(_record("last words"))
    handler.flush()
    assert stream.getvalue() == "last words\n"


def test_a_loop_that_stopped_before_its_flush_does_not_hold_later_lines() -> None:
    stream = CountingStream()
    handler = TurnBatchedHandler(stream)

    async def log(message: str) -> None:
        handler.handle(_record(message))

    first = asyncio.new_event_loop()
    first.run_until_complete(log("from a loop that then stops"))
    first.close()  # its scheduled flush never ran
    asyncio.run(log("from the next loop"))
    assert stream.getvalue() == "from a loop that then stops\nfrom the next loop\n"


def test_odd_dict_keys_still_make_a_json_line() -> None:
    decoded = json.loads(JsonFormatter().format(_record(odd={None: 1, 2: "x"})))
    assert decoded["odd"] == {"None": 1, "2": "x"}


def _configured(name: str) -> tuple[logging.Logger, CountingStream]:
    """A parent logger set up as ``configure_logging`` sets up ``waitgate``, and its child."""
    stream = CountingStream()
    handler = TurnBatchedHandler(stream)
    handler.setFormatter(JsonFormatter())
    parent = logging.getLogger(name)
    parent.handlers[:] = [handler]
    parent.propagate = False
    parent.setLevel(logging.INFO)
    return logging.getLogger(f"{name}.child"), stream


def _without_time(text: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in text.splitlines()]
    for line in lines:
        assert datetime.fromisoformat(str(line.pop("time"))).tzinfo is not None
    return lines


def test_a_request_line_written_directly_is_the_line_a_record_makes() -> None:
    child, stream = _configured("waitgate_direct_test")
    fields = {"action": "http.request", "status": 200, "duration_ms": 1.25, "client": None}
    info(child, "POST /webhook-waiting/1?signature=*** 200", fields)
    child.info("POST /webhook-waiting/1?signature=*** 200", extra=fields)
    direct, recorded = _without_time(stream.getvalue())
    assert direct == recorded
    assert list(direct) == list(recorded)  # the same field order too


def test_a_request_line_goes_through_the_records_when_anything_else_listens() -> None:
    child, stream = _configured("waitgate_listened_test")
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    child.addHandler(Keep())
    info(child, "GET / 200", {"action": "http.request"})
    assert [r.getMessage() for r in seen] == ["GET / 200"]
    assert seen[0].action == "http.request"  # type: ignore[attr-defined]
    assert _without_time(stream.getvalue())[0]["message"] == "GET / 200"


def test_nothing_is_written_for_a_level_that_is_off() -> None:
    child, stream = _configured("waitgate_quiet_test")
    child.parent.setLevel(logging.WARNING)  # type: ignore[union-attr]
    info(child, "GET / 200", {"action": "http.request"})
    assert stream.getvalue() == ""
