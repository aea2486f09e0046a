"""Server-rendered inline SVG charts (bars, stacked bars, a line): no JavaScript, no CDN."""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 560, 200
LEFT, RIGHT, TOP, BOTTOM = 36, 8, 10, 24


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _frame(top: float, labels: Sequence[str], fmt: str, every: int) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = []
    for i in range(5):
        value = top * i / 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{LEFT - 4}" y="{y + 3:.1f}" text-anchor="end">{fmt.format(value)}</text>')
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(labels))
    for i, label in enumerate(labels):
        if i % every == 0:
            x = LEFT + slot * (i + 0.5)
            parts.append(f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle">{escape(label)}</text>')
    return parts


def _svg(parts: list[str], title: str) -> Markup:
    body = "".join(parts)
    return Markup(f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">'
                  f"<title>{escape(title)}</title>{body}</svg>")


def bars(title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float], str]],
         *, fmt: str = "{:.0f}", every: int = 1) -> Markup:
    """Stacked bars: `series` is [(name, values, colour)], one value per label."""
    totals = [sum(values[i] or 0 for _name, values, _colour in series) for i in range(len(labels))]
    top = _nice_max(max(totals, default=0))
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(labels))
    bar_w = max(2.0, slot * 0.7)
    parts = _frame(top, labels, fmt, every)
    for i, label in enumerate(labels):
        base = float(TOP + plot_h)  # the stack's top edge, moved up by each bar's height
        x = LEFT + slot * i + (slot - bar_w) / 2
        for name, values, colour in series:
            value = values[i] or 0
            if value <= 0:
                continue
            h = plot_h * value / top
            base -= h
            parts.append(f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar_w:.1f}" height="{h:.1f}" rx="2" '
                         f'fill="{colour}"><title>{escape(label)} · {escape(name)}: {value:g}</title></rect>')
    return _svg(parts, title)


def line(title: str, labels: Sequence[str], values: Sequence[float | None], *, colour: str = "#3b6ea8",
         top: float | None = None, fmt: str = "{:.0f}", every: int = 1) -> Markup:
    """A line through the points that have a value (gaps where there is none)."""
    known = [v for v in values if v is not None]
    top = top or _nice_max(max(known, default=0))
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(labels))
    segments: list[list[tuple[float, float]]] = [[]]
    dots = []
    for i, value in enumerate(values):
        if value is None:
            segments.append([])
            continue
        x, y = LEFT + slot * (i + 0.5), TOP + plot_h - plot_h * value / top
        segments[-1].append((x, y))
        dots.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}">'
                    f"<title>{escape(labels[i])}: {value:g}</title></circle>")
    lines = [f'<polyline points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in seg)}" fill="none" '
             f'stroke="{colour}" stroke-width="2"/>' for seg in segments if len(seg) > 1]
    return _svg(_frame(top, labels, fmt, every) + lines + dots, title)
