"""The fleet bench's plot, as a small hand-written SVG: seconds until every task exists
against nodes, for each run given (and the bare client of the first)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

WIDTH, HEIGHT, MARGIN = 640, 400, 60
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def svg(runs: Sequence[Mapping[str, Any]]) -> str:
    series = []
    for i, run in enumerate(runs):
        points = [(r["nodes"], r["cold"]["tasks_s"]) for r in run["results"]]
        series.append((f"{run['label']}: start + fan-out", points, COLOURS[i % len(COLOURS)], ""))
        if i == 0:
            warm = [(r["nodes"], r["warm"]["tasks_s"]) for r in run["results"]]
            series.append((f"{run['label']}: warm fan-out", warm, COLOURS[0], "6,4"))
    peer = [(r["nodes"], r["peer"]["write_s"]) for r in runs[0]["results"]]
    series.append(("bare client", peer, "#7f7f7f", "2,3"))
    max_x = max(x for _, points, _, _ in series for x, _ in points) or 1
    max_y = max(y for _, points, _, _ in series for _, y in points) or 1

    def at(x: float, y: float) -> str:
        px = MARGIN + x / max_x * (WIDTH - 2 * MARGIN)
        py = HEIGHT - MARGIN - y / max_y * (HEIGHT - 2 * MARGIN)
        return f"{px:.1f},{py:.1f}"

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}"'
        ' font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<polyline points="{at(0, max_y)} {at(0, 0)} {at(max_x, 0)}" fill="none" stroke="black"/>',
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 15}" text-anchor="middle">nodes</text>',
        f'<text x="15" y="{HEIGHT / 2}" transform="rotate(-90 15 {HEIGHT / 2})"'
        ' text-anchor="middle">seconds until every task exists</text>',
    ]
    for tick in range(5):
        x, y = max_x * tick / 4, max_y * tick / 4
        px, py = at(x, 0).split(",")
        parts.append(f'<text x="{px}" y="{float(py) + 16}" text-anchor="middle">{x:,.0f}</text>')
        qx, qy = at(0, y).split(",")
        parts.append(f'<text x="{float(qx) - 6}" y="{qy}" text-anchor="end">{y:.0f}</text>')
    for n, (label, points, colour, dash) in enumerate(series):
        path = " ".join(at(x, y) for x, y in sorted(points))
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"'
            f' stroke-dasharray="{dash}"/>'
        )
        for x, y in points:
            cx, cy = at(x, y).split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>')
        ly = MARGIN + n * 18
        parts.append(
            f'<line x1="{MARGIN + 10}" y1="{ly}" x2="{MARGIN + 40}" y2="{ly}" stroke="{colour}"'
            f' stroke-width="2" stroke-dasharray="{dash}"/>'
        )
        parts.append(f'<text x="{MARGIN + 46}" y="{ly + 4}">{label}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
