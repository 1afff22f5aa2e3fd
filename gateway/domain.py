"""Domain types: executions, waits, and the rules that hold whatever stores them."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, get_args

from gateway.errors import InvalidInput
from gateway.event_model import EventCondition

if TYPE_CHECKING:  # the approval domain builds on this one
    from gateway.approvals import ApprovalSpec

JSON = Any
"""A value that came from, or goes to, JSON."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

FOREVER_MS = 32_503_680_000_000
"""3000-01-01T00:00:00.000Z: what n8n reports as ``waitTill`` for a wait with no limit."""


Ending = Literal["success", "error"]
"""How an engine may finish an execution (a ``Status`` name)."""


class Status(StrEnum):
    """An execution's status, with n8n's names."""

    NEW = "new"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCESS = "success"
    ERROR = "error"
    CRASHED = "crashed"
    CANCELED = "canceled"
    UNKNOWN = "unknown"

    @property
    def finished(self) -> bool:
        """True for statuses no transition leaves (other than retry, which makes a new one)."""
        return self in FINISHED


FINISHED = frozenset({Status.SUCCESS, Status.ERROR, Status.CRASHED, Status.CANCELED})
RETRYABLE = frozenset({Status.ERROR, Status.CRASHED, Status.CANCELED})
STOPPABLE = frozenset({Status.NEW, Status.UNKNOWN, Status.RUNNING, Status.WAITING})

Mode = Literal[
    "cli",
    "error",
    "integrated",
    "internal",
    "manual",
    "retry",
    "trigger",
    "webhook",
    "evaluation",
    "chat",
]
"""How an execution was started (n8n's names)."""
MODES: tuple[Mode, ...] = get_args(Mode)

HttpMethod = Literal["DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"]
HTTP_METHODS: tuple[HttpMethod, ...] = get_args(HttpMethod)


class ResumedBy(StrEnum):
    """What ended a wait."""

    WEBHOOK = "webhook"
    TIMEOUT = "timeout"
    API = "api"
    FORM = "form"
    EVENT = "event"
    APPROVAL = "approval"


class ResponseMode(StrEnum):
    """When the caller of a resume URL is answered (n8n's names)."""

    ON_RECEIVED = "onReceived"
    LAST_NODE = "lastNode"
    RESPONSE_NODE = "responseNode"


LastNodeData = Literal["firstEntryJson", "allEntries", "noData"]
"""What a lastNode caller gets of the result (n8n's ``responseData`` choices)."""
LAST_NODE_DATA: tuple[LastNodeData, ...] = get_args(LastNodeData)

AuthKind = Literal["none", "basic", "header", "hmac"]
HmacAlgorithm = Literal["sha1", "sha256", "sha512"]
HmacStyle = Literal["plain", "stripe"]


@dataclass(frozen=True)
class CallerAuth:
    """Who may call a wait's resume URL, beyond holding its signature (n8n's webhook auth).

    ``kind`` is ``none``, ``basic`` (``username``/``secret``), ``header`` (``header`` must equal
    ``secret``) or ``hmac`` (``header`` carries an HMAC of the raw body made with ``secret``:
    ``style`` ``plain`` is ``[prefix]hex`` as GitHub sends it, ``stripe`` is
    ``t=<unix>,v1=<hex>`` over ``"<t>.<body>"`` with ``tolerance_seconds``).
    """

    kind: AuthKind = "none"
    username: str = ""
    secret: str = ""
    header: str = ""
    algorithm: HmacAlgorithm = "sha256"
    style: HmacStyle = "plain"
    prefix: str = ""
    tolerance_seconds: int = 300
    allowed_ips: tuple[str, ...] = ()
    ignore_bots: bool = False

    @property
    def checks_caller(self) -> bool:
        """Whether a call must show anything beyond the URL's signature."""
        return self.kind != "none" or bool(self.allowed_ips) or self.ignore_bots


