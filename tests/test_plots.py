import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib.image
import numpy as np
import pytest
from matplotlib.figure import Figure

from tf_finetune.reporting import plots
from tf_finetune.reporting.plots import plot_confusion_matrix, plot_image_grid, plot_training_curves

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LONG_NAMES = [
    "Apple___Cedar_apple_rust",
    "Tomato___Tomato_Yellow_Leaf_Curl_Virus",
    "Corn_(maize)___Cercospora_leaf_spot Gray_leaf_spot",
    "b",
]
HISTORY = {
    "loss": [1.2, 0.9, 0.7, 0.6, 0.5, 0.45],
    "val_loss": [1.3, 1.0, 0.8, 0.75, 0.7, 0.65],
    "accuracy": [0.5, 0.6, 0.7, 0.75, 0.8, 0.85],
    "val_accuracy": [0.45, 0.55, 0.65, 0.7, 0.72, 0.74],
    "learning_rate": [1e-3, 1e-3, 1e-3, 1e-5, 1e-5, 1e-5],
}


def _read_png(path):
    """Check the PNG signature and return the decoded (height, width)."""
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    pixels = matplotlib.image.imread(path)
    return pixels.shape[:2]


def _only_file(directory):
    return sorted(os.listdir(directory))


def test_training_curves_png_with_one_subplot_per_metric_family(tmp_path):
    path = tmp_path / "plots" / "curves.png"  # parent doesn't exist yet

    returned = plot_training_curves(HISTORY, path, stage_boundaries=(3,), title="run 1")

    assert returned == path
    height, width = _read_png(path)
    assert 300 < width < 3000 and 300 < height < 3000
    assert _only_file(path.parent) == ["curves.png"]

    fig = plots._training_curves_figure(HISTORY, stage_boundaries=[(3, "fine-tune"), (5, "all")])
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["loss", "accuracy", "learning_rate"]
    loss_lines = {line.get_label(): line for line in axes[0].get_lines() if not line.get_label().startswith("_")}
    assert set(loss_lines) == {"train", "validation"}
    np.testing.assert_array_equal(loss_lines["train"].get_xdata(), [1, 2, 3, 4, 5, 6])  # 1-based
    np.testing.assert_allclose(loss_lines["validation"].get_ydata(), HISTORY["val_loss"])
    # The second stage began after 3 epochs: its line sits between epoch 3 and epoch 4, named.
    boundaries = [line for line in axes[0].get_lines() if line.get_linestyle() == "--"]
    assert [line.get_xdata()[0] for line in boundaries] == [pytest.approx(3.5), pytest.approx(5.5)]
    assert [text.get_text() for text in axes[0].texts] == ["fine-tune", "all"]
    assert axes[2].get_yscale() == "log"


def test_training_curves_group_other_metrics_and_order_loss_first():
    history = {
        "val_auc": [0.6, 0.7],
        "auc": [0.5, 0.8],
        "accuracy": [0.5, 0.6],
        "loss": [1.0, 0.8],
        "per_class_f1": [[0.1, 0.2], [0.3, 0.4]],  # not one number per epoch: skipped
    }
    fig = plots._training_curves_figure(history)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["loss", "accuracy", "auc"]
    assert [line.get_label() for line in axes[2].get_lines()] == ["train", "validation"]


def test_training_curves_survive_nan_and_inf(tmp_path):
    history = {
        "loss": [1.0, float("nan"), 0.5, float("inf")],
        "val_loss": [float("nan")] * 4,
        "accuracy": [0.1, 0.2, np.float32("nan"), 0.4],
    }
    path = plot_training_curves(history, tmp_path / "nan.png", stage_boundaries=[2])
    height, width = _read_png(path)
    assert width > 100 and height > 100


