"""Rendering helpers: matplotlib figures to RGB frames, off-screen (Agg), for ``render_mode="rgb_array"``."""

from __future__ import annotations

import numpy as np

from quant_envs.atomic_io import atomic_path


def new_figure(width_in: float = 6.4, height_in: float = 3.6, dpi: int = 80):
    """A matplotlib Figure drawn by the Agg canvas (no display, no global pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def figure_to_rgb(fig) -> np.ndarray:
    """Draw ``fig`` (made by :func:`new_figure`) and return its pixels as uint8 [H, W, 3]."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def save_figure(fig, path, dpi: int = 120):
    """Write ``fig`` to ``path`` atomically (the format follows the extension); return the path."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    return path
