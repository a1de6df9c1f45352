import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json
import math
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_finetune.files import write_json
from tf_finetune.reporting.metrics import classification_report, format_report

# Hand-computed example, 3 classes, 10 examples.
#   y_true = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
#   y_pred = [0, 0, 1, 1, 1, 2, 2, 2, 2, 2]
# Confusion matrix (rows = true, cols = predicted):
#   [[2, 1, 0],
#    [0, 2, 1],
#    [0, 0, 4]]      predicted totals: 2, 3, 5   support: 3, 3, 4
# precision: a = 2/2 = 1.0,  b = 2/3,  c = 4/5 = 0.8
# recall:    a = 2/3,        b = 2/3,  c = 4/4 = 1.0
# f1:        a = 2*1*(2/3)/(1+2/3) = 0.8,  b = 2/3,  c = 2*0.8*1/1.8 = 8/9
# accuracy = (2+2+4)/10 = 0.8
# macro precision = (1 + 2/3 + 4/5)/3 = 37/45 = 0.822222...
# macro recall    = (2/3 + 2/3 + 1)/3 = 7/9   = 0.777777...
# macro f1        = (4/5 + 2/3 + 8/9)/3 = 106/135 = 0.785185...
# weighted f1     = (3*0.8 + 3*(2/3) + 4*(8/9))/10 = 179/225 = 0.795555...
Y_TRUE = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
Y_PRED = [0, 0, 1, 1, 1, 2, 2, 2, 2, 2]
NAMES = ["Apple___Cedar_apple_rust", "b", "Tomato___healthy"]


def test_hand_computed_three_class_report():
    report = classification_report(Y_TRUE, Y_PRED, NAMES)

    assert report["num_examples"] == 10
    assert report["accuracy"] == pytest.approx(0.8)
    assert report["macro_precision"] == pytest.approx(0.822222, abs=1e-6)
    assert report["macro_recall"] == pytest.approx(0.777778, abs=1e-6)
    assert report["macro_f1"] == pytest.approx(0.785185, abs=1e-6)
    assert report["weighted_f1"] == pytest.approx(0.795556, abs=1e-6)
    assert report["confusion_matrix"] == [[2, 1, 0], [0, 2, 1], [0, 0, 4]]
    assert report["class_names"] == NAMES

    expected = {
        "Apple___Cedar_apple_rust": (1.0, 0.666667, 0.8, 3),
        "b": (0.666667, 0.666667, 0.666667, 3),
        "Tomato___healthy": (0.8, 1.0, 0.888889, 4),
    }
    assert list(report["per_class"]) == NAMES
    for name, (precision, recall, f1, support) in expected.items():
        stats = report["per_class"][name]
        assert stats["precision"] == pytest.approx(precision, abs=1e-6)
        assert stats["recall"] == pytest.approx(recall, abs=1e-6)
        assert stats["f1"] == pytest.approx(f1, abs=1e-6)
        assert stats["support"] == support


def test_probabilities_logits_and_integer_predictions_give_identical_reports():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 4)).astype("float32")
    y_true = rng.integers(0, 4, size=50)
    names = ["w", "x", "y", "z"]

    from_ids = classification_report(y_true, np.argmax(logits, axis=1), names)
    from_logits = classification_report(y_true, logits, names)
    from_probs = classification_report(tf.constant(y_true), tf.nn.softmax(logits), names)

    assert from_logits == from_ids
    assert from_probs == from_ids


def test_class_never_predicted_and_class_never_present_are_zero_not_nan():
    # Class 2 is never predicted (precision 0/0); class 3 never occurs (recall 0/0).
    report = classification_report([0, 1, 2, 2], [0, 1, 1, 1], ["a", "b", "c", "d"])

    c, d = report["per_class"]["c"], report["per_class"]["d"]
    assert (c["precision"], c["recall"], c["f1"], c["support"]) == (0.0, 0.0, 0.0, 2)
    assert (d["precision"], d["recall"], d["f1"], d["support"]) == (0.0, 0.0, 0.0, 0)
    for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1", "weighted_f1"):
        assert not math.isnan(report[key]), key
    # b: precision 1/3, recall 1/1; macro over all 4 classes including the empty one.
    assert report["per_class"]["b"]["precision"] == pytest.approx(1 / 3)
    assert report["macro_recall"] == pytest.approx((1 + 1 + 0 + 0) / 4)


def test_per_class_f1_matches_keras_f1_score():
    rng = np.random.default_rng(1)
    num_classes = 5
    y_true = rng.integers(0, num_classes, size=200)
    # Mostly right, some noise, and class 4 never predicted.
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, num_classes, size=200))
    y_pred = np.where(y_pred == 4, 0, y_pred)

    report = classification_report(y_true, y_pred, [f"c{i}" for i in range(num_classes)])

    keras_f1 = keras.metrics.F1Score(average=None)
    keras_f1.update_state(
        keras.ops.one_hot(y_true, num_classes), keras.ops.one_hot(y_pred, num_classes)
    )
    expected = keras.ops.convert_to_numpy(keras_f1.result())
    ours = [report["per_class"][f"c{i}"]["f1"] for i in range(num_classes)]
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    assert ours[4] == 0.0
    assert report["macro_f1"] == pytest.approx(float(np.mean(expected)), abs=1e-5)


