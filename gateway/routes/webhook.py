"""``/webhook-waiting/{id}[/{suffix}]``: the signed resume URL, with n8n's answers."""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import metrics
from gateway.caller_auth import checker
from gateway.confirm import confirmation_page
from gateway.domain import (
    Execution,
    ResumedBy,
    Status,
    StoredAnswer,
    WebhookSpec,
)
from gateway.early import CallEvidence
from gateway.held import json_answer, to_response
from gateway.http import ApiError, client_address, read_body
from gateway.payloads import build_payload
from gateway.services import Services, services
from gateway.signed import audit_attempt, check_signature, invalid_token, issued_for
from gateway.signing import Action, SignedTarget
from gateway.stored import clip_headers

log = logging.getLogger("waitgate.webhook")

ALL_METHODS = ["DELETE", "GET", "HEAD", "PATCH", "POST", "PUT", "OPTIONS"]
DEFAULT_RESPONSE = {"message": "Workflow was started"}
MAX_IDEMPOTENCY_KEY = 255
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": ", ".join(ALL_METHODS),
    "Access-Control-Allow-Headers": "*",
    "Access-Control-Max-Age": "86400",
}


def _webhook_error(status: int, message: str) -> ApiError:
    return ApiError(status, message, code=status)


def _no_matching_webhook(execution_id: int) -> ApiError:
    return _webhook_error(
        404,
        f'The workflow for execution "{execution_id}" does not contain a waiting webhook '
        "with a matching path/method.",
    )


def _not_resumable(execution: Execution, seq: int) -> ApiError:
    """Why this execution's wait ``seq`` cannot be resumed now (n8n's wording)."""
    eid = execution.id
    match execution.status:
        case Status.SUCCESS:
            return _webhook_error(409, f'The execution "{eid}" has finished already.')
        case Status.ERROR | Status.CRASHED:
            return _webhook_error(409, f'The execution "{eid}" has finished with error.')
        case Status.CANCELED:
            return _webhook_error(409, f'The execution "{eid}" was canceled.')
        case Status.WAITING if execution.wait_seq != seq:
            return _webhook_error(
                409, f'The wait of execution "{eid}" that this URL belongs to has ended.'
            )
        case Status.RUNNING if execution.wait_seq == seq:
            return _webhook_error(
                409, f'The execution "{eid}" already received a resume for its next wait.'
            )
        case _:
            return _webhook_error(409, f'The execution "{eid}" is running already.')


def _configured_answer(spec: WebhookSpec) -> StoredAnswer:
    """The answer configured on the wait (``onReceived``)."""
    data: Any = DEFAULT_RESPONSE if spec.response_data is None else spec.response_data
    headers = {k.lower(): v for k, v in spec.response_headers.items()}
    if isinstance(data, str):
        headers.setdefault("content-type", "text/plain; charset=utf-8")
        return StoredAnswer(spec.response_code, headers, data.encode())
    return json_answer(spec.response_code, data, "answer", headers)


async def _answer_caller(
    svc: Services, execution_id: int, seq: int, spec: WebhookSpec
) -> StoredAnswer:
    """The configured answer, or, for a wait that holds its caller, the engine's answer."""
    if not spec.holds_caller:
        return _configured_answer(spec)
    timeout_ms = int(svc.settings.response_timeout_seconds * 1000)
    held = await svc.held.wait(execution_id, seq, timeout_ms)
    if held is None:
        raise _webhook_error(
            504,
            f'The workflow for execution "{execution_id}" did not answer within '
            f"{svc.settings.response_timeout_seconds:g} s; it goes on running.",
        )
    return held


async def _lost_race(svc: Services, execution_id: int, seq: int) -> ApiError:
    current = await svc.store.get_execution(execution_id)
    if current is None:
        return _webhook_error(404, f'The execution "{execution_id}" does not exist.')
    return _not_resumable(current, seq)


async def _keep_early(
    svc: Services,
    execution: Execution,
    seq: int,
    method: str,
    suffix: str,
    payload: Any,
    evidence: CallEvidence,
) -> StoredAnswer | None:
    """Keep a resume for a wait not parked yet, with what the wait's caller checks will need
    when it is parked; ``None`` if the execution moved meanwhile."""
    kept = await svc.store.record_early_resume(
        execution.id,
        seq,
        method,
        suffix,
        payload,
        svc.clock.now_ms(),
        evidence,
        nonce=execution.nonce,
    )
    if not kept:
        return None
    log.info(
        "early resume kept",
        extra={"action": "wait.early_resume", "execution_id": execution.id, "seq": seq},
    )
    message = (
        "Resume received before the execution was parked; it will be applied when the wait begins."
    )
    return json_answer(202, {"message": message}, "early")


