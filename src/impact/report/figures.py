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

__all__ = ["Figure", "render_figure", "figure_is_empty", "content_key"]

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


_styled = False


def _style() -> None:
    """The package's figure style (once per process: every report figure is drawn in it)."""
    global _styled
    if _styled:
        return
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    matplotlib.rcParams.update({"svg.hashsalt": "impact", "figure.dpi": _DPI, "savefig.dpi": _DPI, "path.simplify": True})
    _styled = True


def figure_is_empty(ax: Any) -> bool:
    """True if nothing was drawn on the Axes (no lines, collections, patches, images or texts)."""
    drawn = (ax.lines, ax.collections, ax.patches, ax.images, ax.tables)
    return not any(len(x) for x in drawn) and not [t for t in ax.texts if t.get_text().strip()]


#: figures already drawn in this process, by (title, size, content key): a figure that two sections or pages
#: show (a follow-up indicator in its programme's report and on the national page, the raw trends behind
#: several evaluations of one outcome) is drawn once
_drawn: dict[tuple, Figure] = {}
_MAX_DRAWN = 128


def content_key(*parts: Any) -> str:
    """A digest of the data a figure is drawn from: DataFrames (values row by row in order, columns and
    dtypes; not the index, which the report's drawings do not show), Series (with their index), arrays
    and plain values (by ``repr``)."""
    import hashlib

    import numpy as np
    import pandas as pd

    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, pd.DataFrame | pd.Series):
            digest.update(pd.util.hash_pandas_object(part, index=isinstance(part, pd.Series)).to_numpy().tobytes())
            digest.update(repr((getattr(part, "columns", None), part.dtypes if isinstance(part, pd.DataFrame) else part.dtype,
                                part.index.names, len(part))).encode())
        elif isinstance(part, np.ndarray):
            digest.update(repr((part.dtype, part.shape)).encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(repr(part).encode())
        digest.update(b"|")
    return digest.hexdigest()


def render_figure(title: str, draw: Callable[[Any], Any], size: tuple[float, float] = _SIZE, *,
                  key: str | None = None) -> Figure:
    """Call ``draw(ax)`` on a fresh Axes and return the PNG; a failure is returned, not raised.

    ``key``: a :func:`content_key` of everything ``draw`` depends on; a figure drawn before in this
    process with the same title, size and key is returned without drawing it again."""
    if key is not None:
        cached = _drawn.get((title, size, key))
        if cached is not None:
            return cached
        figure = render_figure(title, draw, size)
        if len(_drawn) >= _MAX_DRAWN:
            _drawn.pop(next(iter(_drawn)))
        _drawn[(title, size, key)] = figure
        return figure
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    _style()
    # a figure outside pyplot's registry: no figure manager to create and tear down for every image
    fig = MplFigure(figsize=size)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    try:
        returned = draw(ax)
        if returned is not None and hasattr(returned, "figure") and returned.figure is not fig:
            fig, ax = returned.figure, returned
        axes = fig.get_axes()
        if all(figure_is_empty(a) for a in axes):
            return Figure(title, error="the drawing function drew nothing")
        fig.tight_layout()
        # tight_layout leaves a placeholder layout engine behind, and savefig then lays out every tick
        # and label once more in a draw that renders nothing; the layout is already final
        fig.set_layout_engine(None)
        return Figure(title, base64.b64encode(_png(fig)).decode("ascii"))
    except Exception as exc:  # noqa: BLE001 - a broken figure must not break the report
        return Figure(title, error=f"{type(exc).__name__}: {exc}")
    finally:
        plt.close("all")  # a drawing function may have opened pyplot figures of its own


def _png(fig: Any) -> bytes:
    """The figure's pixels as PNG: one Agg draw (as savefig at _DPI) encoded by Pillow directly -- RGB when
    every pixel is opaque (the same image, a quarter less to compress), compression level 1 (zlib's
    fastest: a few percent larger, a third of the encoding time), no metadata beyond the resolution."""
    import numpy as np
    from PIL import Image

    if fig.dpi != _DPI:
        fig.set_dpi(_DPI)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())
    image = Image.fromarray(pixels[..., :3] if np.all(pixels[..., 3] == 255) else pixels)
    buffer = io.BytesIO()
    image.save(buffer, format="png", compress_level=1, dpi=(_DPI, _DPI))
    return buffer.getvalue()
