"""Pledge certificates: the PDF for those who may see the pledge, and public verification by number and code."""

from __future__ import annotations

import hashlib
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from api import problems
from api.auth import PrincipalDep
from api.deps import ClockDep, SessionDep, client_of
from api.pages import page, wants_html, when
from api.pagination import Cursor, Limit, next_cursor
from api.reads import certificate_read
from api.rendering import RendererDep
from api.routers.common import errors, int_cursor
from api.schemas.certificates import CertificatePage, Verification
from registry.certificate import service as certificates
from registry.errors import NotFound
from registry.ledger import repository as ledger_repo
from registry.pledge import reads
from registry.ratelimit import service as ratelimit

router = APIRouter(prefix="/v1", tags=["certificates"])

# Wrong verification codes: five per quarter hour; the fifth blocks for 2 s, each later one 4 s, 8 s ...
# up to 15 min.
VERIFY_LIMIT = ratelimit.Policy(scope="certificate_verify")


@router.get(
    "/pledges/{pledge_id}/certificate",
    operation_id="download_certificate",
    response_class=Response,
    responses={
        200: {
            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
            "description": "the PDF, byte for byte as issued",
        },
        304: {"description": "unchanged (If-None-Match)"},
        **errors(
            401,
            404,
            422,
            503,
            described={503: "`busy`: the certificate could not be rendered just now; retry"},
        ),
    },
    summary="A pledge's certificate as PDF: the latest version, or `?version=` (bank, pledgor, borrower, "
    "exchange)",
)
def download_certificate(
    request: Request,
    pledge_id: UUID,
    session: SessionDep,
    principal: PrincipalDep,
    renderer: RendererDep,
    clock: ClockDep,
    version: Annotated[int | None, Query(ge=1, le=100_000)] = None,
) -> Response:
    pledge = reads.require_pledge(session, principal, pledge_id)
    certificate = certificates.require(session, pledge.id, version)
    headers = {
        "Content-Disposition": f'inline; filename="{certificate.number}.pdf"',
        "Cache-Control": "private, no-cache",
        "X-Certificate-Number": certificate.number,
        "X-Certificate-Version": str(certificate.version),
        "X-Certificate-Status": certificate.status,
    }
    if certificate.sha256 is not None and request.headers.get("if-none-match") == f'"{certificate.sha256}"':
        return Response(status_code=304, headers={**headers, "ETag": f'"{certificate.sha256}"'})
    pdf = certificates.pdf_for(session, certificate, renderer, clock.now())
    headers["ETag"] = f'"{hashlib.sha256(pdf).hexdigest()}"'
    return Response(pdf, media_type="application/pdf", headers=headers)


@router.get(
    "/pledges/{pledge_id}/certificates",
    operation_id="list_certificates",
    response_model=CertificatePage,
    responses=errors(401, 404, 422, 503),
    summary="Every version of a pledge's certificate, oldest first, with its status and digest",
)
def list_certificates(
    pledge_id: UUID, session: SessionDep, principal: PrincipalDep, limit: Limit = 100, cursor: Cursor = None
) -> CertificatePage:
    pledge = reads.require_pledge(session, principal, pledge_id)
    codes = ledger_repo.credit_type_codes(session)
    items = certificates.versions(session, pledge.id, after_version=int_cursor(cursor), limit=limit)
    return CertificatePage(
        items=[certificate_read(c, codes[c.credit_type_id]) for c in items],
        next_cursor=next_cursor(items, limit, lambda c: c.version),
    )


@router.get(
    "/certificates/{number}/verify",
    operation_id="verify_certificate",
    response_model=Verification,
    responses={
        200: {
            "content": {"text/html": {}},
            "description": "JSON, or a page for a browser (a scanned QR code)",
        },
        **errors(
            404,
            422,
            429,
            503,
            described={
                404: "`not_found`: no certificate with this number and code",
                429: "`rate_limited`: too many wrong codes from this client; wait `Retry-After` seconds",
            },
        ),
    },
    summary="Verify a certificate (public, no key): its status and nothing confidential",
)
def verify_certificate(
    request: Request,
    number: Annotated[str, Path(max_length=64, description="e.g. ZY-2026-000001-01")],
    code: Annotated[str, Query(min_length=1, max_length=40, description="the verification code it prints")],
    session: SessionDep,
    clock: ClockDep,
) -> Response:
    now, client, html = clock.now(), client_of(request), wants_html(request)
    try:
        # Counted as a wrong code before the code is looked at: concurrent guesses cannot all get through.
        attempt = ratelimit.reserve(session, VERIFY_LIMIT, client, now)
    except ratelimit.RateLimited as limited:
        if html:
            return _verify_page(request, None, 429, retry_after=limited.retry_after)
        return problems.of(request, limited)
    found = certificates.verify(session, number, code)
    if found is None:
        if html:
            return _verify_page(request, None, 404)
        return problems.of(request, NotFound("certificate", number))
    ratelimit.release(session, attempt)
    c = found.certificate
    codes = ledger_repo.credit_type_codes(session)
    verification = Verification(
        number=c.number,
        status=c.status,
        version=c.version,
        issued_at=c.issued_at,
        status_changed_at=c.status_changed_at,
        quantity=c.quantity,
        credit_type=codes[c.credit_type_id],
        sha256=c.sha256,
        latest_version=found.latest_version,
        issuer=found.issuer,
    )
    if html:
        return _verify_page(request, verification, 200)
    return JSONResponse(verification.model_dump(mode="json"), headers={"Cache-Control": "no-store"})


def _verify_page(
    request: Request, verification: Verification | None, status: int, retry_after: int | None = None
) -> Response:
    if status == 429:
        zh, en = (
            f"尝试次数过多，请 {retry_after} 秒后再试",
            f"Too many wrong codes: try again in {retry_after} s",
        )
        extra = {"Retry-After": str(retry_after)}
    else:
        zh, en, extra = "未找到该证明，或验证码不正确", "No certificate with this number and code", {}
    return page(
        request,
        "verify.html",
        {
            "v": verification.model_dump() if verification else None,
            "message_zh": zh,
            "message_en": en,
            "when": when,
        },
        status_code=status,
        headers=extra,
    )
