"""End to end on real SST-2 with the offline MiniLM preset: train --smoke (frozen prefix cached),
export, and serve raw UTF-8 strings from the SavedModel in a process without Keras."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from projects.bert_classifier.project import PROJECT
from tests.conftest import shared_data_dir
from tests.conftest import smoke_train
from tf_finetune.cli import main

MINILM = os.path.join(shared_data_dir(), "weights", "all-MiniLM-L6-v2")
SMOKE_ACCURACY = 0.70  # 4 short epochs on 256 phrases: 0.78 measured with 5 (chance: 0.5)
SENTENCES = [
    "a gripping , funny and deeply moving film .",
    "a boring , badly written mess .",
    "Ein großartiger Film! 素晴らしい映画 — naïve but charming.",
    "",
]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    return smoke_train(PROJECT, "sst2", tmp_path_factory, "--preset", MINILM, needs=[MINILM])


def test_smoke_train_learns_from_real_sentences(smoke_run):
    _, run_dir, _ = smoke_run
    for name in ("config.json", "run.json", "metrics.json", "history.csv", "training_curves.png",
                 "confusion_matrix.png", "checkpoints/best.keras"):
        assert os.path.isfile(os.path.join(run_dir, name)), name
    with open(os.path.join(run_dir, "metrics.json")) as f:
        report = json.load(f)
    assert report["class_names"] == ["negative", "positive"]
    assert report["accuracy"] >= SMOKE_ACCURACY, report["accuracy"]


def test_savedmodel_serves_raw_strings_without_keras_like_the_keras_model(smoke_run, tmp_path):
    _, run_dir, export_dir = smoke_run
    assert sorted(os.listdir(export_dir)) == ["1"]  # no temp dirs left behind
    version = os.path.join(export_dir, "1")
    inputs = tmp_path / "in.json"
    inputs.write_text(json.dumps(SENTENCES), encoding="utf-8")
    # A fresh process with TensorFlow and tensorflow-text only: the tokenizer is in the graph.
    script = (
        "import json, sys, tensorflow as tf, tensorflow_text\n"
        "texts = json.load(open(sys.argv[2], encoding='utf-8'))\n"
        "out = tf.saved_model.load(sys.argv[1]).signatures['serving_default'](tf.constant(texts))\n"
        "print(json.dumps({'p': out['probabilities'].numpy().tolist(),"
        " 'l': [s.decode() for s in out['labels'].numpy()],"
        " 'imported': sorted(m for m in ('keras_hub', 'tf_finetune', 'projects') if m in sys.modules)}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, version, str(inputs)], capture_output=True,
                            text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stderr[-2000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["imported"] == []  # nothing of keras-hub or this package was needed
    probs = np.array(served["p"])
    assert probs.shape == (len(SENTENCES), 2)
    assert served["l"] == [("negative", "positive")[i] for i in probs.argmax(1)]

    import keras
    model = keras.models.load_model(os.path.join(run_dir, "checkpoints", "best.keras"))
    expected = model.predict_on_batch(tf.constant(SENTENCES))
    assert np.max(np.abs(probs - expected)) <= 1e-5


def test_predict_from_run_and_savedmodel_agree(smoke_run, capsys):
    _, run_dir, export_dir = smoke_run
    capsys.readouterr()
    assert main(PROJECT, ["predict", "--model", export_dir, "--json", *SENTENCES[:3]]) == 0
    from_savedmodel = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert main(PROJECT, ["predict", "--model", run_dir, "--json", *SENTENCES[:3]]) == 0
    from_run = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert len(from_run) == len(from_savedmodel) == 3
    np.testing.assert_allclose([r["probabilities"] for r in from_run],
                               [r["probabilities"] for r in from_savedmodel], atol=1e-5)


def _bad_case(tmp_path, case):
    """Returns (args, expected text in the error line) for `case`."""
    good = tmp_path / "good.tsv"
    good.write_text("sentence\tlabel\n" + "".join(f"good film {i}\t1\nbad film {i}\t0\n" for i in range(20)))
    common = ["--smoke", "--data-dir", str(good), "--output-dir", str(tmp_path / "run")]
    if case == "missing preset folder":
        return ["train", "--preset", str(tmp_path / "nope"), *common], "is not a folder"
    if case == "not a BERT preset":
        (tmp_path / "gpt").mkdir()
        (tmp_path / "gpt" / "config.json").write_text('{"model_type": "gpt2"}')
        return ["train", "--preset", str(tmp_path / "gpt"), *common], "not BERT"
    if case == "handle offline":
        return ["train", "--preset", "bert_tiny_en_uncased", *common], "is not on this machine and it is offline"
    if case == "too many frozen layers":
        return ["train", "--preset", MINILM, "--freeze-layers", "9", *common], "only 6 transformer layers"
    if case == "fine-tune phase":
        return ["train", "--preset", MINILM, "--fine-tune-epochs", "1", *common], "trains in one phase"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["missing preset folder", "not a BERT preset", "handle offline",
                                  "too many frozen layers", "fine-tune phase"])
def test_bad_input_is_one_line_and_nonzero_exit(tmp_path, case, capsys, monkeypatch):
    args, expected = _bad_case(tmp_path, case)
    monkeypatch.setenv("TF_FINETUNE_DATA", str(tmp_path))
    monkeypatch.setenv("TF_FINETUNE_OFFLINE", "1")
    assert main(PROJECT, args) == 2
    errors = [l for l in capsys.readouterr().err.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], errors
    assert not os.path.exists(tmp_path / "run")
