"""Reports as PDF, in the certificates' look: Jinja2 templates, SVG charts, WeasyPrint."""

from __future__ import annotations

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


def collateral_book_pdf(book: CollateralBook, issuer: str) -> bytes:
    ladder = charts.bar_chart([(r.bucket, r.outstanding_principal) for r in book.ladder],
                              title="未偿本金到期分布 Outstanding by days to maturity", money=True)  # fmt: skip
    coverage = charts.bar_chart([(b.band, b.pledges) for b in book.coverage_bands],
                                title="覆盖倍数分布 Pledges by coverage", colour="#1f5fa8")  # fmt: skip
    html = _env.get_template("collateral_book.html").render(
        b=book, issuer=issuer, ladder_chart=ladder, coverage_chart=coverage
    )
    return write_pdf(html)


def exchange_stats_pdf(stats: ExchangeStats, issuer: str) -> bytes:
    months = charts.bar_chart([(m.month, m.financing) for m in stats.months],
                              title="月度融资金额 Financing secured by month (CNY)", money=True, width=700)  # fmt: skip
    html = _env.get_template("exchange_stats.html").render(s=stats, issuer=issuer, months_chart=months)
    return write_pdf(html)
