"""Bar charts as inline SVG: geometry here, drawing in templates/_chart.html."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH, HEIGHT, TOP, BOTTOM = 720, 180, 12, 22


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int


@dataclass(frozen=True)
class Chart:
    title: str
    bars: list[Bar]
    highest: int
    first_label: str
    last_label: str
    width: int = WIDTH
    height: int = HEIGHT


def bar_chart(title: str, points: list[tuple[str, int]]) -> Chart:
    """One bar per (label, value), scaled to the highest value; the first and last labels
    go under the axis."""
    highest = max((v for _, v in points), default=0)
    step = WIDTH / max(len(points), 1)
    plot = HEIGHT - TOP - BOTTOM
    bars = [
        Bar(
            x=i * step + step * 0.1,
            width=max(step * 0.8, 1.0),
            height=(v / highest * plot) if highest else 0.0,
            y=TOP + plot - ((v / highest * plot) if highest else 0.0),
            label=label,
            value=v,
        )
        for i, (label, v) in enumerate(points)
    ]
    return Chart(
        title=title,
        bars=bars,
        highest=highest,
        first_label=points[0][0] if points else "",
        last_label=points[-1][0] if points else "",
    )