class TimedOut(NamedTuple):
    """A wait the timer ended (resumed, or for an approval whose ``onTimeout`` cancels, its
    execution canceled), and how late (ms after its deadline)."""

    execution_id: int
    seq: int
    late_ms: int


@dataclass(frozen=True)
class Refusal:
    """Why a call was refused before it could use up the wait."""

    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)


Admission = Callable[["WebhookSpec"], Refusal | None]
"""The caller checks of one call, run against the wait it names (inside its transaction)."""


FieldType = Literal["text", "textarea", "number", "email", "date", "dropdown", "checkbox", "file"]
FIELD_TYPES: tuple[FieldType, ...] = get_args(FieldType)


@dataclass(frozen=True)
class FormField:
    """One field of a form wait."""

    name: str
    label: str
    type: FieldType = "text"
    required: bool = False
    options: tuple[str, ...] = ()
    max_bytes: int = 1024 * 1024


@dataclass(frozen=True)
class FormSpec:
    """A form a person fills in to resume the wait (n8n's "On form submitted"): its fields,
    or a JSON Schema (``gateway.form_schema``) that renders the form and validates its data."""

    title: str
    fields: tuple[FormField, ...]
    description: str = ""
    schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class WebhookSpec:
    """How a wait may be resumed over HTTP and what the caller is answered."""

    methods: tuple[HttpMethod, ...] = ("GET",)
    suffix: str = ""
    response_code: int = 200
    response_data: JSON = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_mode: ResponseMode = ResponseMode.ON_RECEIVED
    auth: CallerAuth = field(default_factory=CallerAuth)
    approval: ApprovalSpec | None = None
    form: FormSpec | None = None

    @property
    def holds_caller(self) -> bool:
        """The caller's request stays open until the engine finishes or responds."""
        return self.response_mode is not ResponseMode.ON_RECEIVED


def webhook_accepts(webhook: WebhookSpec | None, method: str, suffix: str) -> bool:
    """Whether a call with this method and suffix may resume a wait with this webhook."""
    return webhook is not None and method in webhook.methods and suffix == webhook.suffix


@dataclass(frozen=True)
class CallOutcome:
    """What a call of a resume URL did to the wait it names."""

    wait: Wait | None
    """The wait as it was before the call; ``None`` if no such wait is parked."""
    accepted: bool = False
    """The wait's webhook takes the call's method and suffix."""
    resumed: bool = False
    """This call resumed the wait (every other call loses)."""
    refusal: Refusal | None = None
    """The wait's caller checks refused the call; the wait is untouched."""
    execution: Execution | None = None
    """When no wait took the call (none parked with the URL's nonce, or one that ended): the
    execution as the call's transaction saw it; ``None`` if it does not exist."""


AnswerKind = Literal["answer", "early", "parked", "finished", "respond", "confirm"]
"""What made a stored answer: the wait's own answer, the 202 to an early call, a held caller's
answer (parked again, finished, or an explicit respond), or the gateway's confirmation page."""


@dataclass(frozen=True)
class StoredAnswer:
    """An HTTP answer kept in the store: held for a resume caller, or replayed to a retry."""

    status_code: int
    headers: dict[str, str]
    body: bytes
    kind: AnswerKind = "answer"


def reported_wait_till(
    wait_till: int | None, webhook: WebhookSpec | None, *, events: bool = False
) -> int | None:
    """A wait's deadline as n8n reports it: a webhook (or event) wait with no limit is
    3000-01-01."""
    if wait_till is None and (webhook is not None or events):
        return FOREVER_MS
    return wait_till


