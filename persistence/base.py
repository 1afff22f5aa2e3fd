"""The storage seam: domain verbs that every backend implements.

Every state transition is one conditional write; a verb whose condition does not hold
returns ``None`` or ``False`` (the caller re-reads to learn why) instead of writing anything.
Instants are milliseconds since the epoch and always come from the caller's clock.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from gateway.domain import (
    JSON,
    Admission,
    ApiKey,
    CallOutcome,
    Delivery,
    DeliveryAttempt,
    Execution,
    ExecutionQuery,
    NewExecution,
    ResumeAttempt,
    ResumedBy,
    Retried,
    Status,
    StopFilter,
    StoredAnswer,
    Tag,
    TimedOut,
    Wait,
    WebhookSpec,
)
from gateway.early import CallEvidence, EarlyAdmission, ParkOutcome


class Store(ABC):
    """Where executions, waits and API keys live."""

    def _listeners(self) -> dict[str, list[Callable[..., None]]]:
        if not hasattr(self, "_listeners_by_kind"):
            self._listeners_by_kind: dict[str, list[Callable[..., None]]] = {}
        return self._listeners_by_kind

    def on_outbox(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after a commit (here, or in another replica) added to the outbox."""
        self._listeners().setdefault("outbox", []).append(listener)

    def on_deadline(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(wait_till)`` when another replica parks a wait with a deadline."""
        self._listeners().setdefault("deadline", []).append(listener)

    def on_held_answer(self, listener: Callable[[int, int], None]) -> None:
        """Call ``listener(execution, seq)`` when another replica stores a held caller's answer."""
        self._listeners().setdefault("held", []).append(listener)

    def _outbox_written(self, count: int) -> None:
        if count:
            for listener in self._listeners().get("outbox", ()):
                listener()

    def _deadline_parked(self, wait_till: int) -> None:
        for listener in self._listeners().get("deadline", ()):
            listener(wait_till)

    def _held_answer_stored(self, execution_id: int, seq: int) -> None:
        for listener in self._listeners().get("held", ()):
            listener(execution_id, seq)

    @abstractmethod
    async def open(self) -> None:
        """Connect. Must be called before any other verb."""

    @abstractmethod
    async def close(self) -> None:
        """Release every connection."""

    @abstractmethod
    async def migrate(self) -> list[int]:
        """Apply the migrations not yet applied; return their versions."""

    @abstractmethod
    async def pending_migrations(self) -> list[int]:
        """Versions of the migrations not yet applied."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the database answers."""

    async def database_time(self) -> int | None:
        """The database server's clock in ms, where it has its own (``None`` for SQLite)."""
        return None

    # executions -----------------------------------------------------------------------

    @abstractmethod
    async def create_execution(self, new: NewExecution, now: int) -> Execution:
        """Insert a ``running`` execution."""

    @abstractmethod
    async def retry_execution(self, execution_id: int, now: int) -> Retried | None:
        """The retry of a failed, crashed or canceled execution.

        An earlier retry that is under way or succeeded is returned as it is; only when every
        earlier retry failed too is a new one made (``running``, ``retryOf``, with its
        ``execution.retry`` outbox row), in one transaction that first locks the execution, so
        concurrent calls make one retry and the others find it. ``None`` if the execution is
        gone or may not be retried.
        """

    @abstractmethod
    async def get_execution(
        self, execution_id: int, *, with_waits: bool = False
    ) -> Execution | None:
        """One execution, with its waits if asked."""

    @abstractmethod
    async def get_wait(self, execution_id: int, seq: int) -> Wait | None:
        """One wait of an execution."""

    @abstractmethod
    async def park(
        self,
        execution_id: int,
        wait_till: int | None,
        webhook: WebhookSpec | None,
        now: int,
        admit_early: EarlyAdmission | None = None,
    ) -> ParkOutcome | None:
        """Move a ``running`` execution to ``waiting`` at a new wait.

        An early resume recorded for that wait is taken in the same transaction and applied if
        the wait accepts its method and suffix and its caller checks (``admit_early``, run on
        the kept call; see ``gateway.early.judge_early``) find no refusal: the execution is
        then ``running`` again. Otherwise it is dropped, and a refusal is in the outcome.
        ``None`` if the execution is not ``running``.
        """

    @abstractmethod
    async def resume(
        self, execution_id: int, seq: int, resumed_by: ResumedBy, payload: JSON, now: int
    ) -> bool:
        """End wait ``seq`` of a ``waiting`` execution; ``False`` if someone else did first."""

    @abstractmethod
    async def resume_by_call(
        self,
        execution_id: int,
        seq: int,
        method: str,
        suffix: str,
        payload: JSON,
        now: int,
        admit: Admission | None = None,
        *,
        nonce: str,
    ) -> CallOutcome:
        """A call of wait ``seq``'s resume URL: resume it if its webhook accepts the method
        and suffix, ``admit`` (the wait's caller checks) finds no refusal, and it is still
        waiting, all in one transaction. The execution must have the URL's ``nonce``
        (otherwise the outcome names no wait)."""

    @abstractmethod
    async def record_early_resume(
        self,
        execution_id: int,
        seq: int,
        method: str,
        suffix: str,
        payload: JSON,
        now: int,
        evidence: CallEvidence | None = None,
        *,
        nonce: str,
    ) -> bool:
        """Keep a resume for wait ``seq`` that is not parked yet, with what its caller checks
        need (``evidence``); ``False`` if the execution is not ``running`` at that wait, does
        not have the URL's ``nonce``, or one is already kept."""

    @abstractmethod
    async def claim_due(self, now: int, limit: int) -> list[TimedOut]:
        """Resume (by timeout) up to ``limit`` waits due at ``now``."""

    @abstractmethod
    async def count_by_status(self) -> dict[str, int]:
        """How many executions there are in each status."""

    @abstractmethod
    async def count_overdue(self, now: int) -> int:
        """How many waits are past their deadline and not yet resumed (the timer's backlog)."""

    @abstractmethod
    async def next_deadline(self) -> int | None:
        """The earliest ``waitTill`` of any waiting execution."""

    @abstractmethod
    async def finish(
        self, execution_id: int, status: Status, result: JSON, error: JSON, now: int
    ) -> bool:
        """Move a ``running`` execution to ``success`` or ``error``."""

    @abstractmethod
    async def stop(self, execution_id: int, now: int, wait_seq: int | None = None) -> bool:
        """Cancel a new, unknown, running or waiting execution; its wait ends for good.

        With ``wait_seq``, only an execution still ``waiting`` at that wait is canceled (a page
        signed for one wait never stops the execution once that wait has ended).
        """

    @abstractmethod
    async def set_custom_data(
        self, execution_id: int, values: dict[str, str], *, replace: bool
    ) -> dict[str, str] | None:
        """Add or replace keys (or replace all); the merged result, ``None`` if no execution.

        Raises ``InvalidInput`` if the merge would hold more than ten items.
        """

    @abstractmethod
    async def delete_execution(self, execution_id: int) -> bool:
        """Delete an execution that is not running, with everything that belongs to it."""

    @abstractmethod
    async def list_executions(self, query: ExecutionQuery) -> list[Execution]:
        """Executions matching ``query``, newest first, at most ``query.limit``."""

    @abstractmethod
    async def stop_many(self, which: StopFilter, now: int) -> int:
        """Cancel every execution matching ``which``; how many."""

    @abstractmethod
    async def put_held_answer(
        self, execution_id: int, seq: int, answer: StoredAnswer, now: int
    ) -> bool:
        """Keep the answer for the caller held at wait ``seq``; ``False`` if one is kept already."""

    @abstractmethod
    async def get_held_answer(self, execution_id: int, seq: int) -> StoredAnswer | None:
        """The answer kept for the caller held at wait ``seq``."""

    @abstractmethod
    async def put_idempotent_answer(
        self, key: str, target: str, execution_id: int, answer: StoredAnswer, now: int
    ) -> bool:
        """Keep the first answer to a resume call with this ``Idempotency-Key``."""

    @abstractmethod
    async def get_idempotent_answer(self, key: str, target: str) -> StoredAnswer | None:
        """The first answer to a resume call with this ``Idempotency-Key`` and target."""

    @abstractmethod
    async def prune(self, cutoff: int, keep: int, batch: int) -> int:
        """Delete up to ``batch`` finished executions that stopped before ``cutoff`` or are not
        among the newest ``keep`` finished ones (with everything that belongs to them).
        Waiting, new and running executions are never deleted. How many were deleted."""

    @abstractmethod
    async def record_resume_attempts(self, attempts: list[ResumeAttempt]) -> None:
        """Append to the audit trail (attempts for executions that no longer exist are dropped);
        each execution keeps its ``AUDIT_ROWS_KEPT`` most recent rows of each outcome."""

    @abstractmethod
    async def resume_attempts(self, execution_id: int) -> list[ResumeAttempt]:
        """An execution's audit trail, oldest first."""

    # callback outbox ------------------------------------------------------------------

    @abstractmethod
    async def claim_deliveries(self, now: int, limit: int, lease_ms: int) -> list[Delivery]:
        """Lease up to ``limit`` due pending deliveries for ``lease_ms``."""

    @abstractmethod
    async def next_delivery_due(self) -> int | None:
        """When the earliest pending delivery is due."""

    @abstractmethod
    async def record_attempt(
        self, attempt: DeliveryAttempt, *, next_attempt_at: int | None, now: int
    ) -> None:
        """Record an attempt: a 2xx delivers; otherwise retry at ``next_attempt_at``, or, if
        that is ``None``, the delivery is dead (and a running execution it announced crashes)."""

    @abstractmethod
    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        """One delivery."""

    @abstractmethod
    async def execution_deliveries(
        self, execution_id: int
    ) -> tuple[list[Delivery], list[DeliveryAttempt]]:
        """An execution's deliveries and their attempts."""

    @abstractmethod
    async def redeliver(self, delivery_id: str, now: int) -> Delivery | None:
        """Make a dead or delivered delivery pending again; ``None`` if it is pending or unknown."""

    # tags -----------------------------------------------------------------------------

    @abstractmethod
    async def create_tag(
        self, tag_id: str, name: str, now: int, project_id: str | None = None
    ) -> Tag | None:
        """A new tag of ``project_id`` (the creating key's project); ``None`` if the name is
        taken."""

    @abstractmethod
    async def get_tag(self, tag_id: str) -> Tag | None:
        """One tag."""

    @abstractmethod
    async def list_tags(self, limit: int, after_id: str | None) -> list[Tag]:
        """Tags ordered by id, after ``after_id``."""

    @abstractmethod
    async def rename_tag(
        self, tag_id: str, name: str, now: int, project_id: str | None = None
    ) -> Tag | None:
        """Rename a tag; ``None`` if it does not exist, the name is taken, or a ``project_id``
        is given and the tag is not ``tag_manageable`` by it."""

    @abstractmethod
    async def delete_tag(self, tag_id: str, project_id: str | None = None) -> Tag | None:
        """Delete a tag (it leaves every execution); the deleted tag. ``None`` if it does not
        exist, or a ``project_id`` is given and the tag is not ``tag_manageable`` by it."""

    @abstractmethod
    async def tag_manageable(self, tag_id: str, project_id: str | None) -> bool:
        """Whether a key of ``project_id`` may rename or delete the tag: any key without a
        project may; a project's key only if the tag is its project's and no execution of
        another project (or of none) carries it."""

    @abstractmethod
    async def execution_tags(self, execution_id: int) -> list[Tag]:
        """The tags of an execution, by name."""

    @abstractmethod
    async def set_execution_tags(self, execution_id: int, tag_ids: tuple[str, ...]) -> bool:
        """Replace an execution's tags; ``False`` (nothing changed) if any id is unknown."""

    # API keys -------------------------------------------------------------------------

    @abstractmethod
    async def create_api_key(
        self,
        label: str,
        key_hash: str,
        prefix: str,
        scopes: tuple[str, ...],
        project_id: str | None,
        now: int,
    ) -> ApiKey:
        """Store a new key by its hash."""

    @abstractmethod
    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        """The live (not revoked) key with this hash."""

    @abstractmethod
    async def list_api_keys(self) -> list[ApiKey]:
        """Every key, revoked ones included."""

    @abstractmethod
    async def revoke_api_key(self, key_id: int, now: int) -> bool:
        """Revoke a live key."""

    @abstractmethod
    async def create_first_api_key(
        self, label: str, key_hash: str, prefix: str, scopes: tuple[str, ...], now: int
    ) -> ApiKey | None:
        """Store this key only if there is no key at all yet; ``None`` otherwise.

        Replicas that start together on an empty database create one admin key between them.
        """
