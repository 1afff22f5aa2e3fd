"""How a store verb is written once for every backend: a script of named statements.

A verb is a generator (after psycopg 3's ``generators.py``): it yields each ``Statement`` it
needs run and is sent the result, and it yields a ``Wake`` for what its commit should wake
(a nearer deadline, new outbox rows, a held caller's answer). A driver runs the whole script in
one transaction: SQLite synchronously on its writer thread, PostgreSQL with ``await`` per
statement; wake-ups fire only after the commit.

A statement marked ``alone`` needs no transaction around it: a plain read, or a write that is
atomic by itself (PostgreSQL: one statement with data-modifying ``WITH``) after which the
script writes nothing that must commit with it. PostgreSQL begins a script's transaction only
at its first statement not so marked, so a script that reads and then makes its one write
alone runs without ``BEGIN`` and ``COMMIT`` (each a round trip); SQLite runs every script in
its writer's transaction all the same.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from enum import Enum
from typing import Any, Generic, NamedTuple, TypeVar

from gateway.errors import StoreError

T = TypeVar("T")
Row = Any
"""A row read by column name (``sqlite3.Row`` or a ``dict``)."""
Params = Mapping[str, Any]
NO_PARAMS: Params = {}


class Want(Enum):
    """What a statement's runner sends back into the script."""

    ROW = "row"  # the first row, or None
    ROWS = "rows"  # every row
    COUNT = "count"  # how many rows it changed
    MANY = "many"  # nothing: the statement once per parameter set
    SCRIPT = "script"  # nothing: several statements without parameters (a migration)
    DIALECT = "dialect"  # the driver's dialect, with nothing run


class Statement(NamedTuple):
    """One statement to run: a named query of ``sql/<dialect>/queries.sql``, or ``text``."""

    name: str
    params: Any
    """A mapping of named parameters (for ``MANY``, a sequence of them)."""
    want: Want
    text: Callable[[str], str] | None = None
    """The statement's text in a dialect, for one built at run time instead of named."""
    alone: bool = False
    """It needs no transaction around it (see the module's docstring)."""


class WakeKind(Enum):
    """What a commit may wake; the value is the PostgreSQL channel suffix."""

    DEADLINE = "deadline"
    OUTBOX = "outbox"
    HELD = "held"


class Wake(NamedTuple):
    """A wake-up a script asks for once its transaction commits."""

    kind: WakeKind
    payload: str = ""
    sent: bool = False
    """The statement that caused it has notified the other replicas already (PostgreSQL:
    ``pg_notify`` in that statement); only this replica's listeners are left to call."""


Script = Generator[Statement | Wake, Any, T]
"""A store verb: yields statements (sent their results) and wake-ups, returns its value."""

OUTBOX = Wake(WakeKind.OUTBOX)


def deadline(wait_till: int) -> Wake:
    """Wake the timers: a wait with this deadline was parked."""
    return Wake(WakeKind.DEADLINE, str(wait_till))


def held(execution_id: int, seq: int) -> Wake:
    """Wake the caller held at this wait: its answer is stored."""
    return Wake(WakeKind.HELD, f"{execution_id}:{seq}")


def row(name: str, params: Params = NO_PARAMS, *, alone: bool = False) -> Script[Row | None]:
    """The first row of a named query, or ``None`` (``alone``: see the module's docstring)."""
    return (yield Statement(name, params, Want.ROW, alone=alone))


def one(name: str, params: Params = NO_PARAMS) -> Script[Row]:
    """The row of a named query that must find one."""
    found = yield from row(name, params)
    if found is None:
        raise StoreError(f"{name} found no row")
    return found


def rows(
    name: str,
    params: Params = NO_PARAMS,
    text: Callable[[str], str] | None = None,
    *,
    alone: bool = False,
) -> Script[list[Row]]:
    """Every row of a named query (or of ``text``; ``alone``: see the module's docstring)."""
    found: list[Row] = yield Statement(name, params, Want.ROWS, text, alone)
    return found


def count(name: str, params: Params = NO_PARAMS) -> Script[int]:
    """Run a named statement; how many rows it changed."""
    changed: int = yield Statement(name, params, Want.COUNT)
    return changed


def many(name: str, params: Sequence[Params]) -> Script[None]:
    """Run a named statement once for each parameter set."""
    if params:
        yield Statement(name, params, Want.MANY)


def dialect() -> Script[str]:
    """The dialect of the database the script runs on, for a verb that has a statement of its
    own there (``"postgres"``, ``"sqlite"``)."""
    name: str = yield Statement("dialect", NO_PARAMS, Want.DIALECT, alone=True)
    return name


def script(label: str, text: str) -> Script[None]:
    """Run several statements without parameters, such as a migration."""
    yield Statement(label, NO_PARAMS, Want.SCRIPT, lambda _dialect: text)


class Run(Generic[T]):
    """One script being run: the statements it asks for, the wake-ups it asked for, its value.

    A driver loops ``step = run.send(result_of(step))`` from ``run.first()`` until it is
    ``None``; ``value`` and ``wakes`` are then complete.
    """

    value: T

    def __init__(self, verb: Script[T]) -> None:
        self._verb = verb
        self.wakes: list[Wake] = []

    def first(self) -> Statement | None:
        """The first statement to run."""
        return self.send(None)

    def send(self, result: Any) -> Statement | None:
        """The next statement to run, given the previous one's result; ``None`` when done."""
        try:
            step = self._verb.send(result)
            while isinstance(step, Wake):
                self.wakes.append(step)
                step = self._verb.send(None)
        except StopIteration as done:
            self.value = done.value
            return None
        return step
