"""Optional PDF copies of the HTML reports, printed by headless Chromium.

Chromium is not a Python dependency: it is found on the PATH (Debian: ``apt-get install chromium``).
The PDF carries a creation date, so unlike the HTML it is not byte-identical between runs.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from impact.errors import ImpactError

__all__ = ["find_chromium", "html_to_pdf"]

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium() -> str:
    """Path of a Chromium/Chrome executable, or an ImpactError saying how to install one."""
    for name in _CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    raise ImpactError(
        "PDF output needs headless Chromium, which was not found on the PATH "
        "(Debian/Ubuntu: apt-get install chromium); the HTML reports were written."
    )


def html_to_pdf(html: Path, pdf: Path | None = None, *, timeout: float = 120) -> Path:
    """Print ``html`` to ``pdf`` (default: same name, .pdf) with headless Chromium, on A4 paper."""
    pdf = pdf or html.with_suffix(".pdf")
    with tempfile.TemporaryDirectory() as profile:
        # Folded tables (<details>) are printed unfolded: paper has no click. The copy sits beside the
        # original so that relative links still resolve; the page size (A4) comes from the CSS @page rule.
        printable = html.with_name(f".{html.stem}.print.html")
        printable.write_text(html.read_text(encoding="utf-8").replace("<details>", "<details open>"), encoding="utf-8")
        command = [
            find_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--no-pdf-header-footer", f"--print-to-pdf={pdf.resolve()}",
            printable.resolve().as_uri(),
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise ImpactError(f"Chromium did not finish printing {html} within {timeout:.0f} s.") from None
        finally:
            printable.unlink(missing_ok=True)
    if done.returncode != 0 or not pdf.is_file():
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise ImpactError(f"Chromium could not print {html} to PDF: {last}")
    return pdf
