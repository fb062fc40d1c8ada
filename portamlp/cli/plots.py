"""Pictures: training curves, a confusion-matrix heatmap, a grid of misclassified digits, one
image distorted several ways, first-layer weights, one input through every layer.

Needs matplotlib (``pip install "portamlp[plot]"``); it is imported only when a plot is drawn,
with the non-interactive Agg canvas, so no window opens and no global backend is switched.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["plot_history", "history_figure", "plot_confusion", "plot_misclassified",
           "misclassified_figure", "plot_distortions", "distortions_figure", "plot_weights",
           "weights_figure", "plot_activations", "activations_figure", "require_matplotlib"]


def require_matplotlib() -> None:
    """Raise the ImportError that says what to install, before any work, if matplotlib is
    missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError('plotting needs matplotlib: pip install "portamlp[plot]"') from None


def _figure(*args, **kwargs):
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(*args, **kwargs)
    FigureCanvasAgg(fig)
    return fig


def plot_history(history: Sequence[dict], path, title: str = "") -> Path:
    """:func:`history_figure` saved as a PNG."""
    history_figure(history, title).savefig(path, dpi=110)
    return Path(path)


def history_figure(history: Sequence[dict], title: str = ""):
    """The training and validation costs and the validation accuracy (in %) per epoch, side by
    side, to a PNG (a run record's history; records written before portamlp said "cost" hold
    ``train_loss`` and ``validation_loss``). Epochs are whole numbers on the axes, even for a
    run of one epoch."""
    epochs = [h["epoch"] for h in history]
    fig = _figure(figsize=(9, 3.6), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(epochs, [h.get("train_cost", h.get("train_loss")) for h in history], marker="o",
             label="training (mean over the epoch)")
    costs = [(h["epoch"], h.get("validation_cost", h.get("validation_loss"))) for h in history]
    costs = [(e, c) for e, c in costs if c is not None]
    if costs:
        ax1.plot([e for e, _ in costs], [c for _, c in costs], marker="s", linestyle="--",
                 color="tab:orange", label="validation (after the epoch)")
    ax1.legend(fontsize=8)
    ax1.set(xlabel="epoch", ylabel="mean cost", title="cost")
    val = [(h["epoch"], h["validation_accuracy"]) for h in history
           if h.get("validation_accuracy") is not None]
    if val:
        ax2.plot([e for e, _ in val], [100 * a for _, a in val], marker="o", color="tab:green")
    else:
        ax2.text(0.5, 0.5, "no validation set", ha="center", va="center", transform=ax2.transAxes)
    ax2.set(xlabel="epoch", ylabel="accuracy (%)", title="validation accuracy")
    from matplotlib.ticker import MaxNLocator

    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        if epochs:
            ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if title:
        fig.suptitle(title)
    return fig


def plot_confusion(matrix: np.ndarray, path, title: str = "confusion matrix",
                   names: Sequence[str] | None = None) -> Path:
    """A heatmap of ``matrix[true, predicted]`` with the counts written in each cell (the
    classes labelled by ``names`` when given)."""
    k = matrix.shape[0]
    fig = _figure(figsize=(6.4, 5.6), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(np.log1p(matrix), cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if matrix[i, j] > matrix.max() / 3 else "black")
    ax.set(xticks=range(k), yticks=range(k), xlabel="predicted", ylabel="true", title=title)
    if names is not None:
        ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
        ax.set_yticklabels(names, fontsize=8)
    fig.colorbar(im, ax=ax, label="log(1 + count)")
    fig.savefig(path, dpi=110)
    return Path(path)


def _image_side(images: np.ndarray) -> int:
    """The side of square images stored as rows (784 -> 28); refuses other feature vectors."""
    n_features = int(np.prod(images.shape[1:]))
    side = int(round(n_features ** 0.5))
    if side * side != n_features:
        raise ValueError(f"cannot draw rows of {n_features} features as images: "
                         "plot_misclassified draws square images (28×28 = 784 features, ...)")
    return side


def plot_misclassified(images: np.ndarray, true: np.ndarray, predicted: np.ndarray, path,
                       limit: int = 36, names: Sequence[str] | None = None,
                       what: str = "test images") -> Path:
    """:func:`misclassified_figure` saved as a PNG."""
    misclassified_figure(images, true, predicted, limit, names, what).savefig(path, dpi=110)
    return Path(path)


def misclassified_figure(images: np.ndarray, true: np.ndarray, predicted: np.ndarray,
                         limit: int = 36, names: Sequence[str] | None = None,
                         what: str = "test images"):
    """A grid of misclassified images, each titled "true → predicted" (class names from
    ``names`` when given), which the figure's title explains.

    ``images`` holds one square image per row, flattened (n, side²) or not (n, side, side).
    """
    images = np.asarray(images)
    side = _image_side(images)
    wrong = np.flatnonzero(true != predicted)[:limit]
    cols = 6
    rows = max(1, -(-len(wrong) // cols))
    fig = _figure(figsize=(cols * 1.3, rows * 1.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes:
        ax.axis("off")
    label = (lambda c: names[c]) if names is not None else str
    for ax, i in zip(axes, wrong):
        ax.imshow(images[i].reshape(side, side), cmap="gray_r")
        ax.set_title(f"{label(int(true[i]))} → {label(int(predicted[i]))}",
                     fontsize=10 if names is None else 7)
    if not len(wrong):
        axes[0].text(0.5, 0.5, "no mistakes", ha="center", va="center")
    fig.suptitle(f"misclassified {what} (first {len(wrong)}); each titled true → predicted")
    return fig


def plot_distortions(original: np.ndarray, rows: Sequence[tuple[str, np.ndarray]], path,
                     title: str = "") -> Path:
    """:func:`distortions_figure` saved as a PNG."""
    distortions_figure(original, rows, title).savefig(path, dpi=110)
    return Path(path)


def distortions_figure(original: np.ndarray, rows: Sequence[tuple[str, np.ndarray]],
                       title: str = ""):
    """One image (first column) and rows of distorted copies of it, each row labelled with
    the distortion that made it. ``rows``: ``(label, images (n, side²))`` pairs; pixels are
    drawn on the original's grey scale (ink dark)."""
    original = np.asarray(original).reshape(-1)
    side = _image_side(original[None, :])
    n = max(len(images) for _, images in rows)
    fig = _figure(figsize=(1.1 * (n + 1) + 1.2, 1.15 * len(rows) + 0.5), layout="constrained")
    axes = np.asarray(fig.subplots(len(rows), n + 1, squeeze=False))
    low, high = float(original.min()), float(original.max())
    for r, (label, images) in enumerate(rows):
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.imshow(original.reshape(side, side), cmap="gray_r", vmin=low, vmax=high)
                ax.set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
                if r == 0:
                    ax.set_title("original", fontsize=8)
            elif c - 1 < len(images):
                ax.imshow(np.asarray(images[c - 1]).reshape(side, side), cmap="gray_r",
                          vmin=low, vmax=high)
            else:
                ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_weights(weights: np.ndarray, path, title: str = "") -> Path:
    """:func:`weights_figure` saved as a PNG."""
    weights_figure(weights, title).savefig(path, dpi=110)
    return Path(path)


def weights_figure(weights: np.ndarray, title: str = ""):
    """The incoming weights of first-layer units, one square image each (``weights``: (units,
    side²)), each scaled to its own largest magnitude: blue positive, red negative (a
    diverging map that reads without red-green vision), white zero."""
    weights = np.asarray(weights, dtype=np.float64)
    side = _image_side(weights)
    units = weights.shape[0]
    cols = min(16, units)
    rows = -(-units // cols)
    fig = _figure(figsize=(0.75 * cols + 0.6, 0.75 * rows + 0.9), layout="constrained")
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False)).ravel()
    for j, ax in enumerate(axes):
        ax.axis("off")
        if j < units:
            top = max(float(np.abs(weights[j]).max()), 1e-12)
            ax.imshow(weights[j].reshape(side, side), cmap="RdBu", vmin=-top, vmax=top)
            ax.set_title(str(j), fontsize=6, pad=1)
    fig.suptitle(title or f"incoming weights of {units} first-layer units (blue positive, "
                          "red negative)", fontsize=10)
    return fig


def plot_activations(pixels: np.ndarray, layers: Sequence[np.ndarray], path,
                     names: Sequence[str] | None = None, title: str = "") -> Path:
    """:func:`activations_figure` saved as a PNG."""
    activations_figure(pixels, layers, names, title).savefig(path, dpi=110)
    return Path(path)


def activations_figure(pixels: np.ndarray, layers: Sequence[np.ndarray],
                       names: Sequence[str] | None = None, title: str = ""):
    """One input through every layer: the image, each hidden layer's activations as a grid of
    cells (unit 0 at the top left, in reading order; viridis, which reads in grey and without
    red-green vision), and the output layer as bars labelled with the class names, the
    prediction highlighted."""
    pixels = np.asarray(pixels).reshape(-1)
    side = _image_side(pixels[None, :])
    hidden, output = [np.asarray(a, dtype=np.float64) for a in layers[:-1]], \
        np.asarray(layers[-1], dtype=np.float64)
    fig = _figure(figsize=(2.6 * (len(hidden) + 2), 3.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(hidden) + 2))
    axes[0].imshow(pixels.reshape(side, side), cmap="gray_r")
    axes[0].set_title(f"input {side}×{side}", fontsize=9)
    axes[0].axis("off")
    for l, (ax, a) in enumerate(zip(axes[1:], hidden), start=1):
        cols = int(np.ceil(np.sqrt(a.size)))
        cells = np.full(cols * (-(-a.size // cols)), np.nan)
        cells[:a.size] = a
        im = ax.imshow(cells.reshape(-1, cols), cmap="viridis")
        ax.set_title(f"hidden {l}: {a.size} units\n{int((a > 0).sum())} active, max "
                     f"{a.max():.3g}", fontsize=9)
        ax.axis("off")
        fig.colorbar(im, ax=ax, shrink=0.7)
    ax = axes[-1]
    labels = list(names) if names is not None else [str(k) for k in range(output.size)]
    top = int(np.argmax(output))
    ax.barh(range(output.size), output,
            color=["tab:blue" if k == top else "0.7" for k in range(output.size)])
    ax.set_yticks(range(output.size), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_title(f"output: {labels[top]}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
