"""Turns database rows into domain records and domain values into column values."""

from __future__ import annotations

import base64
import functools
import secrets
from collections.abc import Mapping
from typing import Any

import msgspec

from gateway.approvals import Decision, spec_from_raw
from gateway.domain import (
    JSON,
    ApiKey,
    AuditPair,
    CallerAuth,
    Execution,
    FormField,
    FormSpec,
    NewExecution,
    ResponseMode,
    ResumeAttempt,
    ResumedBy,
    Status,
    StopFilter,
    StoredAnswer,
    Tag,
    Wait,
    WebhookSpec,
    reported_wait_till,
)
from gateway.early import CallEvidence, EarlyResume
from gateway.outbox_model import Delivery, DeliveryAttempt, DeliveryStatus, Event
from gateway.stored import AUDIT_ROWS_KEPT, clip_attempt
from gateway.trace_context import stored as traces_stored
from persistence.event_rows import load_conditions

_encoder = msgspec.json.Encoder()


def dump(value: JSON) -> str | None:
    """A JSON column value; ``None`` stays SQL NULL."""
    return None if value is None else _encoder.encode(value).decode()


def load(text: str | bytes | None) -> JSON:
    """The value of a JSON column."""
    return None if text is None else msgspec.json.decode(text)


def dump_webhook(spec: WebhookSpec | None) -> str | None:
    """A wait's webhook column."""
    if spec is None:
        return None
    return dump(
        {
            "methods": list(spec.methods),
            "suffix": spec.suffix,
            "responseCode": spec.response_code,
            "responseData": spec.response_data,
            "responseHeaders": spec.response_headers,
            "responseMode": spec.response_mode.value,
            "auth": msgspec.to_builtins(spec.auth),
            "approval": None if spec.approval is None else msgspec.to_builtins(spec.approval),
            "form": None if spec.form is None else msgspec.to_builtins(spec.form),
        }
    )


SPECS_KEPT = 512
"""Webhook columns whose ``WebhookSpec`` is remembered: waits of one workflow step share one
text, and the spec is read on every call of a resume URL and every park."""


@functools.lru_cache(maxsize=SPECS_KEPT)
def load_webhook(text: str | None) -> WebhookSpec | None:
    """Inverse of ``dump_webhook``. The same text gives the same (shared) spec: like every
    record read from the store, it is never changed in place."""
    raw = load(text)
    if raw is None:
        return None
    return WebhookSpec(
        methods=tuple(raw["methods"]),
        suffix=raw["suffix"],
        response_code=raw["responseCode"],
        response_data=raw["responseData"],
        response_headers=raw["responseHeaders"],
        response_mode=ResponseMode(raw.get("responseMode", ResponseMode.ON_RECEIVED.value)),
        auth=CallerAuth(**{**raw["auth"], "allowed_ips": tuple(raw["auth"]["allowed_ips"])})
        if raw.get("auth")
        else CallerAuth(),
        approval=spec_from_raw(raw["approval"]) if raw.get("approval") else None,
        form=_form(raw["form"]) if raw.get("form") else None,
    )


def _form(raw: Mapping[str, Any]) -> FormSpec:
    fields = tuple(FormField(**{**f, "options": tuple(f["options"])}) for f in raw["fields"])
    return FormSpec(raw["title"], fields, raw["description"], raw.get("schema"))


def wait_from_row(row: Mapping[str, Any]) -> Wait:
    """A ``waits`` row as a ``Wait``."""
    return Wait(
        execution_id=row["execution_id"],
        seq=row["seq"],
        parked_at=row["parked_at"],
        wait_till=row["wait_till"],
        webhook=load_webhook(row["webhook"]),
        resumed_at=row["resumed_at"],
        resumed_by=None if row["resumed_by"] is None else ResumedBy(row["resumed_by"]),
        payload=load(row["payload"]),
        events=load_conditions(row["events"]),
    )


def execution_from_row(row: Mapping[str, Any], waits: tuple[Wait, ...] = ()) -> Execution:
    """An ``executions`` row as an ``Execution``."""
    return Execution(
        id=row["id"],
        workflow_id=row["workflow_id"],
        project_id=row["project_id"],
        mode=row["mode"],
        status=Status(row["status"]),
        started_at=row["started_at"],
        stopped_at=row["stopped_at"],
        wait_till=row["wait_till"],
        wait_seq=row["wait_seq"],
        wait_suffix=row["wait_suffix"],
        retry_of=row["retry_of"],
        retry_success_id=row["retry_success_id"],
        custom_data=load(row["custom_data"]) or {},
        data=load(row["data"]),
        result=load(row["result"]),
        error=load(row["error"]),
        callback_url=row["callback_url"],
        waits=waits,
        nonce=row["nonce"],
    )