@dataclass(frozen=True)
class Wait:
    """One park of an execution: its deadline, how it can be resumed and how it ended."""

    execution_id: int
    seq: int
    parked_at: int
    wait_till: int | None
    webhook: WebhookSpec | None
    resumed_at: int | None = None
    resumed_by: ResumedBy | None = None
    payload: JSON = None
    events: tuple[EventCondition, ...] = ()
    """The events it may end on (customData references resolved)."""

    @property
    def reported_wait_till(self) -> int | None:
        """``waitTill`` as n8n reports it: a webhook wait with no limit is 3000-01-01."""
        return reported_wait_till(self.wait_till, self.webhook, events=bool(self.events))


@dataclass(frozen=True)
class Execution:
    """An execution as the store holds it."""

    id: int
    workflow_id: str
    mode: Mode
    status: Status
    started_at: int
    wait_seq: int
    wait_suffix: str | None = None
    stopped_at: int | None = None
    wait_till: int | None = None
    retry_of: int | None = None
    retry_success_id: int | None = None
    project_id: str | None = None
    custom_data: dict[str, str] = field(default_factory=dict)
    data: JSON = None
    result: JSON = None
    error: JSON = None
    callback_url: str | None = None
    waits: tuple[Wait, ...] = ()
    nonce: str = ""
    """Random per execution and bound into its signed URLs; empty for executions created
    before nonces existed (their URLs keep the old token shape)."""

    @property
    def current_wait(self) -> Wait | None:
        """The wait the execution is parked at, if it is waiting."""
        if self.status is not Status.WAITING:
            return None
        return next((w for w in self.waits if w.seq == self.wait_seq), None)

    def retry(self) -> NewExecution:
        """A new execution that retries this one (``mode: retry``, ``retryOf``)."""
        return NewExecution(
            workflow_id=self.workflow_id,
            mode="retry",
            project_id=self.project_id,
            custom_data=self.custom_data,
            data=self.data,
            retry_of=self.id,
            callback_url=self.callback_url,
        )


@dataclass(frozen=True)
class Unchanged:
    """A transition whose condition did not hold, so nothing was written: the execution as
    the refusing transaction saw it (the store's verbs read its waits too), ``None`` if it
    does not exist (or, from a use case, the caller's project may not see it).

    It is falsy, so ``if outcome:`` reads "if the transition happened"."""

    execution: Execution | None

    def __bool__(self) -> Literal[False]:
        return False


@dataclass(frozen=True)
class Retried:
    """The retry of an execution: made by this call, or an earlier one under way or done."""

    execution: Execution
    created: bool


@dataclass(frozen=True)
class NewExecution:
    """What an engine gives to create an execution."""

    workflow_id: str
    mode: Mode = "integrated"
    project_id: str | None = None
    custom_data: dict[str, str] = field(default_factory=dict)
    data: JSON = None
    retry_of: int | None = None
    callback_url: str | None = None


# customData: the documented n8n limits, enforced instead of silently truncated.
CUSTOM_DATA_MAX_ITEMS = 10
CUSTOM_DATA_MAX_KEY = 50
CUSTOM_DATA_MAX_VALUE = 255
TAGS_MAX_ITEMS = 50
"""The most tags one execution carries, or one list filter names."""
_CUSTOM_DATA_KEY = re.compile(r"[A-Za-z0-9_]+")


def check_text(name: str, value: str) -> str:
    """Text the databases can hold: no NUL character (PostgreSQL refuses it)."""
    if "\x00" in value:
        raise InvalidInput(f"{name} must not contain the NUL character")
    return value


def check_mode(text: str) -> Mode:
    """The mode ``text`` names; the error lists them."""
    for mode in MODES:
        if text == mode:
            return mode
    raise InvalidInput(f"mode must be one of {', '.join(MODES)}; got {text!r}")


