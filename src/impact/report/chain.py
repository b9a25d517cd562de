"""The effect chain drawn as an inline SVG diagram.

Five columns (resources -> activities -> outputs -> outcomes -> impacts) with arrow-shaped headers
and arrows between the columns; each item is a box with its text and, under it, each indicator's code
with a marker saying where it is measured (estimated by an evaluation, present in a data source, or
not measured). Generated as text in Python: no fonts or renderer needed, crisp at any zoom, and
byte-stable. Every piece of user text is XML-escaped.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["Measured", "effect_chain_svg"]

LEVEL_TITLES = {
    "resources": "Resources",
    "activities": "Activities",
    "outputs": "Outputs",
    "outcomes": "Outcomes",
    "impacts": "Impacts",
}
_COLOURS = {
    "resources": "#5b6b7c",
    "activities": "#3f6e9a",
    "outputs": "#2a6f97",
    "outcomes": "#1f5f5b",
    "impacts": "#7a4e1d",
}
_MARKERS = {"evaluated": "#1a7f37", "measured": "#2a6f97", "none": "#9aa3ad"}

_WIDTH = 1120
_COL = 200
_HEADER = 38
_PAD = 10
_LINE = 16
_SMALL = 14
_TEXT_CHARS = 27
_NOTE_CHARS = 30


@dataclass(frozen=True)
class Measured:
    """Where an indicator is measured: ``kind`` is "evaluated", "measured" or "none"; ``where`` says how."""

    kind: str
    where: str


@dataclass(frozen=True)
class _Box:
    text_lines: list[str]
    indicators: list[tuple[str, Measured, list[str]]]

    @property
    def height(self) -> int:
        rows = len(self.text_lines) * _LINE + sum(_SMALL * (1 + len(n)) for _, _, n in self.indicators)
        return rows + 2 * _PAD + (4 if self.indicators else 0)


def _boxes(items: Sequence, locate: Callable[[str], Measured]) -> list[_Box]:
    boxes = []
    for item in items:
        lines = textwrap.wrap(item.text, _TEXT_CHARS) or [""]
        inds = []
        for code in item.indicators:
            where = locate(code)
            note = item.measured if item.measured else where.where
            inds.append((code, where, textwrap.wrap(note, _NOTE_CHARS)))
        boxes.append(_Box(lines, inds))
    return boxes


def effect_chain_svg(levels: Sequence[tuple[str, Sequence]], locate: Callable[[str], Measured], *, title: str = "") -> str:
    """SVG markup of the effect chain.

    Parameters
    ----------
    levels : sequence of (level, items)
        In chain order; each item has ``text``, ``indicators`` (codes) and optional ``measured`` text.
    locate : callable
        ``code -> Measured``: where each indicator is measured in this programme.
    """
    n = len(levels)
    gap = (_WIDTH - n * _COL) / max(n - 1, 1)
    columns = [(level, _boxes(items, locate)) for level, items in levels]
    body_top = _HEADER + 18
    heights = [sum(b.height + 12 for b in boxes) - 12 if boxes else 60 for _, boxes in columns]
    body_height = max(heights + [60])
    legend_y = body_top + body_height + 26
    total_height = legend_y + 22
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chain" viewBox="0 0 {_WIDTH} {total_height}" '
        f'width="100%" role="img" aria-label="{escape("Effect chain " + title)}" '
        'font-family="Segoe UI, Helvetica, Arial, sans-serif">',
        f"<title>{escape('Effect chain: ' + title if title else 'Effect chain')}</title>",
        '<defs><marker id="chain-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#4a5563"/></marker></defs>',
    ]
    for i, (level, boxes) in enumerate(columns):
        x = i * (_COL + gap)
        colour = _COLOURS.get(level, "#555")
        tip = 14 if i < n - 1 else 0
        notch = 10 if i > 0 else 0
        points = [
            (x, 0), (x + _COL + tip - 14, 0), (x + _COL + tip, _HEADER / 2), (x + _COL + tip - 14, _HEADER),
            (x, _HEADER), (x + notch, _HEADER / 2),
        ]
        if tip == 0:
            points = [(x, 0), (x + _COL, 0), (x + _COL, _HEADER), (x, _HEADER), (x + notch, _HEADER / 2)]
        out.append(
            f'<polygon points="{" ".join(f"{px:.1f},{py:.1f}" for px, py in points)}" fill="{colour}"/>'
            f'<text x="{x + _COL / 2 + notch / 2:.1f}" y="{_HEADER / 2 + 5:.1f}" text-anchor="middle" '
            f'font-size="15" font-weight="600" fill="#fff">{escape(LEVEL_TITLES.get(level, level))}</text>'
        )
        y = body_top
        if not boxes:
            out.append(
                f'<rect x="{x:.1f}" y="{y}" width="{_COL}" height="60" rx="6" fill="#fafafa" stroke="#b8bec6" '
                f'stroke-dasharray="4 3"/><text x="{x + _COL / 2:.1f}" y="{y + 34}" text-anchor="middle" '
                'font-size="12" fill="#7a828c" font-style="italic">not specified</text>'
            )
        for box in boxes:
            out.append(
                f'<rect x="{x:.1f}" y="{y}" width="{_COL}" height="{box.height}" rx="6" fill="#ffffff" '
                f'stroke="{colour}" stroke-width="1.5"/>'
                f'<rect x="{x:.1f}" y="{y}" width="5" height="{box.height}" rx="2" fill="{colour}"/>'
            )
            ty = y + _PAD + 12
            for line in box.text_lines:
                out.append(f'<text x="{x + 13:.1f}" y="{ty}" font-size="12.5" fill="#1d2733">{escape(line)}</text>')
                ty += _LINE
            if box.indicators:
                ty += 4
            for code, where, note in box.indicators:
                mark = _MARKERS.get(where.kind, _MARKERS["none"])
                fill = mark if where.kind == "evaluated" else "#fff"
                dash = ' stroke-dasharray="2 2"' if where.kind == "none" else ""
                out.append(
                    f'<circle cx="{x + 18:.1f}" cy="{ty - 4}" r="4.5" fill="{fill}" stroke="{mark}" stroke-width="1.6"{dash}/>'
                    f'<text x="{x + 28:.1f}" y="{ty}" font-size="11.5" font-weight="700" fill="#1d2733" '
                    f'font-family="Consolas, Menlo, monospace">{escape(code)}</text>'
                )
                ty += _SMALL
                for line in note:
                    out.append(f'<text x="{x + 28:.1f}" y="{ty}" font-size="10.5" fill="#56606b">{escape(line)}</text>')
                    ty += _SMALL
            y += box.height + 12
        if i < n - 1:
            ax0, ax1 = x + _COL + 4, x + _COL + gap - 4
            ay = body_top + body_height / 2
            out.append(
                f'<line x1="{ax0:.1f}" y1="{ay:.1f}" x2="{ax1:.1f}" y2="{ay:.1f}" stroke="#4a5563" '
                'stroke-width="2" marker-end="url(#chain-arrow)"/>'
            )
    legend = [("evaluated", "effect estimated in this report"), ("measured", "column in the programme's data"), ("none", "not measured in the data")]
    lx = 0.0
    for kind, text in legend:
        mark = _MARKERS[kind]
        fill = mark if kind == "evaluated" else "#fff"
        dash = ' stroke-dasharray="2 2"' if kind == "none" else ""
        out.append(
            f'<circle cx="{lx + 6:.1f}" cy="{legend_y - 4}" r="4.5" fill="{fill}" stroke="{mark}" stroke-width="1.6"{dash}/>'
            f'<text x="{lx + 16:.1f}" y="{legend_y}" font-size="11.5" fill="#3b4450">{escape(text)}</text>'
        )
        lx += 16 + 7 * len(text) + 30
    out.append("</svg>")
    return "\n".join(out)
