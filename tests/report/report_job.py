"""The main job run once for all report tests, and an HTML parser for what it writes."""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path

from click.testing import CliRunner

from impact.cli import main

ANALYSES = Path(__file__).resolve().parents[2] / "analyses"


class Page(HTMLParser):
    """Collects section ids, images, figure captions, tables, notes, cards and the visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[tuple[str, str]] = []
        self.figures = 0
        self.svgs = 0
        self.text: list[str] = []
        self.scripts = 0
        self.tables: list[list[list[str]]] = []  # every table: rows of cell texts
        self.cards: list[str] = []  # the visible text of each summary card
        self.notes: list[str] = []  # the text of each warning note
        self.details = 0
        self._stack: list[tuple[str, str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        cls = attrs.get("class") or ""
        if tag == "section":
            self.sections.append(attrs.get("id", ""))
        elif tag == "img":
            self.images.append((attrs.get("alt", ""), attrs.get("src", "")))
        elif tag == "figure":
            self.figures += 1
        elif tag == "svg":
            self.svgs += 1
        elif tag == "script":
            self.scripts += 1
        elif tag == "details":
            self.details += 1
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        if tag == "div" and cls.split()[:1] == ["card"]:
            self.cards.append("")
            self._stack.append(("card", tag))
        elif tag == "div" and cls == "note":
            self.notes.append("")
            self._stack.append(("note", tag))
        elif tag == "div":
            self._stack.append(("", tag))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self.tables and self.tables[-1]:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        if tag == "div" and self._stack:
            self._stack.pop()

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        kinds = {k for k, _ in self._stack}
        if "card" in kinds:
            self.cards[-1] += data
        if "note" in kinds:
            self.notes[-1] += data

    def plain(self) -> str:
        return re.sub(r"\s+", " ", " ".join(self.text))


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def run_job(cwd: Path):
    """``impact run analyses/ --out reports`` in ``cwd``; returns click's result."""
    runner = CliRunner()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        result = runner.invoke(main, ["run", str(ANALYSES), "--out", "reports"], catch_exceptions=False)
    finally:
        os.chdir(old)
    return result
