"""PNG plots: training curves, confusion matrix, image grids.

Figures are built with `matplotlib.figure.Figure()` and saved with `fig.savefig`, so no
pyplot state or global backend is touched, and matplotlib is imported only when a plot is
made. Every function writes the PNG to a temporary file in the destination directory and
moves it into place with `os.replace` (readers never see a half-written image), creates
parent directories, and returns the destination as a `pathlib.Path`.
"""

import collections.abc
import math
import pathlib
import textwrap

import numpy as np

from tf_finetune import files

_DPI = 100
_TITLE_CHARS = 30  # Characters per title line that fit over one 2.5-inch grid cell.


def plot_training_curves(history, path, *, stage_boundaries=(), title=None):
    """Plot train / validation curves per metric, one subplot per metric family.

    Args:
        history: a dict like Keras `History.history`, e.g. `{"loss": [...],
            "val_loss": [...], "accuracy": [...], "val_accuracy": [...],
            "learning_rate": [...]}`, or a `History` object. `val_<name>` is drawn in the
            same subplot as `<name>`. Subplots are ordered loss, accuracy, then the other
            names in the order they appear. Series that aren't one number per epoch (e.g. a
            per-class metric) are skipped. NaN / infinite values leave gaps in the curve.
        path: destination `.png` file.
        stage_boundaries: where each stage after the first started: epoch counts (the first
            stage ran 5 epochs -> `(5,)`), or `(epoch count, stage name)` pairs. A dashed
            vertical line is drawn between epoch `b` and `b + 1`, with the stage's name
            ("fine-tune" when none is given).
        title: optional figure title.

    Returns:
        `path` as a `pathlib.Path`.

    Raises:
        ValueError: `path` isn't a `.png`, `history` has no plottable series, or a stage
            boundary isn't a non-negative integer.
    """
    path = _check_png_path(path)
    fig = _training_curves_figure(history, stage_boundaries=stage_boundaries, title=title)
    _save_png(fig, path)
    return path


def plot_confusion_matrix(matrix, class_names, path, *, normalize=True, title=None):
    """Plot a confusion matrix as an annotated heatmap (rows = true, columns = predicted).

    Args:
        matrix: `[C, C]` counts, e.g. `report["confusion_matrix"]` from
            `tf_finetune.metrics.classification_report`.
        class_names: the `C` class names, in class-id order.
        path: destination `.png` file.
        normalize: if True, colour cells by the row-normalised fraction (recall per true
            class) and annotate each cell with the count and that percentage; if False,
            colour and annotate by count only. Rows with no examples show 0%.
        title: optional axes title.

    The figure grows with the number of classes and the length of the longest name; x
    labels are rotated and the saved image is cropped to include every label. Cell
    annotations are left out above 50 classes, where they would be unreadable.

    Returns:
        `path` as a `pathlib.Path`.

    Raises:
        ValueError: `path` isn't a `.png`, `matrix` isn't square, or its size doesn't match
            `class_names`.
    """
    path = _check_png_path(path)
    fig = _confusion_matrix_figure(matrix, class_names, normalize=normalize, title=title)
    _save_png(fig, path)
    return path


def plot_image_grid(images, path, *, titles=None, ncols=4, title=None):
    """Plot images in a grid, e.g. augmentation previews or misclassified examples.

    Args:
        images: `[N, H, W, 3]` (or `[N, H, W, 1]`) array or tensor. `uint8` is shown as is.
            Floats are taken as `[0, 255]` if the largest value in the batch is above 1.5,
            else as `[0, 1]`; values outside the range are clipped.
        path: destination `.png` file.
        titles: optional list of `N` strings, one per image (may contain newlines, e.g.
            `"true: X\\npred: Y (0.83)"`).
        ncols: images per row; fewer columns are used when there are fewer images.
        title: optional figure title.

    Returns:
        `path` as a `pathlib.Path`.

    Raises:
        ValueError: `path` isn't a `.png`, `images` is empty or badly shaped, `titles`
            doesn't have one entry per image, or `ncols` isn't a positive integer.
    """
    path = _check_png_path(path)
    fig = _image_grid_figure(images, titles=titles, ncols=ncols, title=title)
    _save_png(fig, path)
    return path