async def _resume(
    svc: Services, request: Request, execution_id: int, seq: int, suffix: str, nonce: str
) -> StoredAnswer:
    """Resume the wait optimistically (one transaction); only a refusal reads to explain."""
    method = request.method
    started = time.perf_counter()
    body = await read_body(request, svc.settings.max_body_bytes)
    payload = {**build_payload(request, body, suffix), "resumedBy": ResumedBy.WEBHOOK.value}
    ip = client_address(request)
    admit = checker(request.headers, body, ip, svc.clock.now_ms() / 1000)
    for _ in range(2):
        outcome = await svc.store.resume_by_call(
            execution_id, seq, method, suffix, payload, svc.clock.now_ms(), admit, nonce=nonce
        )
        if outcome.refusal is not None:
            refusal = outcome.refusal
            raise ApiError(
                refusal.status, refusal.message, headers=refusal.headers, code=refusal.status
            )
        if outcome.resumed and outcome.wait is not None and outcome.wait.webhook is not None:
            metrics.RESUMES.labels("webhook").inc()
            metrics.RESUME_LATENCY.observe(time.perf_counter() - started)
            log.info(
                "resumed by webhook",
                extra={"action": "wait.resumed", "execution_id": execution_id, "seq": seq},
            )
            return await _answer_caller(svc, execution_id, seq, outcome.wait.webhook)
        if outcome.wait is not None and not outcome.accepted:
            page = confirmation_page(request, outcome.wait.webhook)
            if page is not None:
                raise Interstitial(page)
            raise _no_matching_webhook(execution_id)
        execution = await svc.store.get_execution(execution_id)
        if execution is None:
            raise _webhook_error(404, f'The execution "{execution_id}" does not exist.')
        if not issued_for(execution, nonce):
            raise invalid_token()  # a URL of another database with the same execution id
        if execution.status is not Status.RUNNING or execution.wait_seq != seq:
            raise _not_resumable(execution, seq)
        evidence = CallEvidence(tuple(clip_headers(request.headers.items())), body, ip)
        early = await _keep_early(svc, execution, seq, method, suffix, payload, evidence)
        if early is not None:
            return early
        # The engine parked the wait between our write and our read: try once more.
    raise await _lost_race(svc, execution_id, seq)


async def resume_webhook(request: Request) -> Response:
    """Resume the wait named by the URL's signature, exactly once; audit every attempt."""
    method = request.method
    if method == "OPTIONS":
        return Response(status_code=204, headers=CORS_HEADERS)
    svc = services(request)
    suffix: str = request.path_params.get("suffix", "").strip("/")
    target = check_signature(svc, request, request.path_params["id"], suffix, Action.RESUME)
    execution_id, seq = target.execution_id, target.wait_seq
    try:
        response = await _answer_call(svc, request, target, suffix)
    except ApiError as exc:
        audit_attempt(svc, request, execution_id, seq, exc.status, exc.message)
        raise
    except Interstitial as page:
        audit_attempt(svc, request, execution_id, seq, 200, "confirmation page shown", "shown")
        return to_response(page.answer, method)
    reason = "kept until the wait is parked" if response.status_code == 202 else "resumed"
    if response.headers.get("idempotent-replayed"):
        reason = "replayed the first answer (Idempotency-Key)"
    audit_attempt(svc, request, execution_id, seq, response.status_code, reason)
    return response


class Interstitial(Exception):
    """A page shown instead of resuming (the bot-safe GET)."""

    def __init__(self, answer: StoredAnswer) -> None:
        super().__init__("confirmation page")
        self.answer = answer


async def _answer_call(
    svc: Services, request: Request, target: SignedTarget, suffix: str
) -> Response:
    """The answer to a correctly signed call; with an ``Idempotency-Key`` header, the first
    successful answer is kept and a retry of the same call gets it again instead of a 409.

    The call is known by what its signature names, not by how its URL was spelled (or by
    which of the configured keys signed it).
    """
    method = request.method
    execution_id, seq, nonce = target.execution_id, target.wait_seq, target.nonce
    key = request.headers.get("idempotency-key")
    if key is None:
        return to_response(await _resume(svc, request, execution_id, seq, suffix, nonce), method)
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise _webhook_error(400, f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    call = f"{method} /webhook-waiting/{execution_id}/{suffix} {seq}.{nonce}"
    try:
        answer = await _resume(svc, request, execution_id, seq, suffix, nonce)
    except ApiError as exc:
        first = await svc.store.get_idempotent_answer(key, call) if exc.status == 409 else None
        if first is None:
            raise
        return to_response(first, method, replayed=True)
    if answer.status_code < 300:
        await svc.store.put_idempotent_answer(key, call, execution_id, answer, svc.clock.now_ms())
    return to_response(answer, method)


routes = [
    Route("/webhook-waiting/{id}", resume_webhook, methods=ALL_METHODS),
    Route("/webhook-waiting/{id}/{suffix:path}", resume_webhook, methods=ALL_METHODS),
]
