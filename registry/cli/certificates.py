"""`registry certificates render|get`: pledge certificates' PDFs."""

from __future__ import annotations

import argparse
import sys

from sqlalchemy import text

from registry.cli.common import Refused, Subcommands, actor, database, progress, session, write_out
from registry.clock import SystemClock
from registry.config import Settings

BATCH = 50


def _links_warning(settings: Settings) -> None:
    if settings.public_url is None:
        print(f"note: REGISTRY_PUBLIC_URL is not set; a certificate rendered now links to "
              f"{settings.base_url()} for good", file=sys.stderr)  # fmt: skip


def cmd_certificates_render(args: argparse.Namespace, settings: Settings) -> int:
    from registry.certificate.renderer import Renderer
    from registry.certificate.service import render_pending

    _links_warning(settings)
    renderer = Renderer(settings.base_url(), workers=0)
    total = 0
    with database(settings) as engine:
        with engine.connect() as conn:
            waiting = conn.execute(text("SELECT count(*) FROM certificate WHERE pdf IS NULL")).scalar_one()
        with progress("rendering certificates", waiting, unit="certificates") as advance:
            while done := render_pending(engine, renderer, SystemClock().now, limit=BATCH):
                total += done
                advance(done)
    print(f"{total} certificate(s) rendered and stored")
    return 0


def cmd_certificates_get(args: argparse.Namespace, settings: Settings) -> int:
    from registry.certificate import service as certificates
    from registry.certificate.renderer import Renderer

    with session(settings) as s:
        found = certificates.by_number(s, args.number)
        if found is None:
            raise Refused(f"no certificate {args.number}")
        if certificates.stored_pdf(s, found.id) is None:
            _links_warning(settings)
        pdf = certificates.pdf_for(s, found, Renderer(settings.base_url(), workers=0), actor().at)
        what = f"{found.number} ({found.status})"
    write_out(pdf, args.out, what)
    return 0


def register(sub: Subcommands) -> None:
    certs = sub.add_parser("certificates", help="pledge certificates").add_subparsers(
        dest="certificates_command", required=True
    )
    certs.add_parser("render", help="render and store every certificate that has no PDF yet").set_defaults(
        func=cmd_certificates_render
    )
    sp = certs.add_parser("get", help="write a certificate's PDF (as issued) to a file")
    sp.add_argument("number", help="e.g. ZY-2026-000001-01")
    sp.add_argument("-o", "--out", default="-", help="file to write; '-' for standard output")
    sp.set_defaults(func=cmd_certificates_get)