def plot_lr_find(result, path):
    """Plots a learning-rate range test: loss and smoothed loss against the rate (log axis),
    the suggestion marked.

    Args:
        result: a `tf_finetune.training.lr_finder.RangeTest`.
        path: destination `.png` file.
    """
    from matplotlib.figure import Figure

    path = _check_png_path(path)
    fig = Figure(figsize=(7.0, 4.0), layout="constrained")
    ax = fig.subplots()
    losses = np.asarray(result.losses, dtype=np.float64)
    ax.plot(result.rates, np.where(np.isfinite(losses), losses, np.nan), alpha=0.35, label="loss")
    ax.plot(result.rates[: len(result.smoothed)], result.smoothed, label="smoothed loss")
    ax.axvline(result.suggestion, color="tab:red", linestyle="--", linewidth=1,
               label=f"suggestion {result.suggestion:.2g} (valley)")
    ax.axvline(result.steepest_rate, color="tab:orange", linestyle=":", linewidth=1,
               label=f"steepest descent {result.steepest_rate:.2g}")
    ax.axvline(result.minimum_rate, color="gray", linestyle=":", linewidth=1,
               label=f"minimum {result.minimum_rate:.2g}")
    finite = [v for v in result.smoothed if np.isfinite(v)]
    if finite:  # from a little under the minimum to a little over where the sweep started
        low, top = min(finite), max(finite[0], min(finite)) * 1.25
        ax.set_ylim(low - 0.05 * (top - low), top + 1e-9)
    ax.set_xscale("log")
    ax.set(xlabel="learning rate", ylabel="training loss", title="Learning-rate range test")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    _save_png(fig, path)
    return path


# --- Figure builders (return a `Figure`; kept separate so tests can inspect them). ---


