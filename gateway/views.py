"""How executions look over HTTP (n8n's execution shape plus our fields)."""

from __future__ import annotations

from typing import Any

from gateway.auth import Scope
from gateway.domain import Execution, Status, Wait, format_instant
from gateway.redaction import caller_secret_headers, shown_data, too_large
from gateway.signing import ResumeSigner

SIGNED_URL_SCOPE = Scope.EXECUTION_WRITE
"""Who may see an execution's signed URLs (``resumeUrl``, ``approvalUrl``, ``approvalUrls``,
``resumeFormUrl``):
a principal that may resume it anyway. Anyone else holding one could resume through it."""


def resume_url(execution: Execution, signer: ResumeSigner) -> str | None:
    """The URL that resumes the execution's current wait (or its next one while running)."""
    eid, nonce, seq = execution.id, execution.nonce, execution.wait_seq
    if execution.status is Status.RUNNING:
        return signer.resume_url(eid, nonce, seq)
    if execution.status is Status.WAITING and execution.wait_suffix is not None:
        return signer.resume_url(eid, nonce, seq, execution.wait_suffix)
    return None


def _signed_urls(execution: Execution, signer: ResumeSigner) -> dict[str, Any]:
    """The URLs that act on the execution's current (or next) wait, by field name."""
    urls: dict[str, Any] = {}
    url = resume_url(execution, signer)
    if url is not None:
        urls["resumeUrl"] = url
    current = execution.current_wait
    approval = None if current is None or current.webhook is None else current.webhook.approval
    if current is not None and approval is not None:
        urls["approvalUrl"] = signer.approval_url(execution.id, execution.nonce, current.seq)
        if approval.approvers:
            urls["approvalUrls"] = {
                a.id: signer.approval_url(execution.id, execution.nonce, current.seq, a.id)
                for a in approval.approvers
            }
    if current is not None and current.webhook is not None and current.webhook.form:
        urls["resumeFormUrl"] = signer.form_url(execution.id, execution.nonce, current.seq)
    return urls


def wait_view(wait: Wait) -> dict[str, Any]:
    """One wait, with when it was due and when it actually resumed."""
    webhook = wait.webhook
    return {
        "seq": wait.seq,
        "parkedAt": format_instant(wait.parked_at),
        "waitTill": format_instant(wait.reported_wait_till),
        "webhook": None
        if webhook is None
        else {"httpMethod": list(webhook.methods), "suffix": webhook.suffix},
        "events": [{"source": e.source, "name": e.name, "match": e.values} for e in wait.events],
        "resumedAt": format_instant(wait.resumed_at),
        "resumedBy": None if wait.resumed_by is None else wait.resumed_by.value,
        "payload": wait.payload,
    }


def execution_view(
    execution: Execution,
    signer: ResumeSigner,
    *,
    signed_urls: bool = False,
    include_data: bool = False,
    redact: bool | None = None,
    can_reveal: bool = False,
    max_display_bytes: int | None = None,
) -> dict[str, Any]:
    """The execution as the API answers it; ``data`` only if asked, as the caller may see it.

    The signed URLs appear only with ``signed_urls`` (the caller has ``SIGNED_URL_SCOPE``).
    """
    view: dict[str, Any] = {
        "id": execution.id,
        "workflowId": execution.workflow_id,
        "projectId": execution.project_id,
        "mode": execution.mode,
        "status": execution.status.value,
        "finished": execution.status is Status.SUCCESS,
        "startedAt": format_instant(execution.started_at),
        "stoppedAt": format_instant(execution.stopped_at),
        "waitTill": format_instant(execution.wait_till)
        if execution.status is Status.WAITING
        else None,
        "retryOf": execution.retry_of,
        "retrySuccessId": execution.retry_success_id,
        "customData": execution.custom_data,
    }
    if signed_urls:
        view.update(_signed_urls(execution, signer))
    if include_data:
        data = {
            "input": execution.data,
            "result": execution.result,
            "error": execution.error,
            "waits": [wait_view(w) for w in execution.waits],
        }
        if too_large(data, max_display_bytes):
            view["dataTooLargeToDisplay"] = True
        else:
            secrets = [caller_secret_headers(w.webhook) for w in execution.waits]
            view["data"] = shown_data(
                data, redact=redact, can_reveal=can_reveal, secret_headers=secrets
            )
    return view


def next_wait_view(execution: Execution, signer: ResumeSigner) -> dict[str, Any]:
    """What a caller held by the previous wait is told when the execution parks again: the
    new wait's status, deadline and resume URL (the fields of ``execution_view``)."""
    return {
        "id": execution.id,
        "status": execution.status.value,
        "waitTill": format_instant(execution.wait_till)
        if execution.status is Status.WAITING
        else None,
        "resumeUrl": resume_url(execution, signer),
    }