def _assert_plain_json_types(value):
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str
            _assert_plain_json_types(item)
    elif isinstance(value, list):
        for item in value:
            _assert_plain_json_types(item)
    else:
        assert type(value) in (int, float, str), f"{value!r} is {type(value)}"


def test_report_is_plain_python_and_round_trips_through_write_json(tmp_path):
    report = classification_report(np.array(Y_TRUE, dtype=np.int32), np.array(Y_PRED), NAMES)
    _assert_plain_json_types(report)

    path = tmp_path / "run" / "eval" / "metrics.json"  # parent dirs don't exist yet
    returned = write_json(report, path)

    assert returned == path
    assert json.loads(path.read_text()) == report
    assert path.read_text().startswith('{\n  "num_examples": 10')  # indent 2
    assert os.listdir(path.parent) == ["metrics.json"]  # no temp file left behind


def test_write_json_replaces_whole_file_and_converts_numpy(tmp_path):
    path = tmp_path / "metrics.json"
    write_json({"old": list(range(1000))}, path)
    write_json({"accuracy": np.float32(0.5), "counts": np.array([1, 2])}, path)

    assert json.loads(path.read_text()) == {"accuracy": 0.5, "counts": [1, 2]}


def test_write_json_failure_leaves_existing_file_and_no_temp(tmp_path):
    path = tmp_path / "metrics.json"
    write_json({"accuracy": 0.9}, path)

    with pytest.raises(TypeError):
        write_json({"bad": object()}, path)

    assert json.loads(path.read_text()) == {"accuracy": 0.9}
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_write_json_failed_replace_leaves_existing_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    write_json({"accuracy": 0.9}, path)

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_json({"accuracy": 0.1}, path)

    assert json.loads(path.read_text()) == {"accuracy": 0.9}
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_format_report_lists_every_class_with_aligned_columns():
    names = ["Apple___Cedar_apple_rust", "b", "Tomato___Tomato_Yellow_Leaf_Curl_Virus"]
    text = format_report(classification_report(Y_TRUE, Y_PRED, names))
    lines = text.splitlines()

    header = lines[0]
    assert header.split() == ["precision", "recall", "f1-score", "support"]
    rows = {line.split()[0]: line for line in lines[1:] if line.strip()}
    for name in names:
        assert name in rows
    # Every number ends in the same column as its header, however long the class name.
    header_ends = [header.index(h) + len(h) for h in ("precision", "recall", "f1-score", "support")]
    for name in names:
        row = rows[name]
        ends = [len(name) + m.end() for m in re.finditer(r"\S+", row[len(name):])]
        assert ends == header_ends, f"misaligned row: {row!r}"
    assert rows["Apple___Cedar_apple_rust"].split()[1:] == ["1.0000", "0.6667", "0.8000", "3"]
    assert "accuracy" in rows and rows["accuracy"].split()[1:] == ["0.8000", "10"]
    assert rows["accuracy"].index("0.8000") + 6 == header_ends[2]
    assert "macro avg" in text and "weighted avg" in text
    macro = next(line for line in lines if line.startswith("macro avg"))
    assert macro.split()[2:] == ["0.8222", "0.7778", "0.7852", "10"]


def test_format_report_works_on_a_report_read_back_from_json(tmp_path):
    report = classification_report(Y_TRUE, Y_PRED, NAMES)
    path = write_json(report, tmp_path / "metrics.json")
    assert format_report(json.loads(path.read_text())) == format_report(report)


@pytest.mark.parametrize(
    "y_true, y_pred, names, match",
    [
        ([0, 1, 2], [0, 1], ["a", "b", "c"], r"same number of examples.*y_true.shape=\(3,\).*y_pred.shape=\(2,\)"),
        ([0, 1, 3], [0, 1, 2], ["a", "b", "c"], r"y_true.*outside \[0, 3\).*\[3\]"),
        ([0, 1, 2], [0, -1, 2], ["a", "b", "c"], r"y_pred.*outside \[0, 3\).*\[-1\]"),
        ([0, 1], [0, 1], [], r"class_names.*empty.*Received: class_names=\[\]"),
        ([0, 1], [0, 1], ["a", "a"], r"unique"),
        ([0, 1], np.zeros((2, 4)), ["a", "b", "c"], r"one column per class.*y_pred.shape=\(2, 4\)"),
        ([[0], [1]], [0, 1], ["a", "b"], r"y_true.shape=\(2, 1\)"),
        ([0.0, 1.5], [0, 1], ["a", "b"], r"integer class ids.*1.5"),
        ([], [], ["a"], r"must not be empty"),
    ],
)
def test_bad_input_raises_value_error_echoing_what_was_received(y_true, y_pred, names, match):
    with pytest.raises(ValueError, match=match):
        classification_report(y_true, y_pred, names)