def _training_curves_figure(history, *, stage_boundaries=(), title=None):
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    history = getattr(history, "history", history)  # Accept a keras `History` object too.
    if not isinstance(history, collections.abc.Mapping):
        raise ValueError(
            f"`history` must be a dict of metric name -> per-epoch values. Received: history={history!r}"
        )
    if isinstance(stage_boundaries, (int, np.integer)):
        stage_boundaries = (stage_boundaries,)
    stage_boundaries = tuple(stage_boundaries)
    boundaries = []
    for item in stage_boundaries:
        boundary, name = item if isinstance(item, (tuple, list)) and len(item) == 2 else (item, "fine-tune")
        if (
            isinstance(boundary, bool)
            or not isinstance(boundary, (int, float, np.integer, np.floating))
            or not float(boundary).is_integer()
            or boundary < 0
        ):
            raise ValueError(
                "`stage_boundaries` must be non-negative epoch counts, or (epoch count, name) pairs. "
                f"Received: stage_boundaries={stage_boundaries!r}"
            )
        boundaries.append((int(boundary), str(name)))

    families = _metric_families(history)
    if not families:
        raise ValueError(
            "`history` has no per-epoch numeric series to plot. "
            f"Received: history with keys {list(history)}"
        )

    ncols = min(2, len(families))
    nrows = math.ceil(len(families) / ncols)
    fig = Figure(figsize=(6.0 * ncols, 3.6 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (family, series) in zip(axes, families.items()):
        for label, values in series:
            epochs = np.arange(1, len(values) + 1)
            ax.plot(epochs, values, marker="o", markersize=3, label=label)
        if _is_learning_rate(family) and _all_positive(series):
            ax.set_yscale("log")  # Schedules span decades; a linear axis flattens them.
        for boundary, name in boundaries:
            ax.axvline(boundary + 0.5, color="gray", linestyle="--", linewidth=1)
            ax.text(boundary + 0.6, 0.98, name, transform=ax.get_xaxis_transform(), rotation=90,
                    va="top", ha="left", fontsize="x-small", color="gray")
        ax.set_title(family)
        ax.set_xlabel("epoch")
        ax.set_ylabel(family)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    for ax in axes[len(families):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return fig


def _metric_families(history):
    """Group history series into `{family: [(label, float array), ...]}`, loss/accuracy first."""
    families = {}
    for key, values in history.items():
        array = _as_series(values)
        if array is None:
            continue
        key = str(key)
        is_val = key.startswith("val_")
        family = key[len("val_"):] if is_val else key
        families.setdefault(family, []).append(("validation" if is_val else "train", array))
    for family, series in families.items():
        series.sort(key=lambda item: item[0] != "train")  # train before validation
        if len(series) == 1 and series[0][0] == "train":
            # A series with no validation twin (e.g. learning_rate): label it by its name.
            series[0] = (family, series[0][1])
    first = [name for name in ("loss", "accuracy") if name in families]
    return {name: families[name] for name in first + [n for n in families if n not in first]}


def _is_learning_rate(name):
    return name in ("lr", "learning_rate") or name.endswith("_learning_rate")


def _all_positive(series):
    finite = np.concatenate([values[np.isfinite(values)] for _, values in series])
    return finite.size > 0 and bool(np.all(finite > 0))


def _as_series(values):
    """Return `values` as a 1-D float array (non-finite -> NaN), or None if not one number per epoch."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if array.ndim != 1 or array.size == 0:
        return None
    return np.where(np.isfinite(array), array, np.nan)


def _confusion_matrix_figure(matrix, class_names, *, normalize=True, title=None):
    from matplotlib.figure import Figure

    counts = np.asarray(matrix)
    names = [str(name) for name in class_names]
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"`matrix` must be square [C, C]. Received: matrix.shape={counts.shape}")
    if counts.shape[0] != len(names) or not names:
        raise ValueError(
            "`matrix` must be [C, C] for the C class names. "
            f"Received: matrix.shape={counts.shape}, len(class_names)={len(names)}"
        )
    counts = counts.astype(np.float64)
    num_classes = len(names)
    row_totals = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, row_totals, out=np.zeros_like(counts), where=row_totals != 0)
    colors = fractions if normalize else counts

    # Size: a fixed cell size (shrinking for many classes) plus room for the labels.
    cell = 0.8 if num_classes <= 10 else (0.6 if num_classes <= 25 else 0.5)
    label_inches = 0.08 * max(len(n) for n in names)
    side = min(max(num_classes * cell, 3.0), 28.0)
    fig = Figure(figsize=(side + label_inches + 2.0, side + 0.75 * label_inches + 1.5), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(colors, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else max(counts.max(), 1.0))
    colorbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    colorbar.set_label("fraction of true class" if normalize else "count")

    tick_size = 10 if num_classes <= 10 else (8 if num_classes <= 25 else 7)
    ax.set_xticks(range(num_classes), labels=names, rotation=45, ha="right", rotation_mode="anchor", fontsize=tick_size)
    ax.set_yticks(range(num_classes), labels=names, fontsize=tick_size)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)

    if num_classes <= 50:
        text_size = 10 if num_classes <= 10 else (7 if num_classes <= 25 else 6)
        for i in range(num_classes):
            for j in range(num_classes):
                text = f"{counts[i, j]:g}"
                if normalize:
                    text += f"\n{100 * fractions[i, j]:.1f}%"
                dark = colors[i, j] > 0.5 * (1.0 if normalize else max(counts.max(), 1.0))
                ax.text(j, i, text, ha="center", va="center", fontsize=text_size,
                        color="white" if dark else "black")
    return fig


def _image_grid_figure(images, *, titles=None, ncols=4, title=None):
    from matplotlib.figure import Figure

    pixels = _display_images(images)
    num_images = pixels.shape[0]
    if titles is not None:
        # Wrap long lines (class names have no spaces, so long words are split) so that
        # titles of neighbouring images don't run into each other.
        titles = [
            "\n".join(textwrap.fill(line, width=_TITLE_CHARS) or line for line in str(t).split("\n"))
            for t in titles
        ]
        if len(titles) != num_images:
            raise ValueError(
                "`titles` must have one entry per image. "
                f"Received: len(titles)={len(titles)}, images.shape={np.shape(images)}"
            )
    if isinstance(ncols, bool) or not isinstance(ncols, (int, np.integer)) or ncols < 1:
        raise ValueError(f"`ncols` must be a positive integer. Received: ncols={ncols!r}")

    ncols = min(int(ncols), num_images)
    nrows = math.ceil(num_images / ncols)
    height, width = pixels.shape[1:3]
    cell_width = 2.5
    title_lines = max((t.count("\n") + 1 for t in titles), default=0) if titles else 0
    cell_height = cell_width * height / width + 0.2 * title_lines
    fig = Figure(figsize=(cell_width * ncols, cell_height * nrows + (0.4 if title else 0.0)), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for index, ax in enumerate(axes):
        ax.axis("off")
        if index >= num_images:
            continue
        if pixels.shape[-1] == 1:
            ax.imshow(pixels[index, :, :, 0], cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(pixels[index])
        if titles:
            ax.set_title(titles[index], fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


def _display_images(images):
    """Return images as uint8 `[N, H, W, C]` (C = 1 or 3) ready for `imshow`."""
    array = np.asarray(images)
    if array.ndim != 4 or array.shape[-1] not in (1, 3) or array.shape[0] == 0:
        raise ValueError(
            "`images` must be a non-empty [N, H, W, 3] (or [N, H, W, 1]) array. "
            f"Received: images.shape={array.shape}"
        )
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.number) or array.dtype == bool:
        raise ValueError(f"`images` must be numeric. Received: images.dtype={array.dtype}")
    is_float = np.issubdtype(array.dtype, np.floating)
    array = array.astype(np.float64)
    finite = array[np.isfinite(array)]
    # One decision for the whole batch, so a dark [0, 255] image isn't mistaken for [0, 1].
    if is_float and (finite.size == 0 or finite.max() <= 1.5):
        array = array * 255.0
    array = np.nan_to_num(array, nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(np.round(array), 0, 255).astype(np.uint8)


# --- Saving ---


def _check_png_path(path):
    path = pathlib.Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"Plots are written as PNG; `path` must end in .png. Received: path={str(path)!r}")
    return path


def _save_png(fig, path):
    """Save `fig` as PNG to a temporary sibling of `path`, then `os.replace` it into place."""
    with files.atomic_path(path) as temp_path:
        fig.savefig(temp_path, format="png", dpi=_DPI, bbox_inches="tight")
