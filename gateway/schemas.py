"""Request bodies of the engine API, decoded and validated with msgspec."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from gateway.answers import StatusCode, check_bodiless, check_headers
from gateway.approvals import (
    APPROVER_ID,
    DEFAULT_OPTIONS,
    MAX_COMMENT,
    ApprovalSpec,
    Approver,
    CommentRule,
    Escalation,
    OnReject,
    OnTimeout,
    RejectWhen,
    Via,
)
from gateway.channels import CHANNEL_NAME, MAX_CHANNELS_PER_APPROVAL
from gateway.domain import (
    FIELD_TYPES,
    HTTP_METHODS,
    LAST_NODE_DATA,
    AuthKind,
    CallerAuth,
    Ending,
    FormField,
    FormSpec,
    HmacAlgorithm,
    HmacStyle,
    HttpMethod,
    NewExecution,
    ResponseMode,
    WebhookSpec,
    check_custom_data,
    check_mode,
    check_text,
    parse_instant,
)
from gateway.durations import parse_duration
from gateway.errors import InvalidInput
from gateway.event_model import EventCondition
from gateway.event_schemas import EventConditionBody, event_conditions
from gateway.form_schema import form_spec
from gateway.origins import CallbackOrigins, OriginRefused

_SUFFIX = re.compile(r"[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*")
MAX_SUFFIX = 200
MAX_WORKFLOW_ID = 255
MAX_TITLE = 200
MAX_DESCRIPTION = 4000
MAX_FIELDS = 50
MAX_FILE_BYTES = 50 * 1024 * 1024
BROWSERLESS: tuple[AuthKind, ...] = ("header", "hmac")
"""Caller authentication a browser opening an approval or form page cannot send."""
_FIELD_NAME = re.compile(r"[A-Za-z0-9_]{1,50}")
Title = Annotated[str, Meta(min_length=1, max_length=MAX_TITLE)]
Description = Annotated[str, Meta(max_length=MAX_DESCRIPTION)]


class _Body(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """Base of every request body: unknown fields are an error, names are camelCase."""


class CreateExecution(_Body):
    """``POST /api/v1/executions``."""

    workflow_id: str
    mode: str = "integrated"
    custom_data: dict[str, Any] = {}
    data: Any = None
    callback_url: str | None = None
    wait: ParkBody | None = None
    """The first wait, parked in the same write (the body of ``POST /executions/{id}/wait``)."""

    def to_new(
        self,
        project_id: str | None,
        default_callback_url: str | None = None,
        callback_origins: CallbackOrigins | None = None,
    ) -> NewExecution:
        """Validated, as the store takes it; the callback URL must have an allowed origin."""
        if not self.workflow_id or len(self.workflow_id) > MAX_WORKFLOW_ID:
            raise InvalidInput(f"workflowId must be 1 to {MAX_WORKFLOW_ID} characters")
        check_text("workflowId", self.workflow_id)
        return NewExecution(
            workflow_id=self.workflow_id,
            mode=check_mode(self.mode),
            project_id=project_id,
            custom_data=check_custom_data(self.custom_data),
            data=self.data,
            callback_url=_callback_url(
                self.callback_url, callback_origins or CallbackOrigins(frozenset())
            )
            or default_callback_url,
        )


def _callback_url(url: str | None, origins: CallbackOrigins) -> str | None:
    """Refuse callback targets outside the allowed origins (scheme, host and port), so API
    callers cannot make the gateway POST into arbitrary (internal) addresses or ports."""
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidInput(f"callbackUrl must be an http(s) URL, got {url!r}")
    if parts.username or parts.password:
        raise InvalidInput("callbackUrl must not carry credentials")
    try:
        return origins.check(url)
    except OriginRefused as exc:
        raise InvalidInput(f"callbackUrl: {exc}") from None


class AuthenticationBody(_Body):
    """How the caller of a resume URL proves who it is (besides the URL's signature)."""

    type: AuthKind = "none"
    username: str = ""
    password: str = ""
    header_name: str = ""
    header_value: str = ""
    secret: str = ""
    algorithm: HmacAlgorithm = "sha256"
    style: HmacStyle = "plain"
    prefix: str = ""
    tolerance_seconds: Annotated[int, Meta(ge=1, le=86_400)] = 300

    def __post_init__(self) -> None:
        """Each type needs its fields."""
        for name in _NEEDS.get(self.type, ()):
            if not getattr(self, name):
                camel = name.split("_")[0] + "".join(p.title() for p in name.split("_")[1:])
                raise InvalidInput(f"webhook.authentication.{camel} is required for {self.type}")

    def to_auth(self, allowed_ips: tuple[str, ...], ignore_bots: bool) -> CallerAuth:
        """As the store keeps it."""
        return CallerAuth(
            kind=self.type,
            username=self.username,
            secret=self.password if self.type == "basic" else self.header_value or self.secret,
            header=self.header_name,
            algorithm=self.algorithm,
            style=self.style,
            prefix=self.prefix,
            tolerance_seconds=self.tolerance_seconds,
            allowed_ips=allowed_ips,
            ignore_bots=ignore_bots,
        )


_NEEDS: dict[AuthKind, tuple[str, ...]] = {
    "basic": ("username", "password"),
    "header": ("header_name", "header_value"),
    "hmac": ("header_name", "secret"),
}
"""The fields each type of caller authentication must fill."""


def _networks(values: list[str]) -> tuple[str, ...]:
    try:
        return tuple(str(ipaddress.ip_network(v, strict=False)) for v in values)
    except ValueError as exc:
        raise InvalidInput(f"webhook.allowedIps: {exc}") from None


class WebhookBody(_Body):
    """How the wait can be resumed over HTTP."""

    http_method: str | list[str] = "GET"
    suffix: str = ""
    response_code: StatusCode = 200
    response_data: Any = None
    response_headers: dict[str, str] = {}
    response_mode: ResponseMode = ResponseMode.ON_RECEIVED
    authentication: AuthenticationBody | None = None
    allowed_ips: list[str] = []
    ignore_bots: bool = False

    def to_spec(self) -> WebhookSpec:
        """Validated, as the store takes it."""
        methods = _methods(self.http_method)
        suffix = self.suffix.strip("/")
        dot_segment = any(part in {".", ".."} for part in suffix.split("/"))
        if suffix and (len(suffix) > MAX_SUFFIX or not _SUFFIX.fullmatch(suffix) or dot_segment):
            raise InvalidInput(
                "webhook.suffix may only hold A-Z a-z 0-9 . _ ~ - and / between segments "
                f"(no . or .. segments), at most {MAX_SUFFIX} characters"
            )
        check_bodiless("webhook.responseCode", self.response_code, self.response_data is not None)
        headers = check_headers("webhook.responseHeaders", self.response_headers)
        mode = self.response_mode
        if mode is ResponseMode.LAST_NODE and self.response_data not in (None, *LAST_NODE_DATA):
            raise InvalidInput(
                f"webhook.responseData for lastNode must be one of {', '.join(LAST_NODE_DATA)}"
            )
        auth = (self.authentication or AuthenticationBody()).to_auth(
            _networks(self.allowed_ips), self.ignore_bots
        )
        return WebhookSpec(
            auth=auth,
            response_mode=mode,
            methods=methods,
            suffix=suffix,
            response_code=self.response_code,
            response_data=self.response_data,
            response_headers=headers,
        )


def _methods(given: str | list[str]) -> tuple[HttpMethod, ...]:
    """``webhook.httpMethod``: one method or several, any case, each one we serve."""
    names = dict.fromkeys(m.upper() for m in ([given] if isinstance(given, str) else given))
    if not names:
        raise InvalidInput("webhook.httpMethod must name at least one method")
    methods = tuple(m for name in names for m in HTTP_METHODS if m == name)
    if len(methods) < len(names):
        bad = next(name for name in names if name not in HTTP_METHODS)
        raise InvalidInput(f"webhook.httpMethod {bad!r} is not one of {', '.join(HTTP_METHODS)}")
    return methods


ChannelName = Annotated[str, Meta(pattern=f"^{CHANNEL_NAME.pattern}$")]
ApproverId = Annotated[str, Meta(pattern=f"^{APPROVER_ID.pattern}$")]
MAX_APPROVERS = 50
MAX_OPTIONS = 20
MAX_REMINDERS = 10
Option = Annotated[str, Meta(min_length=1, max_length=64)]


class ApproverBody(_Body):
    """A person asked to decide."""

    id: ApproverId
    email: Annotated[str, Meta(max_length=254)] = ""
    name: Annotated[str, Meta(max_length=MAX_TITLE)] = ""
    slack: Annotated[str, Meta(max_length=64)] = ""

    def to_approver(self) -> Approver:
        """As the store keeps it."""
        return Approver(self.id, self.email, self.name, self.slack)


_NEED_APPROVERS: dict[str, Any] = {
    "required": 1,
    "reject_when": "any",
    "options": list(DEFAULT_OPTIONS),
    "multiple": False,
    "branch": {},
    "comment": "optional",
    "requester": None,
    "channels": [],
    "reminders": [],
    "escalation": None,
}
"""Fields that mean something only with named approvers, and their defaults."""


class EscalationBody(_Body):
    """Who else is asked when the approval is still open ``after`` (an ISO 8601 duration)."""

    after: Annotated[str, Meta(max_length=32)]
    approvers: Annotated[list[ApproverBody], Meta(min_length=1, max_length=MAX_APPROVERS)]


class ApprovalBody(_Body):
    """A page people answer: Approve or Reject (or pick options), by anyone holding the link,
    or by named approvers, each through a personal link (see ``gateway.approvals``)."""

    title: Title
    description: Description = ""
    on_reject: OnReject = "resume"
    approvers: Annotated[list[ApproverBody], Meta(max_length=MAX_APPROVERS)] = []
    required: Annotated[int, Meta(ge=1, le=MAX_APPROVERS)] = 1
    reject_when: RejectWhen = "any"
    options: Annotated[list[Option], Meta(min_length=1, max_length=MAX_OPTIONS)] = msgspec.field(
        default_factory=lambda: list(DEFAULT_OPTIONS)
    )
    multiple: bool = False
    branch: dict[str, Annotated[str, Meta(max_length=MAX_TITLE)]] = {}
    comment: CommentRule = "optional"
    requester: ApproverId | None = None
    on_timeout: OnTimeout | None = None
    channels: Annotated[list[ChannelName], Meta(max_length=MAX_CHANNELS_PER_APPROVAL)] = []
    reminders: Annotated[
        list[Annotated[str, Meta(max_length=32)]], Meta(max_length=MAX_REMINDERS)
    ] = []
    escalation: EscalationBody | None = None

    def __post_init__(self) -> None:
        """The rules between fields; each error names its rule."""
        if len(set(self.channels)) < len(self.channels):
            raise InvalidInput("approval.channels must be distinct")
        ids = [a.id for a in self.approvers]
        escalated = [] if self.escalation is None else [a.id for a in self.escalation.approvers]
        if len(set(ids + escalated)) < len(ids + escalated):
            twice = next(i for i in ids + escalated if (ids + escalated).count(i) > 1)
            raise InvalidInput(f"approval.approvers must have distinct ids; {twice!r} is repeated")
        if not ids:
            changed = [n for n, v in _NEED_APPROVERS.items() if getattr(self, n) != v]
            if changed:
                raise InvalidInput(f"approval.{_camel(changed[0])} needs approval.approvers")
            return
        eligible = len([i for i in ids if i != self.requester])
        if self.required > eligible:
            raise InvalidInput(
                f"approval.required ({self.required}) is more than the approvers who may "
                f"decide ({eligible})"
            )
        if len(set(self.options)) < len(self.options):
            raise InvalidInput("approval.options must be distinct")
        if self.reminders and not self.channels:
            raise InvalidInput("approval.reminders needs approval.channels to remind through")
        if self.requester in escalated:
            raise InvalidInput("approval.escalation.approvers may not hold the requester")
        if all(o == "reject" for o in self.options):
            raise InvalidInput("approval.options must hold an option that approves")
        unknown = [o for o in self.branch if o not in self.options]
        if unknown:
            raise InvalidInput(f"approval.branch names {unknown[0]!r}, not one of the options")

    def to_spec(self) -> ApprovalSpec:
        """As the store keeps it; with approvers, the deadline resumes without a decision
        unless ``onTimeout`` says otherwise."""
        on_timeout = self.on_timeout
        if on_timeout is None and self.approvers:
            on_timeout = "resume"
        return ApprovalSpec(
            self.title,
            self.description,
            self.on_reject,
            approvers=tuple(a.to_approver() for a in self.approvers),
            required=self.required,
            reject_when=self.reject_when,
            options=tuple(self.options),
            multiple=self.multiple,
            branch=dict(self.branch),
            comment=self.comment,
            requester=self.requester,
            on_timeout=on_timeout,
            channels=tuple(self.channels),
            reminders=tuple(
                parse_duration(r, f"approval.reminders[{i}]") for i, r in enumerate(self.reminders)
            ),
            escalation=None
            if self.escalation is None
            else Escalation(
                parse_duration(self.escalation.after, "approval.escalation.after"),
                tuple(a.to_approver() for a in self.escalation.approvers),
            ),
        )


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


class DecisionBody(_Body):
    """``POST /api/v1/executions/{id}/decisions``: a decision made elsewhere."""

    approver: ApproverId
    decision: Annotated[str, Meta(max_length=16)]
    options: Annotated[list[Option], Meta(max_length=MAX_OPTIONS)] = []
    comment: Annotated[str, Meta(max_length=MAX_COMMENT)] = ""
    via: Via = "api"


class FormFieldBody(_Body):
    """One field of a form."""

    label: Title
    type: str = "text"
    name: str = ""
    required: bool = False
    options: list[str] = []
    max_bytes: Annotated[int, Meta(ge=1, le=MAX_FILE_BYTES)] = 1024 * 1024

    def to_field(self, index: int) -> FormField:
        """Validated; the name defaults to field1, field2, …"""
        where = f"form.fields[{index}]"
        kind = next((t for t in FIELD_TYPES if t == self.type), None)
        if kind is None:
            raise InvalidInput(f"{where}.type must be one of {', '.join(FIELD_TYPES)}")
        name = self.name or f"field{index + 1}"
        if not _FIELD_NAME.fullmatch(name):
            raise InvalidInput(f"{where}.name may only hold A-Z a-z 0-9 _ (at most 50)")
        if kind == "dropdown" and not self.options:
            raise InvalidInput(f"{where}.options must list the choices of a dropdown")
        return FormField(name, self.label, kind, self.required, tuple(self.options), self.max_bytes)


class FormBody(_Body):
    """A form a person fills in to resume the wait: its ``fields``, or a JSON ``schema`` that
    renders the form and validates what is submitted (``gateway.form_schema``)."""

    title: Title | None = None
    fields: list[FormFieldBody] | None = None
    schema: dict[str, Any] | None = None
    description: Description = ""

    def to_spec(self) -> FormSpec:
        """Validated: 1 to 50 fields with distinct names and a title, or a schema a form can
        take (title and description default to the schema's)."""
        if (self.fields is None) == (self.schema is None):
            raise InvalidInput("form takes either fields or schema (exactly one of them)")
        if self.schema is not None:
            return form_spec(self.schema, self.title, self.description)
        if self.title is None:
            raise InvalidInput("form.title is required with fields")
        if self.fields is None or not 1 <= len(self.fields) <= MAX_FIELDS:
            raise InvalidInput(f"form.fields must hold 1 to {MAX_FIELDS} fields")
        fields = tuple(f.to_field(i) for i, f in enumerate(self.fields))
        names = [f.name for f in fields]
        if len(set(names)) != len(names):
            raise InvalidInput("form.fields must have distinct names")
        return FormSpec(self.title, fields, self.description)


class ParkBody(_Body):
    """``POST /api/v1/executions/{id}/wait``."""

    wait_till: str | None = None
    webhook: WebhookBody | None = None
    approval: ApprovalBody | None = None
    form: FormBody | None = None
    events: list[EventConditionBody] | None = None

    def event_conditions(self) -> tuple[EventCondition, ...]:
        """The events the wait may end on (at most 10, each with at most 10 match keys)."""
        return event_conditions(self.events)

    def validated(self) -> tuple[int | None, WebhookSpec | None]:
        """The deadline in ms and the webhook spec; at least one of them.

        An approval wait is a webhook wait (POST unless the webhook says otherwise) whose
        signed ``approvalUrl`` shows a page with Approve and Reject.
        """
        given = (self.wait_till, self.webhook, self.approval, self.form, self.events or None)
        if all(x is None for x in given):
            raise InvalidInput(
                "a wait needs waitTill, webhook, approval, form, events, or a combination"
            )
        wait_till = None if self.wait_till is None else parse_instant(self.wait_till, "waitTill")
        spec = None
        if self.webhook is not None:
            spec = self.webhook.to_spec()
        elif self.approval is not None or self.form is not None:
            spec = WebhookBody(http_method="POST").to_spec()
        if self.approval is not None and spec is not None:
            spec = dataclasses.replace(spec, approval=self.approval.to_spec())
        if self.form is not None and spec is not None:
            spec = dataclasses.replace(spec, form=self.form.to_spec())
        if spec is not None and (spec.approval or spec.form) and spec.auth.kind in BROWSERLESS:
            raise InvalidInput(
                f"webhook.authentication.type {spec.auth.kind} cannot be used with approval or "
                "form: a browser opening the page cannot send that header; use basic, "
                "allowedIps or none"
            )
        return wait_till, spec


class FinishBody(_Body):
    """``POST /api/v1/executions/{id}/finish``."""

    status: Ending
    data: Any = None
    error: Any = None


class ResumeBody(_Body):
    """``POST /api/v1/executions/{id}/resume``."""

    data: Any = None


class RespondBody(_Body):
    """``POST /api/v1/executions/{id}/respond``: the answer for a responseNode caller."""

    status_code: StatusCode = 200
    headers: dict[str, str] = {}
    body: Any = None

    def validated(self) -> RespondBody:
        """The same body, with status code and headers checked."""
        check_bodiless("statusCode", self.status_code, self.body is not None)
        check_headers("headers", self.headers)
        return self