@pytest.mark.parametrize(
    "history, boundaries, match",
    [
        ({}, (), "no per-epoch numeric series"),
        ({"loss": []}, (), "no per-epoch numeric series"),
        ([1.0, 2.0], (), "must be a dict"),
        ({"loss": [1.0]}, (-1,), r"stage_boundaries.*Received: stage_boundaries=\(-1,\)"),
        ({"loss": [1.0]}, (1.5,), "stage_boundaries"),
    ],
)
def test_training_curves_bad_input(tmp_path, history, boundaries, match):
    with pytest.raises(ValueError, match=match):
        plot_training_curves(history, tmp_path / "x.png", stage_boundaries=boundaries)
    assert not (tmp_path / "x.png").exists()


def test_confusion_matrix_png_with_counts_and_percentages(tmp_path):
    matrix = [[8, 2, 0, 0], [1, 9, 0, 0], [0, 0, 5, 5], [0, 0, 0, 0]]

    path = plot_confusion_matrix(matrix, LONG_NAMES, tmp_path / "cm.png", title="val")

    height, width = _read_png(path)
    assert 300 < width < 4000 and 300 < height < 4000
    assert _only_file(tmp_path) == ["cm.png"]

    ax = plots._confusion_matrix_figure(matrix, LONG_NAMES).axes[0]
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    assert texts[(0, 0)] == "8\n80.0%"
    assert texts[(2, 3)] == "5\n50.0%"
    assert texts[(3, 3)] == "0\n0.0%"  # empty row: 0%, no NaN
    assert [label.get_text() for label in ax.get_xticklabels()] == LONG_NAMES
    assert [label.get_text() for label in ax.get_yticklabels()] == LONG_NAMES
    assert ax.get_xticklabels()[0].get_rotation() == pytest.approx(45)

    raw = plots._confusion_matrix_figure(matrix, LONG_NAMES, normalize=False).axes[0]
    assert {t.get_text() for t in raw.texts} == {"0", "1", "2", "5", "8", "9"}


def test_confusion_matrix_long_names_are_not_cut_off(tmp_path):
    # The saved image is cropped to fit everything drawn, so long tick labels make it wider
    # than the same matrix with short names instead of being clipped at the figure edge.
    matrix = np.eye(4, dtype=int) * 3
    short = plot_confusion_matrix(matrix, list("abcd"), tmp_path / "short.png")
    long = plot_confusion_matrix(matrix, LONG_NAMES, tmp_path / "long.png")
    short_h, short_w = _read_png(short)
    long_h, long_w = _read_png(long)
    assert long_w > short_w + 150
    assert long_h > short_h + 100  # rotated x labels need vertical room too


def test_confusion_matrix_tick_labels_fit_inside_the_figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    names = [f"Tomato___Tomato_Yellow_Leaf_Curl_Virus_{i}" for i in range(12)]
    fig = plots._confusion_matrix_figure(np.eye(12), names)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    ax = fig.axes[0]
    width, height = fig.bbox.width, fig.bbox.height
    for label in ax.get_xticklabels() + ax.get_yticklabels():
        box = label.get_window_extent(renderer)
        assert box.x0 >= 0 and box.y0 >= 0, label.get_text()
        assert box.x1 <= width and box.y1 <= height, label.get_text()


def test_confusion_matrix_figure_grows_with_class_count(tmp_path):
    small = plots._confusion_matrix_figure(np.eye(3), ["a", "b", "c"])
    names = [f"class_{i}" for i in range(20)]
    large = plots._confusion_matrix_figure(np.eye(20), names)
    assert large.get_size_inches()[0] > small.get_size_inches()[0] * 2
    assert large.get_size_inches()[1] > small.get_size_inches()[1] * 2


def test_confusion_matrix_shape_mismatch_raises(tmp_path):
    with pytest.raises(ValueError, match=r"matrix.shape=\(3, 3\), len\(class_names\)=2"):
        plot_confusion_matrix(np.eye(3), ["a", "b"], tmp_path / "cm.png")
    with pytest.raises(ValueError, match=r"square.*\(2, 3\)"):
        plot_confusion_matrix(np.ones((2, 3)), ["a", "b"], tmp_path / "cm.png")


