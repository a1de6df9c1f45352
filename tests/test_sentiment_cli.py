"""End to end on real IMDB reviews: train --smoke, export, serve raw UTF-8 strings."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from projects.sentiment_lstm.project import PROJECT
from tests.conftest import REPO, shared_data_dir, smoke_train
from tf_finetune.cli import main

REVIEWS = [
    "One of the best films I have seen in years: moving, funny and beautifully acted.",
    "A boring, badly written mess. I want my two hours back.",
    "Ein großartiger Film! 素晴らしい映画 — naïve but charming.",
]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    return smoke_train(PROJECT, "imdb", tmp_path_factory)


def test_smoke_train_learns_from_real_reviews(smoke_run):
    _, run_dir, _ = smoke_run
    for name in ("config.json", "run.json", "metrics.json", "history.csv", "training_curves.png",
                 "confusion_matrix.png", "checkpoints/best.keras"):
        assert os.path.isfile(os.path.join(run_dir, name)), name
    with open(os.path.join(run_dir, "metrics.json")) as f:
        report = json.load(f)
    assert report["class_names"] == ["negative", "positive"]
    # Seconds of training on 1,000 reviews already beat chance (0.5) clearly (measured 0.72).
    assert report["accuracy"] >= 0.65, report["accuracy"]


def test_savedmodel_serves_raw_strings_like_keras(smoke_run):
    _, run_dir, export_dir = smoke_run
    version = os.path.join(export_dir, "1")
    assert sorted(os.listdir(export_dir)) == ["1"]  # no temp dirs left behind
    with open(os.path.join(run_dir, "run.json")) as f:
        texts = json.load(f)["examples"] + REVIEWS + [""]
    serving = tf.saved_model.load(version).signatures["serving_default"]
    out = serving(tf.constant(texts))
    probs = out["probabilities"].numpy()
    assert probs.shape == (len(texts), 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    labels = [l.decode() for l in out["labels"].numpy()]
    assert labels == [("negative", "positive")[i] for i in probs.argmax(1)]

    import keras
    model = keras.models.load_model(os.path.join(run_dir, "checkpoints", "best.keras"))
    expected = np.asarray(model(tf.constant(texts), training=False))
    assert np.max(np.abs(probs - expected)) <= 1e-5


def test_predict_texts_and_at_file_from_run_and_savedmodel_agree(smoke_run, capsys, tmp_path):
    _, run_dir, export_dir = smoke_run
    lines = tmp_path / "reviews.txt"
    lines.write_text("\n".join(REVIEWS[1:]) + "\n\n", encoding="utf-8")
    capsys.readouterr()
    assert main(PROJECT, ["predict", "--model", export_dir, "--json", REVIEWS[0], f"@{lines}"]) == 0
    from_savedmodel = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert main(PROJECT, ["predict", "--model", run_dir, "--json", REVIEWS[0], f"@{lines}"]) == 0
    from_run = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert len(from_run) == len(from_savedmodel) == 3
    np.testing.assert_allclose([r["probabilities"] for r in from_run],
                               [r["probabilities"] for r in from_savedmodel], atol=1e-5)


def test_evaluate_on_sst2_with_the_imdb_model(smoke_run, capsys):
    _, run_dir, _ = smoke_run
    sst2 = os.path.join(shared_data_dir(), "sst2")
    assert main(PROJECT, ["evaluate", "--run-dir", run_dir, "--data-dir", sst2]) == 0
    out = capsys.readouterr().out
    assert "(872 examples)" in out and "negative" in out


def _cli(*args, **env_changes):
    env = dict(os.environ, TF_FINETUNE_OFFLINE="1", **env_changes)
    return subprocess.run([sys.executable, "-m", "projects.sentiment_lstm", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def _bad_case(tmp_path, case):
    """Writes the bad input for `case`; returns (args, expected text in the error line)."""
    common = ["--smoke", "--output-dir", str(tmp_path / "run")]
    good = tmp_path / "good.csv"
    good.write_text("text,label\n" + "".join(f"good film {i},pos\nbad film {i},neg\n" for i in range(20)))
    if case == "missing column":
        return ["train", "--data-dir", str(good), "--text-column", "review", *common], \
            "no text column 'review' (columns: text, label)"
    if case == "mostly bad rows":
        path = tmp_path / "bad.csv"
        path.write_text("text,label\n" + ",pos\n" * 10 + "ok,neg\n")
        return ["train", "--data-dir", str(path), *common], "11 rows are unusable"
    if case == "one class":
        path = tmp_path / "one.tsv"
        path.write_text("sentence\tlabel\n" + "a b\t1\n" * 5)
        return ["train", "--data-dir", str(path), *common], "one class"
    if case == "seed model with three classes":
        path = tmp_path / "three.csv"
        path.write_text("text,label\n" + "".join(f"t {i},{i % 3}\n" for i in range(30)))
        return ["train", "--data-dir", str(path), "--model", "seed", *common], "--model seed"
    if case == "init from a non-run":
        return ["train", "--data-dir", str(good), "--init-from", str(tmp_path), *common], "--init-from"
    if case == "empty folder":
        (tmp_path / "empty").mkdir()
        return ["train", "--data-dir", str(tmp_path / "empty"), *common], "no train.tsv/train.csv"
    if case == "no data offline":
        return ["train", *common], "pass --data-dir"
    if case == "bad freeze value":
        return ["train", "--data-dir", str(good), "--freeze", "lstm", *common], "invalid choice"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["missing column", "mostly bad rows", "one class",
                                  "seed model with three classes", "init from a non-run",
                                  "empty folder", "bad freeze value", "no data offline"])
def test_bad_input_is_one_line_and_nonzero_exit(tmp_path, case):
    args, expected = _bad_case(tmp_path, case)
    # Without --data-dir, data comes from $TF_FINETUNE_DATA/imdb, else TFDS (offline here).
    result = _cli(*args, TF_FINETUNE_DATA=str(tmp_path))
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [l for l in result.stderr.splitlines() if l.startswith("error:") or ": error:" in l]
    assert len(errors) == 1 and expected in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "run")
