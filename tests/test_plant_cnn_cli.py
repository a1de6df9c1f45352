"""End to end on the real PlantVillage images: train --smoke, export, serve raw JPEG bytes."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from projects.plant_cnn.project import PROJECT
from tests.conftest import REPO, smoke_train, write_image
from tf_finetune.cli import main


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    return smoke_train(PROJECT, "plantvillage", tmp_path_factory)


def test_train_writes_a_complete_run_dir(smoke_run):
    _, run_dir, _ = smoke_run
    for name in ("config.json", "run.json", "metrics.json", "history.csv", "state.json",
                 "training_curves.png", "confusion_matrix.png", "checkpoints/best.keras"):
        assert os.path.isfile(os.path.join(run_dir, name)), name
    assert any(f.startswith("events") for _, _, fs in os.walk(os.path.join(run_dir, "logs")) for f in fs)
    with open(os.path.join(run_dir, "metrics.json")) as f:
        report = json.load(f)
    assert len(report["per_class"]) == 7
    # Pretrained features separate these leaves even after a seconds-long run (chance: 1/7).
    assert report["accuracy"] >= 0.6, report["accuracy"]
    # Image runs also show the augmentation and the mistakes.
    assert os.path.isfile(os.path.join(run_dir, "augmentation.png"))
    assert os.path.isfile(os.path.join(run_dir, "misclassified.png")) == (report["accuracy"] < 1.0)


def test_savedmodel_serves_raw_jpeg_bytes_like_keras(smoke_run):
    data, run_dir, export_dir = smoke_run
    version = os.path.join(export_dir, "1")
    assert sorted(os.listdir(export_dir)) == ["1"]  # no temp dirs left behind
    with open(os.path.join(version, "assets", "labels.txt")) as f:
        labels = f.read().split()
    assert labels == sorted(os.listdir(data))[:7] or len(labels) == 7

    with open(os.path.join(run_dir, "run.json")) as f:
        files = json.load(f)["examples"]
    raw = [open(p, "rb").read() for p in files]
    serving = tf.saved_model.load(version).signatures["serving_default"]
    out = serving(tf.constant(raw))
    probs = out["probabilities"].numpy()
    assert probs.shape == (len(raw), 7) and out["probabilities"].dtype == tf.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert [l.decode() for l in out["labels"].numpy()] == [labels[i] for i in probs.argmax(1)]

    import keras
    model = keras.models.load_model(os.path.join(run_dir, "checkpoints", "best.keras"))
    expected = model(PROJECT.preprocess(_config(run_dir))(tf.constant(raw)), training=False)
    assert np.max(np.abs(probs - np.asarray(expected))) <= 1e-5


def _config(run_dir):
    from tf_finetune.config import load_run_config
    return load_run_config(PROJECT.config_class, os.path.join(run_dir, "config.json"))


def test_predict_from_run_and_savedmodel_agree(smoke_run, capsys):
    _, run_dir, export_dir = smoke_run
    with open(os.path.join(run_dir, "run.json")) as f:
        files = json.load(f)["examples"][:3]
    capsys.readouterr()
    assert main(PROJECT, ["predict", "--model", export_dir, "--json", *files]) == 0
    from_savedmodel = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert main(PROJECT, ["predict", "--model", run_dir, "--json", *files]) == 0
    from_run = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert [r["label"] for r in from_run] == [r["label"] for r in from_savedmodel]
    np.testing.assert_allclose([r["probabilities"] for r in from_run],
                               [r["probabilities"] for r in from_savedmodel], atol=1e-5)


def test_evaluate_prints_per_class_table_and_export_adds_a_version(smoke_run, capsys):
    _, run_dir, export_dir = smoke_run
    assert main(PROJECT, ["evaluate", "--run-dir", run_dir]) == 0
    out = capsys.readouterr().out
    assert "Potato___Late_blight" in out and "macro" in out
    assert main(PROJECT, ["export", "--run-dir", run_dir, "--export-dir", export_dir]) == 0
    assert sorted(os.listdir(export_dir)) == ["1", "2"]


def test_corrupt_jpeg_among_good_ones_is_skipped_and_counted(tmp_path, capsys):
    root = tmp_path / "data"
    for cls, color in (("red", (220, 20, 20)), ("blue", (20, 20, 220))):
        for i in range(6):
            write_image(str(root / cls / f"{i}.jpg"), size=(40, 40), color=color)
    (root / "red" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 100)
    run_dir = str(tmp_path / "run")
    status = main(PROJECT, ["train", "--smoke", "--data-dir", str(root), "--output-dir", run_dir,
                            "--backbone", "seed_cnn", "--image-size", "32", "--fine-tune-epochs", "0"])
    assert status == 0
    with open(os.path.join(run_dir, "run.json")) as f:
        assert json.load(f)["data"]["skipped"] == {"unreadable": 1}


def _cli(*args, cwd=REPO):
    env = dict(os.environ, TF_FINETUNE_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "projects.plant_cnn", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _bad_case(tmp_path, case):
    """Builds the bad input for `case`; returns (args, expected text in the error line)."""
    good = tmp_path / "good"
    for cls in ("a", "b"):
        for i in range(3):
            write_image(str(good / cls / f"{i}.jpg"), size=(32, 32), seed=i)
    common = ["--smoke", "--output-dir", str(tmp_path / "run")]
    if case == "empty folder":
        (tmp_path / "empty").mkdir()
        return ["train", "--data-dir", str(tmp_path / "empty"), *common], "no class subfolders"
    if case == "one class":
        write_image(str(tmp_path / "one" / "only" / "1.jpg"))
        return ["train", "--data-dir", str(tmp_path / "one"), *common], "one class only"
    if case == "wrong weights path":
        return ["train", "--data-dir", str(good), "--weights", str(tmp_path / "nope.h5"), *common], \
            "--weights"
    if case == "export dir is a file":
        (tmp_path / "file").write_text("x")
        return ["train", "--data-dir", str(good), "--export-dir", str(tmp_path / "file"), *common], \
            "--export-dir"
    if case == "not a run dir":
        return ["export", "--run-dir", str(good)], "not a training run"
    if case == "predict with no model":
        return ["predict", "--model", str(tmp_path / "nothing"), str(good / "a" / "0.jpg")], \
            "is not a SavedModel"
    if case == "unknown setting in config":
        (tmp_path / "c.json").write_text('{"learning_rat": 0.1}')
        return ["train", "--data-dir", str(good), "--config", str(tmp_path / "c.json"), *common], \
            "unknown setting(s) learning_rat"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["empty folder", "one class", "wrong weights path",
                                  "export dir is a file", "not a run dir", "predict with no model",
                                  "unknown setting in config"])
def test_bad_input_is_one_line_and_nonzero_exit(tmp_path, case):
    args, expected = _bad_case(tmp_path, case)
    result = _cli(*args)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "run" / "checkpoints")
