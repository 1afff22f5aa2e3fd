"""``/webhook-waiting/{id}[/{suffix}]``: the signed resume URL, with n8n's answers."""

from __future__ import annotations

import time

from starlette._utils import get_route_path
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway.answers import PREFIX, RESUME_PATHS, to_response
from gateway.calls import Answered, Call, Outcome, Refused, Why, answer_call
from gateway.confirm import DONE, confirmation_page, from_confirmation, is_browser, notice_page
from gateway.domain import AttemptOutcome, Execution, Status, WebhookSpec
from gateway.ended import CLOSED, ended_in_words
from gateway.http import (
    ApiError,
    IndexedRequest,
    client_address,
    exception_handler,
    handle_unexpected,
    read_body,
)
from gateway.payloads import build_payload
from gateway.services import Services, services
from gateway.signed import audit_attempt, check_signature, invalid_token
from gateway.signing import Action, SignedTarget

ALL_METHODS = ["DELETE", "GET", "HEAD", "PATCH", "POST", "PUT", "OPTIONS"]
MAX_IDEMPOTENCY_KEY = 255
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": ", ".join(ALL_METHODS),
    "Access-Control-Allow-Headers": "*",
    "Access-Control-Max-Age": "86400",
}
REASONS = {
    "resumed": "resumed",
    "early": "kept until the wait is parked",
    "replayed": "replayed the first answer (Idempotency-Key)",
}
"""What the audit trail says of each answered call."""


def _not_resumable(execution: Execution, seq: int) -> ApiError:
    """Why this execution's wait ``seq`` cannot be resumed now (n8n's wording)."""
    eid = execution.id
    match execution.status:
        case Status.SUCCESS:
            return ApiError(409, f'The execution "{eid}" has finished already.')
        case Status.ERROR | Status.CRASHED:
            return ApiError(409, f'The execution "{eid}" has finished with error.')
        case Status.CANCELED:
            return ApiError(409, f'The execution "{eid}" was canceled.')
        case Status.WAITING if execution.wait_seq != seq:
            return ApiError(
                409, f'The wait of execution "{eid}" that this URL belongs to has ended.'
            )
        case Status.RUNNING if execution.wait_seq == seq:
            return ApiError(
                409, f'The execution "{eid}" already received a resume for its next wait.'
            )
        case _:
            return ApiError(409, f'The execution "{eid}" is running already.')


def _refused(svc: Services, refused: Refused, target: SignedTarget) -> ApiError:
    """n8n's answer to a refused call."""
    eid = target.execution_id
    match refused.why:
        case Why.NO_EXECUTION:
            return ApiError(404, f'The execution "{eid}" does not exist.')
        case Why.NOT_OURS:
            return invalid_token()
        case Why.NO_MATCHING_WEBHOOK:
            return ApiError(
                404,
                f'The workflow for execution "{eid}" does not contain a waiting webhook '
                "with a matching path/method.",
                hint=expected_call(refused.expected),
            )
        case Why.CALLER_REFUSED:
            assert refused.refusal is not None
            status, message = refused.refusal.status, refused.refusal.message
            return ApiError(status, message, headers=refused.refusal.headers)
        case Why.NO_ANSWER:
            return ApiError(
                504,
                f'The workflow for execution "{eid}" did not answer within '
                f"{svc.settings.response_timeout_seconds:g} s; it goes on running.",
            )
        case Why.NOT_RESUMABLE:
            if refused.execution is None:
                return ApiError(404, f'The execution "{eid}" does not exist.')
            return _not_resumable(refused.execution, target.wait_seq)


def expected_call(spec: WebhookSpec | None) -> str:
    """What the waiting webhook takes (the caller holds the signed URL, so it may know)."""
    if spec is None:
        return "This wait takes no call: it ends at its waitTill, on an event or by the API."
    methods = " or ".join(spec.methods)
    where = f"with the path suffix /{spec.suffix}" if spec.suffix else "without a path suffix"
    return f"This wait resumes on {methods}, {where}."