def api_key_from_row(row: Mapping[str, Any]) -> ApiKey:
    """An ``api_keys`` row as an ``ApiKey``."""
    return ApiKey(
        id=row["id"],
        label=row["label"],
        prefix=row["prefix"],
        scopes=tuple(load(row["scopes"])),
        project_id=row["project_id"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


def tag_from_row(row: Mapping[str, Any]) -> Tag:
    """A ``tags`` row as a ``Tag``."""
    return Tag(
        id=row["id"],
        name=row["name"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        project_id=row["project_id"],
    )


def delivery_from_row(row: Mapping[str, Any]) -> Delivery:
    """A ``deliveries`` row as a ``Delivery``."""
    return Delivery(
        id=row["id"],
        execution_id=row["execution_id"],
        event=Event(row["event"]),
        target_url=row["target_url"],
        payload=load(row["payload"]),
        status=DeliveryStatus(row["status"]),
        attempts=row["attempts"],
        created_at=row["created_at"],
        window_start=row["window_start"],
        next_attempt_at=row["next_attempt_at"],
        delivered_at=row["delivered_at"],
        last_error=row["last_error"],
        channel=row["channel"],
        trace=traces_stored(row["trace_parent"], row["trace_state"]),
        endpoint=row["endpoint"],
    )


def attempt_from_row(row: Mapping[str, Any]) -> DeliveryAttempt:
    """A ``delivery_attempts`` row as a ``DeliveryAttempt``."""
    return DeliveryAttempt(
        delivery_id=row["delivery_id"],
        attempted_at=row["attempted_at"],
        latency_ms=row["latency_ms"],
        status_code=row["status_code"],
        error=row["error"],
    )


def answer_from_row(row: Mapping[str, Any]) -> StoredAnswer:
    """A ``held_responses`` or ``idempotent_answers`` row as a ``StoredAnswer``."""
    return StoredAnswer(
        status_code=row["status_code"],
        headers=load(row["headers"]),
        body=base64.b64decode(row["body"] or ""),
        kind=row["kind"] if "kind" in row.keys() else "answer",  # noqa: SIM118 - sqlite3.Row
    )


def answer_params(answer: StoredAnswer) -> dict[str, Any]:
    """A ``StoredAnswer`` as query parameters."""
    return {
        "kind": answer.kind,
        "status_code": answer.status_code,
        "headers": dump(answer.headers),
        "body": base64.b64encode(answer.body).decode("ascii"),
    }


def new_execution_params(new: NewExecution, now: int) -> dict[str, Any]:
    """Parameters of ``create_execution``."""
    return {
        "workflow_id": new.workflow_id,
        "project_id": new.project_id,
        "mode": new.mode,
        "retry_of": new.retry_of,
        "custom_data": dump(new.custom_data),
        "data": dump(new.data),
        "callback_url": new.callback_url,
        "nonce": secrets.token_hex(16),  # a retry is a new execution with its own nonce
        "now": now,
    }


def park_params(
    execution_id: int, wait_till: int | None, webhook: WebhookSpec | None, *, events: bool = False
) -> dict[str, Any]:
    """Parameters of ``park``."""
    return {
        "id": execution_id,
        "reported_wait_till": reported_wait_till(wait_till, webhook, events=events),
        "wait_suffix": None if webhook is None else webhook.suffix,
        "on_timeout": None
        if webhook is None or webhook.approval is None
        else webhook.approval.on_timeout,
    }


def decision_from_row(row: Mapping[str, Any]) -> Decision:
    """A ``decisions`` row as a ``Decision``."""
    return Decision(
        approver=row["approver"],
        decision=row["decision"],
        options=tuple(load(row["options"])),
        comment=row["comment"],
        at=row["decided_at"],
        via=row["via"],
    )


def decision_params(execution_id: int, seq: int, decision: Decision) -> dict[str, Any]:
    """Parameters of ``insert_decision``."""
    return {
        "id": execution_id,
        "seq": seq,
        "approver": decision.approver,
        "decision": decision.decision,
        "options": dump(list(decision.options)),
        "comment": decision.comment,
        "now": decision.at,
        "via": decision.via,
    }


def finish_params(
    execution_id: int, status: Status, result: JSON, error: JSON, now: int
) -> dict[str, Any]:
    """Parameters of ``finish``."""
    return {
        "id": execution_id,
        "status": status.value,
        "result": dump(result),
        "error": dump(error),
        "now": now,
    }


def stop_many_params(which: StopFilter, now: int) -> dict[str, Any]:
    """Parameters of ``stop_many`` (statuses as a JSON array)."""
    return {
        "statuses": dump([s.value for s in which.statuses]),
        "workflow_id": which.workflow_id,
        "project_id": which.project_id,
        "started_after": which.started_after,
        "started_before": which.started_before,
        "now": now,
    }


def attempt_params(attempt: DeliveryAttempt) -> dict[str, Any]:
    """Parameters of ``insert_attempt``."""
    return {
        "delivery_id": attempt.delivery_id,
        "attempted_at": attempt.attempted_at,
        "status_code": attempt.status_code,
        "error": attempt.error,
        "latency_ms": attempt.latency_ms,
    }


def attempt_outcome_params(
    attempt: DeliveryAttempt, next_attempt_at: int | None, now: int
) -> dict[str, Any]:
    """Parameters of ``delivery_succeeded`` / ``_failed`` / ``_dead``."""
    return {
        "id": attempt.delivery_id,
        "now": now,
        "error": attempt.error or f"answered {attempt.status_code}",
        "next_attempt_at": next_attempt_at,
    }


def crash_params(
    execution_id: int, attempt: DeliveryAttempt, error: str, now: int
) -> dict[str, Any]:
    """Parameters of ``crash_undelivered``: the reason becomes the execution's error."""
    reason = f"callback {attempt.delivery_id} could not be delivered: {error}"
    return {"id": execution_id, "now": now, "error": dump({"message": reason})}


def api_key_params(
    label: str,
    key_hash: str,
    prefix: str,
    scopes: tuple[str, ...],
    project_id: str | None,
    now: int,
) -> dict[str, Any]:
    """Parameters of ``create_api_key``."""
    return {
        "label": label,
        "key_hash": key_hash,
        "prefix": prefix,
        "scopes": dump(list(scopes)),
        "project_id": project_id,
        "now": now,
    }


def resume_attempt_from_row(row: Mapping[str, Any]) -> ResumeAttempt:
    """A ``resume_attempts`` row as a ``ResumeAttempt``."""
    return ResumeAttempt(
        execution_id=row["execution_id"],
        seq=row["seq"],
        attempted_at=row["attempted_at"],
        method=row["method"],
        status_code=row["status_code"],
        outcome=row["outcome"],
        reason=row["reason"],
        ip=row["ip"],
        user_agent=row["user_agent"],
    )


def audit_rows(attempts: list[ResumeAttempt]) -> str:
    """The ``attempts`` of ``record_attempts``: a JSON array with one array per attempt
    (caller-controlled text bounded)."""
    fields = [
        (
            a.execution_id,
            a.seq,
            a.attempted_at,
            a.method,
            a.status_code,
            a.outcome,
            a.reason,
            a.ip,
            a.user_agent,
        )
        for a in map(clip_attempt, attempts)
    ]
    return _encoder.encode(fields).decode()


def audit_pairs(attempts: list[ResumeAttempt]) -> list[AuditPair]:
    """Each (execution, outcome) pair of a batch of attempts, once, in order."""
    return list(dict.fromkeys((a.execution_id, a.outcome) for a in attempts))


def audit_trims(pairs: list[AuditPair]) -> dict[str, Any]:
    """The parameters of ``trim_resume_attempts`` for (execution, outcome) pairs, each once
    (the statement would rank a pair named twice twice)."""
    distinct = list(dict.fromkeys(pairs))
    return {"pairs": _encoder.encode(distinct).decode(), "keep": AUDIT_ROWS_KEPT}


def dump_evidence(evidence: CallEvidence | None) -> str | None:
    """The ``caller`` column of an early resume."""
    if evidence is None:
        return None
    return dump(
        {
            "headers": [list(pair) for pair in evidence.headers],
            "body": base64.b64encode(evidence.body).decode("ascii"),
            "ip": evidence.ip,
        }
    )


def early_resume_from_row(row: Mapping[str, Any]) -> EarlyResume:
    """A taken ``early_resumes`` row as an ``EarlyResume`` (its payload left as JSON text)."""
    raw = load(row["caller"])
    evidence = None
    if raw is not None:
        headers = tuple((name, value) for name, value in raw["headers"])
        evidence = CallEvidence(headers, base64.b64decode(raw["body"]), raw["ip"])
    return EarlyResume(
        method=row["method"],
        suffix=row["suffix"],
        payload=row["payload"],
        received_at=row["received_at"],
        evidence=evidence,
    )
