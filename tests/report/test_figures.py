"""Embedded figures: the direct Agg-to-Pillow PNG shows exactly what matplotlib's savefig shows, and a
figure keyed by its content is drawn once."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
import pytest

from impact.report import figures
from impact.report.figures import content_key, render_figure


def _draw(ax):
    x = np.linspace(0, 10, 60)
    ax.plot(x, np.sin(x), label="sin")
    ax.fill_between(x, np.sin(x) - 0.2, np.sin(x) + 0.2, alpha=0.3)
    ax.scatter(x[::7], np.cos(x[::7]), label="cos")
    ax.set_title("A title with ünïcode − minus")
    ax.set_xlabel("year")
    ax.legend()
    return ax


def _pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


@pytest.mark.parametrize("size", [(7.2, 4.0), (6.4, 3.6), (7.2, 2.1)])
def test_png_has_the_pixels_savefig_writes(size):
    # Independent source: matplotlib's own savefig(format="png") of the same figure after the same layout.
    import matplotlib.pyplot as plt

    figure = render_figure("t", _draw, size=size)
    assert figure.error is None
    fig, ax = plt.subplots(figsize=size)
    _draw(ax)
    fig.tight_layout()
    fig.set_layout_engine(None)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=figures._DPI, metadata={"Software": None})
    plt.close(fig)
    ours, reference = _pixels(base64.b64decode(figure.png_base64)), _pixels(buffer.getvalue())
    assert ours.shape == reference.shape
    assert np.array_equal(ours, reference)


def test_a_figure_keyed_by_its_content_is_drawn_once():
    calls = []

    def draw(ax):
        calls.append(1)
        return _draw(ax)

    frame = pd.DataFrame({"period": [2020, 2021], "actual": [1.0, 2.5]})
    first = render_figure("keyed", draw, key=content_key(frame, "NB_X"))
    again = render_figure("keyed", draw, key=content_key(frame.copy(), "NB_X"))  # equal content, another object
    assert again is first and len(calls) == 1
    changed = frame.assign(actual=[1.0, 2.6])
    other = render_figure("keyed", draw, key=content_key(changed, "NB_X"))
    assert len(calls) == 2 and other.png_base64 == first.png_base64  # drawn again (the drawing ignores the data here)
    render_figure("keyed", draw)  # no key: always drawn
    assert len(calls) == 3


def test_content_key_tells_apart_values_dtypes_order_and_columns():
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    key = content_key(frame)
    assert content_key(frame.set_axis([5, 6])) == key  # the index is not drawn
    assert content_key(frame.assign(a=[1, 3])) != key
    assert content_key(frame.astype({"a": float})) != key
    assert content_key(frame.iloc[::-1].reset_index(drop=True)) != key
    assert content_key(frame.rename(columns={"b": "c"})) != key
    assert content_key(frame, "x") != content_key(frame, "y")
    assert content_key(pd.Series([1.0], index=["a"])) != content_key(pd.Series([1.0], index=["b"]))
