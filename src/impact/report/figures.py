"""Turn a result's drawing functions into embedded, byte-stable images.

Reports embed every figure as a base64 PNG so that ``report.html`` is one self-contained file.
The bytes are deterministic: a fixed style, size and resolution, no software/date metadata and a
fixed SVG hash salt, so that running the same job twice writes identical files.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Figure", "render_figure", "figure_is_empty"]

_DPI = 110
_SIZE = (7.2, 4.0)


@dataclass(frozen=True)
class Figure:
    """An embedded figure: title, PNG as base64 (empty if drawing failed), and why it failed."""

    title: str
    png_base64: str = ""
    error: str | None = None

    @property
    def data_uri(self) -> str:
        return f"data:image/png;base64,{self.png_base64}"


def _style() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    matplotlib.rcParams.update({"svg.hashsalt": "impact", "figure.dpi": _DPI, "savefig.dpi": _DPI, "path.simplify": True})


def figure_is_empty(ax: Any) -> bool:
    """True if nothing was drawn on the Axes (no lines, collections, patches, images or texts)."""
    drawn = (ax.lines, ax.collections, ax.patches, ax.images, ax.tables)
    return not any(len(x) for x in drawn) and not [t for t in ax.texts if t.get_text().strip()]


def render_figure(title: str, draw: Callable[[Any], Any], size: tuple[float, float] = _SIZE) -> Figure:
    """Call ``draw(ax)`` on a fresh Axes and return the PNG; a failure is returned, not raised."""
    import matplotlib.pyplot as plt

    _style()
    fig, ax = plt.subplots(figsize=size)
    try:
        returned = draw(ax)
        if returned is not None and hasattr(returned, "figure") and returned.figure is not fig:
            plt.close(fig)
            fig, ax = returned.figure, returned
        axes = fig.get_axes()
        if all(figure_is_empty(a) for a in axes):
            return Figure(title, error="the drawing function drew nothing")
        fig.tight_layout()
        # tight_layout leaves a placeholder layout engine behind, and savefig then lays out every tick
        # and label once more in a draw that renders nothing; the layout is already final
        fig.set_layout_engine(None)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
        return Figure(title, base64.b64encode(buffer.getvalue()).decode("ascii"))
    except Exception as exc:  # noqa: BLE001 - a broken figure must not break the report
        return Figure(title, error=f"{type(exc).__name__}: {exc}")
    finally:
        plt.close("all")
