"""Small charts as SVG text, for pages and PDFs alike: no JavaScript, no image library, no fonts fetched.

Pure functions from numbers to markup; every label is escaped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from xml.sax.saxutils import escape


@dataclass(frozen=True, slots=True)
class Line:
    """A horizontal reference line (e.g. the warning line at coverage 1.30)."""

    label: str
    value: Decimal
    colour: str


def _fmt(value: float) -> str:
    return f"{value:.1f}"


@dataclass(frozen=True, slots=True)
class _Frame:
    """Where a coverage chart draws: the plot's box, its value range and its days."""

    width: int
    height: int
    lo: float
    hi: float
    first: int  # ordinal of the first day
    span: int  # days from the first to the last (at least 1)
    single: bool  # one point only: drawn in the middle
    as_percent: bool
    left: int = 56
    top: int = 28

    @property
    def plot_w(self) -> int:
        return self.width - self.left - 16

    @property
    def plot_h(self) -> int:
        return self.height - self.top - 28

    def x(self, day: date) -> float:
        if self.single:
            return self.left + self.plot_w / 2
        return self.left + self.plot_w * (day.toordinal() - self.first) / self.span

    def y(self, value: float) -> float:
        return self.top + self.plot_h * (1 - (value - self.lo) / (self.hi - self.lo))

    def label(self, value: float) -> str:
        return f"{value * 100:.0f}%" if self.as_percent else f"{value:,.2f}"


def coverage_chart(
    points: Sequence[tuple[date, Decimal | None]],
    lines: Sequence[Line],
    *,
    title: str,
    width: int = 640,
    height: int = 240,
    as_percent: bool = True,
) -> str:
    """A time series (dates ascending) against reference lines. Points without a value leave a gap."""
    frame = _frame(points, lines, width, height, as_percent)
    left, top, plot_w, plot_h = frame.left, frame.top, frame.plot_w, frame.plot_h
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-label="{escape(title)}" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ddd"/>',
        f'<text x="{left}" y="16" font-weight="bold">{escape(title)}</text>',
    ]
    out += _grid(frame) + _reference_lines(frame, lines) + _series(frame, points) + _days(frame, points)
    out.append("</svg>")
    return "".join(out)


def _frame(points: Sequence[tuple[date, Decimal | None]], lines: Sequence[Line], width: int, height: int,
           as_percent: bool) -> _Frame:  # fmt: skip
    values = [float(v) for _, v in points if v is not None] + [float(line.value) for line in lines]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    pad = (hi - lo) * 0.1 or max(abs(hi) * 0.1, 0.1)
    days = [d.toordinal() for d, _ in points]
    first, last = (min(days), max(days)) if days else (0, 1)
    return _Frame(width, height, max(lo - pad, 0.0), hi + pad, first, (last - first) or 1,
                  single=len(points) <= 1, as_percent=as_percent)  # fmt: skip


def _grid(frame: _Frame) -> list[str]:
    """Five horizontal lines with their values."""
    out = []
    for i in range(5):
        tick = frame.lo + (frame.hi - frame.lo) * i / 4
        at = frame.y(tick)
        out.append(f'<line x1="{frame.left}" x2="{frame.left + frame.plot_w}" y1="{_fmt(at)}" y2="{_fmt(at)}" '
                   f'stroke="#eee"/>')  # fmt: skip
        out.append(f'<text x="{frame.left - 6}" y="{_fmt(at + 4)}" text-anchor="end" fill="#666">'
                   f"{escape(frame.label(tick))}</text>")  # fmt: skip
    return out


def _reference_lines(frame: _Frame, lines: Sequence[Line]) -> list[str]:
    out = []
    for line in lines:
        yy = _fmt(frame.y(float(line.value)))
        out.append(f'<line x1="{frame.left}" x2="{frame.left + frame.plot_w}" y1="{yy}" y2="{yy}" '
                   f'stroke="{escape(line.colour)}" stroke-dasharray="6 4" stroke-width="1.5"/>')  # fmt: skip
        caption = f"{escape(line.label)} {escape(frame.label(float(line.value)))}"
        out.append(f'<text x="{frame.left + frame.plot_w - 4}" y="{_fmt(float(yy) - 4)}" text-anchor="end" '
                   f'fill="{escape(line.colour)}">{caption}</text>')  # fmt: skip
    return out


def _series(frame: _Frame, points: Sequence[tuple[date, Decimal | None]]) -> list[str]:
    """The values as polylines with dots; a point without a value ends a segment."""
    segments: list[list[str]] = [[]]
    for day, value in points:
        if value is None:
            segments.append([])
        else:
            segments[-1].append(f"{_fmt(frame.x(day))},{_fmt(frame.y(float(value)))}")
    out = []
    for seg in (s for s in segments if s):
        out.append(f'<polyline points="{" ".join(seg)}" fill="none" stroke="#1f5fa8" stroke-width="2"/>')
        out += [
            f'<circle cx="{px}" cy="{py}" r="2.5" fill="#1f5fa8"/>' for px, py in (p.split(",") for p in seg)
        ]
    return out


def _days(frame: _Frame, points: Sequence[tuple[date, Decimal | None]]) -> list[str]:
    """The first and the last day under the plot (one point: its day in the middle; none: a dash)."""
    if not points:
        return [f'<text x="{frame.left + frame.plot_w / 2}" y="{frame.top + frame.plot_h / 2}" '
                'text-anchor="middle" fill="#999">—</text>']  # fmt: skip
    ends = (
        [(points[0][0], "start"), (points[-1][0], "end")] if len(points) > 1 else [(points[0][0], "middle")]
    )
    return [f'<text x="{_fmt(frame.x(day))}" y="{frame.height - 8}" text-anchor="{anchor}" fill="#666">'
            f"{day.isoformat()}</text>" for day, anchor in ends]  # fmt: skip


def bar_chart(
    bars: Sequence[tuple[str, Decimal | int]],
    *,
    title: str,
    width: int = 520,
    height: int = 220,
    colour: str = "#8a1c1c",
    money: bool = False,
    label_every: int = 1,
) -> str:
    """Vertical bars with their value above each and their label below; with many bars, only every
    `label_every`-th is labelled (the first and the last always), so that labels never overlap."""
    left, right, top, bottom = 16, 16, 32, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((float(v) for _, v in bars), default=0.0) or 1.0
    step = plot_w / max(len(bars), 1)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-label="{escape(title)}" font-family="sans-serif" font-size="10">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="14" font-weight="bold" font-size="11">{escape(title)}</text>',
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#999"/>',
    ]
    for i, (name, value) in enumerate(bars):
        h = plot_h * float(value) / peak
        x = left + i * step + step * 0.15
        y = top + plot_h - h
        shown = f"{float(value):,.0f}" if money else f"{value:,}"
        middle = _fmt(x + step * 0.35)
        out.append(
            f'<rect x="{_fmt(x)}" y="{_fmt(y)}" width="{_fmt(step * 0.7)}" height="{_fmt(h)}" '
            f'fill="{escape(colour)}"/>'
        )
        if i % label_every == 0 or i == len(bars) - 1:
            out += [
                f'<text x="{middle}" y="{_fmt(y - 3)}" text-anchor="middle" fill="#333">{escape(shown)}</text>',
                f'<text x="{middle}" y="{height - 18}" text-anchor="middle" fill="#555">{escape(name)}</text>',
            ]
    out.append("</svg>")
    return "".join(out)
