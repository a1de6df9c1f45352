"""Shared fixtures: the real data in ../shared/data and tiny generated image folders."""

import os
import socket

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shared_data_dir():
    """$TF_FINETUNE_DATA, else ../shared/data beside the repo."""
    root = os.environ.get("TF_FINETUNE_DATA") or os.path.join(REPO, "..", "shared", "data")
    return os.path.abspath(root)


@pytest.fixture
def shared_data():
    root = shared_data_dir()
    if not os.path.isdir(os.path.join(root, "plantvillage")):
        pytest.skip(f"real data not found at {root}; set TF_FINETUNE_DATA")
    return root


def smoke_train(project, dataset, tmp_path_factory, *args, needs=()):
    """`train --smoke` of `project` on the real `dataset` folder, with an export.

    For the CLI tests' module fixtures. Skips when the dataset (or a folder in `needs`) is
    missing; returns (data dir, run dir, export dir).
    """
    from tf_finetune.cli import main

    data = os.path.join(shared_data_dir(), dataset)
    missing = [path for path in (data, *needs) if not os.path.isdir(path)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not found; set TF_FINETUNE_DATA")
    out = tmp_path_factory.mktemp(project.name)
    run_dir, export_dir = str(out / "run"), str(out / "exports")
    status = main(project, ["train", "--smoke", "--data-dir", data, *args,
                            "--output-dir", run_dir, "--export-dir", export_dir])
    assert status == 0
    return data, run_dir, export_dir


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
