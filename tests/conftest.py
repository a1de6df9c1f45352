"""Shared fixtures: the real data in ../shared/data and tiny generated image folders.

The real data is `$TF_FINETUNE_DATA`, which defaults to ../shared/data beside the repo (set
here, before any test imports the product, so a plain `python -m pytest` finds it). A test
whose data is missing is skipped, except in CI (`CI=true` or `CI=1`), where it fails: there a
missing data folder is a broken checkout, not a machine without the data.
"""

import os
import socket

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_FINETUNE_DATA", os.path.join(os.path.dirname(REPO), "shared", "data"))


def _share_the_cores():
    """Under pytest-xdist, gives each worker (and the processes and notebook kernels it starts)
    its share of the cores as TensorFlow threads, instead of every worker's TensorFlow taking
    them all. Measured on 2 cores, 2 workers: the same three test files in 0.86 and 0.91 of the
    time. Set before any test imports TensorFlow; a value already in the environment wins."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if workers > 1:
        share = str(max(1, (os.cpu_count() or 1) // workers))
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", share)
        os.environ.setdefault("TF_NUM_INTEROP_THREADS", share)


_share_the_cores()

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def shared_data_dir():
    """The real data folder: $TF_FINETUNE_DATA (../shared/data beside the repo unless set)."""
    return os.path.abspath(os.environ.get("TF_FINETUNE_DATA") or os.path.join(REPO, "..", "shared", "data"))


def in_ci():
    """Whether this is a CI run (`CI=true` or `CI=1`), where missing data is an error."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def require_data(*parts):
    """The path `parts` under the real data folder; skips the test when it is missing
    (fails it in CI). Every test that needs the real data comes through here."""
    path = os.path.join(shared_data_dir(), *parts)
    if not os.path.exists(path):
        reason = (f"real data {path} not found: set TF_FINETUNE_DATA to the shared data folder "
                  "(default ../shared/data beside the repo)")
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return path


MINILM_PARTS = ("weights", "all-MiniLM-L6-v2")
MINILM = os.path.join(shared_data_dir(), *MINILM_PARTS)  # bert_classifier's offline preset


# The slowest files, slowest first (about 320 to 60 s each on 2 cores). With `--dist loadfile`
# a worker takes a whole file; these go out first, so that no long file starts last and runs
# alone at the end (xdist's own reordering, by number of tests, put the notebooks last; it is
# off in setup.cfg). The other files keep their order.
SLOW_FILES = (
    "test_notebooks_techniques.py", "test_notebooks.py", "test_tune_cli.py", "test_plant_cnn_cli.py",
    "test_sentiment_cli.py", "test_text_exports.py", "test_translation_cli.py",
    "test_bert_cli.py", "test_trainer.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_FILES)))


@pytest.fixture(autouse=True)
def _restore_op_determinism():
    """Turns TensorFlow's op determinism off again after a test that turned it on (an
    in-process `--deterministic` run): it is process-wide, and later tests in the same worker
    would run under it."""
    yield
    import sys

    config = sys.modules.get("tensorflow.python.framework.config")
    if config is not None and config.is_op_determinism_enabled():
        config.disable_op_determinism()


@pytest.fixture
def shared_data():
    """The real data folder (skips, or fails in CI, when it has no plantvillage/)."""
    require_data("plantvillage")
    return shared_data_dir()


@pytest.fixture
def minilm():
    """The offline all-MiniLM-L6-v2 preset folder (skips, or fails in CI, when missing)."""
    return require_data(*MINILM_PARTS)


def free_ports(n):
    """`n` TCP ports on 127.0.0.1 that were free a moment ago (for TF_CONFIG clusters)."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def write_image(path, size=(32, 32), color=None, fmt=None, seed=0):
    """Writes a small random (or solid) RGB image with TensorFlow's encoders."""
    import tensorflow as tf

    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    if color is None:
        pixels = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
    else:
        pixels = np.broadcast_to(np.asarray(color, np.uint8), (*size, 3)).copy()
    fmt = fmt or ("png" if path.endswith(".png") else "jpeg")
    data = tf.io.encode_png(pixels) if fmt == "png" else tf.io.encode_jpeg(pixels)
    with open(path, "wb") as f:
        f.write(data.numpy())
    return path


@pytest.fixture
def image_folder_factory(tmp_path):
    """Makes ROOT/<class>/<i>.jpg with `per_class` images per class."""

    def make(classes=("a", "b"), per_class=6, size=(32, 32), name="data"):
        root = tmp_path / name
        for c, cls in enumerate(classes):
            for i in range(per_class):
                color = (200, 30, 30) if c == 0 else (30, 30, 200) if c == 1 else (30, 200, 30)
                write_image(str(root / cls / f"{i}.jpg"), size=size, color=color)
        return str(root)

    return make