def test_image_grid_png_with_fewer_images_than_a_row(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(3, 32, 48, 3), dtype=np.uint8)
    titles = ["true: Apple___Cedar_apple_rust\npred: b (0.83)", "true: b\npred: b (0.99)", "x"]

    path = plot_image_grid(images, tmp_path / "grid.png", titles=titles, ncols=4, title="errors")

    height, width = _read_png(path)
    assert 200 < width < 2000 and 100 < height < 2000
    fig = plots._image_grid_figure(images, titles=titles, ncols=4)
    assert len(fig.axes) == 3  # one row of three, not four columns with an empty slot
    assert fig.axes[0].get_title().startswith("true: Apple___Cedar_apple_rust")
    assert fig.axes[1].get_title() == "true: b\npred: b (0.99)"


def test_image_grid_partial_last_row(tmp_path):
    images = np.zeros((5, 16, 16, 3), dtype=np.uint8)
    fig = plots._image_grid_figure(images, ncols=4)
    assert len(fig.axes) == 8  # 2 rows x 4
    assert sum(bool(ax.get_images()) for ax in fig.axes) == 5
    _read_png(plot_image_grid(images, tmp_path / "grid.png", ncols=4))


def test_image_grid_scales_float_images_for_display():
    base = np.random.default_rng(1).integers(0, 256, size=(2, 8, 8, 3)).astype(np.uint8)
    as_unit = base.astype(np.float32) / 255.0
    as_255 = base.astype(np.float32)

    np.testing.assert_array_equal(plots._display_images(as_unit), base)
    np.testing.assert_array_equal(plots._display_images(as_255), base)
    np.testing.assert_array_equal(plots._display_images(base), base)
    # A dark [0, 255] batch (max 1.0 is not above the [0, 1] threshold) is judged as a
    # whole: one bright image in the batch keeps the dark one from being stretched.
    dark_and_bright = np.stack([np.full((4, 4, 3), 1.0), np.full((4, 4, 3), 200.0)])
    assert plots._display_images(dark_and_bright)[0].max() == 1
    # Out-of-range augmentation output is clipped, NaN shown as black.
    odd = np.array([[[[-0.2, 1.2, np.nan]]]], dtype=np.float32)
    np.testing.assert_array_equal(plots._display_images(odd), [[[[0, 255, 0]]]])


@pytest.mark.parametrize(
    "images, kwargs, match",
    [
        (np.zeros((0, 8, 8, 3)), {}, r"images.shape=\(0, 8, 8, 3\)"),
        (np.zeros((8, 8, 3)), {}, r"images.shape=\(8, 8, 3\)"),
        (np.zeros((2, 8, 8, 3)), {"titles": ["only one"]}, r"len\(titles\)=1"),
        (np.zeros((2, 8, 8, 3)), {"ncols": 0}, r"ncols=0"),
    ],
)
def test_image_grid_bad_input(tmp_path, images, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_image_grid(images, tmp_path / "grid.png", **kwargs)


def test_non_png_path_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"\.png.*Received: path="):
        plot_image_grid(np.zeros((1, 4, 4, 3)), tmp_path / "grid.jpg")


def test_failed_save_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = plot_training_curves(HISTORY, tmp_path / "curves.png")
    before = path.read_bytes()

    def broken_savefig(self, fname, **kwargs):
        with open(fname, "wb") as f:
            f.write(b"partial")  # a half-written file, then the failure
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        plot_training_curves({"loss": [3.0, 2.0]}, path)

    assert path.read_bytes() == before
    assert _only_file(tmp_path) == ["curves.png"]


def test_overwrites_existing_png_in_place(tmp_path):
    path = tmp_path / "grid.png"
    path.write_bytes(b"old")
    plot_image_grid(np.zeros((1, 8, 8, 3), dtype=np.uint8), path)
    _read_png(path)
    assert _only_file(tmp_path) == ["grid.png"]