def check_custom_data(values: dict[str, Any]) -> dict[str, str]:
    """Check keys and values against n8n's documented rules; the error names key and rule."""
    for key, value in values.items():
        if not _CUSTOM_DATA_KEY.fullmatch(key):
            raise InvalidInput(
                f"customData key {key!r} may only contain the characters A-Z, a-z, 0-9 and _"
            )
        if len(key) > CUSTOM_DATA_MAX_KEY:
            raise InvalidInput(
                f"customData key {key!r} is longer than {CUSTOM_DATA_MAX_KEY} characters"
            )
        if not isinstance(value, str):
            raise InvalidInput(f"customData value of {key!r} must be a string")
        check_text(f"customData value of {key!r}", value)
        if len(value) > CUSTOM_DATA_MAX_VALUE:
            raise InvalidInput(
                f"customData value of {key!r} is longer than {CUSTOM_DATA_MAX_VALUE} characters"
            )
    check_custom_data_count(values)
    return dict(values)


def check_custom_data_count(values: dict[str, Any]) -> None:
    """At most ten items per execution."""
    if len(values) > CUSTOM_DATA_MAX_ITEMS:
        raise InvalidInput(
            f"customData may hold at most {CUSTOM_DATA_MAX_ITEMS} items, got {len(values)}"
        )


@functools.lru_cache(maxsize=4096)  # a page or a view formats the same instants again
def format_instant(ms: int | None) -> str | None:
    """Milliseconds since the epoch as n8n writes instants: ``2026-01-01T00:00:00.000Z``."""
    if ms is None:
        return None
    moment = _EPOCH + timedelta(milliseconds=ms)  # isoformat: four-digit years, even before 1000
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_instant(text: str, name: str) -> int:
    """An RFC 3339 instant (offset required) as milliseconds since the epoch."""
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise InvalidInput(f"{name} must be an RFC 3339 date-time, got {text!r}") from None
    if moment.tzinfo is None:
        raise InvalidInput(f"{name} must carry a UTC offset or Z, got {text!r}")
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"{name} must lie within the years 1 to 9999 in UTC") from None
    return (moment - _EPOCH) // timedelta(milliseconds=1)


@dataclass(frozen=True)
class ApiKey:
    """A stored API key (only its hash is kept)."""

    id: int
    label: str
    prefix: str
    scopes: tuple[str, ...]
    project_id: str | None
    created_at: int
    revoked_at: int | None = None


@dataclass(frozen=True)
class ExecutionQuery:
    """Filters and page for listing executions (newest first)."""

    limit: int = 100
    before_id: int | None = None
    statuses: tuple[Status, ...] = ()
    include_running: bool = False
    workflow_id: str | None = None
    workflow_prefix: str | None = None
    """Workflow ids that start with this text (the dashboard's filter)."""
    project_id: str | None = None
    started_after: int | None = None
    started_before: int | None = None
    wait_till_after: int | None = None
    wait_till_before: int | None = None
    custom_data: tuple[tuple[str, str], ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Tag:
    """A label that executions can carry (n8n's tag shape)."""

    id: str
    name: str
    created_at: int
    updated_at: int
    project_id: str | None = None
    """The project of the key that created it; ``None``: made by a key without a project."""


@dataclass(frozen=True)
class StopFilter:
    """Which executions ``POST /executions/stop`` cancels."""

    statuses: tuple[Status, ...]
    workflow_id: str | None = None
    workflow_prefix: str | None = None
    """Workflow ids that start with this text (the dashboard's filter)."""
    project_id: str | None = None
    started_after: int | None = None
    started_before: int | None = None


AttemptOutcome = Literal["accepted", "refused", "shown"]
"""How a call of a signed URL ended, as the audit trail records it (``shown``: a page that asks
the person to confirm, which uses up nothing)."""
AuditPair = tuple[int, AttemptOutcome]
"""An execution and an outcome: the audit trail keeps a bounded number of rows of each."""


@dataclass(frozen=True)
class ResumeAttempt:
    """One call of a resume URL, accepted or refused, for the audit trail."""

    execution_id: int
    seq: int
    attempted_at: int
    method: str
    status_code: int
    outcome: AttemptOutcome
    reason: str
    ip: str | None = None
    user_agent: str | None = None
