"""Reports as PDF, in the certificates' look: Jinja2 templates, SVG charts, WeasyPrint.

The HTML is made where the report's figures are (cheap); the PDF from it wherever the caller says —
the API's worker processes (registry/report/renderer.py), or the calling thread (the CLI)."""

from __future__ import annotations

from collections.abc import Callable

import jinja2

from registry import charts
from registry.pdf import money, percent, units, write_pdf
from registry.report.collateral_book import CollateralBook
from registry.report.exchange_stats import ExchangeStats

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("registry.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_env.filters.update(money=money, percent=percent, units=units)

WritePdf = Callable[[str], bytes]


def collateral_book_html(book: CollateralBook, issuer: str) -> str:
    ladder = charts.bar_chart([(r.bucket, r.outstanding_principal) for r in book.ladder],
                              title="未偿本金到期分布 Outstanding by days to maturity", money=True)  # fmt: skip
    coverage = charts.bar_chart([(b.band, b.pledges) for b in book.coverage_bands],
                                title="覆盖倍数分布 Pledges by coverage", colour="#1f5fa8")  # fmt: skip
    return _env.get_template("collateral_book.html").render(
        b=book, issuer=issuer, ladder_chart=ladder, coverage_chart=coverage
    )


def exchange_stats_html(stats: ExchangeStats, issuer: str) -> str:
    # Every month of the period, those without financing at zero (exchange_stats); at most ~12 labels.
    months = charts.bar_chart([(m.month, m.financing) for m in stats.months],
                              title="月度融资金额 Financing secured by month (CNY)", money=True, width=700,
                              label_every=max(1, -(-len(stats.months) // 12)))  # fmt: skip
    return _env.get_template("exchange_stats.html").render(s=stats, issuer=issuer, months_chart=months)


def collateral_book_pdf(book: CollateralBook, issuer: str, write: WritePdf = write_pdf) -> bytes:
    return write(collateral_book_html(book, issuer))


def exchange_stats_pdf(stats: ExchangeStats, issuer: str, write: WritePdf = write_pdf) -> bytes:
    return write(exchange_stats_html(stats, issuer))