async def _call(svc: Services, request: Request, target: SignedTarget, suffix: str) -> Call:
    """What the use case needs of the request; a 400, 413 or 422 for a call it cannot take."""
    started = time.perf_counter()
    key = request.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise ApiError(400, f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    body = await read_body(request, svc.settings.max_body_bytes)
    return Call(
        target=target,
        method=request.method,
        suffix=suffix,
        headers=request.headers,
        body=body,
        payload=build_payload(request, body, suffix),
        ip=client_address(request),
        idempotency_key=key,
        started=started,
    )


class ResumeEndpoint:
    """The resume URL as a plain ASGI app, below Starlette's router: ``gateway.front`` sends
    every ``/webhook-waiting/…`` request here. It matches its own path (the two ``routes``),
    answers its own errors with the app's exception handlers, and serves ``resume_webhook``."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one call of a resume URL."""
        request = IndexedRequest(scope, receive)
        try:
            response = await _routed(request)
        except Exception as exc:
            handler = exception_handler(exc)
            await (await handler(request, exc))(scope, receive, send)
            if handler is handle_unexpected:
                raise  # logged by the server too, as Starlette's error middleware does
            return
        await response(scope, receive, send)


async def _routed(request: Request) -> Response:
    """The path's execution id and suffix (Starlette's 404 and 405 otherwise), then the call."""
    scope = request.scope
    raw_id, slash, suffix = get_route_path(scope)[len(RESUME_PATHS) :].partition("/")
    if not raw_id:
        raise HTTPException(404)
    scope["route"] = routes[1] if slash else routes[0]
    if request.method not in ALL_METHODS:
        raise HTTPException(405, headers={"Allow": ", ".join(ALL_METHODS)})
    return await resume_webhook(request, raw_id, suffix.strip("/"))


async def resume_webhook(request: Request, raw_id: str, suffix: str) -> Response:
    """Resume the wait named by the URL's signature, exactly once; audit every attempt."""
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=CORS_HEADERS)
    svc = services(request)
    target = check_signature(svc, request, raw_id, suffix, Action.RESUME)
    try:
        call = await _call(svc, request, target, suffix)
    except ApiError as exc:
        _audit(svc, request, target, exc.status, exc.message)
        raise
    outcome = await answer_call(svc, call)
    response = _answer(svc, request, target, outcome, from_confirmation(request.headers, call.body))
    if (
        isinstance(outcome, Refused)
        and outcome.why is Why.NOT_RESUMABLE
        and is_browser(request.headers)
    ):
        return await _ended_page(svc, target, response, request.method)
    return response


async def _ended_page(
    svc: Services, target: SignedTarget, refused: Response, method: str
) -> Response:
    """For a browser, why the link no longer works, in words (n8n's JSON stays for clients)."""
    execution = await svc.store.get_execution(target.execution_id, with_waits=True)
    if execution is None:
        return refused
    wait = next((w for w in execution.waits if w.seq == target.wait_seq), None)
    message = ended_in_words(execution, wait) or CLOSED
    return to_response(notice_page(409, "Link no longer active", message), method)


def _answer(
    svc: Services, request: Request, target: SignedTarget, outcome: Outcome, confirmed: bool
) -> Response:
    """The outcome as n8n's answer, with its row in the audit trail; the confirmation page's
    own POST gets a "Done" page instead of the wait's answer."""
    if isinstance(outcome, Refused):
        error = _refused(svc, outcome, target)
        _audit(svc, request, target, error.status, error.message)
        return error.response()
    if isinstance(outcome, Answered):
        answer = outcome.answer
        _audit(svc, request, target, answer.status_code, REASONS[outcome.kind])
        if confirmed:
            return to_response(notice_page(200, "Done", DONE), request.method)
        return to_response(answer, request.method, replayed=outcome.kind == "replayed")
    page = confirmation_page(request)
    _audit(svc, request, target, 200, "confirmation page shown", "shown")
    return to_response(page, request.method)


def _audit(
    svc: Services,
    request: Request,
    target: SignedTarget,
    status: int,
    reason: str,
    outcome: AttemptOutcome | None = None,
) -> None:
    audit_attempt(svc, request, target.execution_id, target.wait_seq, status, reason, outcome)


resume_endpoint = ResumeEndpoint()
routes = [
    Route(f"{PREFIX}/{{id}}", resume_endpoint, methods=ALL_METHODS),
    Route(f"{PREFIX}/{{id}}/{{suffix:path}}", resume_endpoint, methods=ALL_METHODS),
]
"""The resume URL's two paths (what the OpenAPI document and the tests list; ``gateway.front``
sends their requests to ``resume_endpoint`` without the router)."""
