"""End to end on real IMDB reviews: train --smoke, export, serve raw UTF-8 strings."""

import pytest

from projects.sentiment_lstm.project import PROJECT
from tests.conftest import require_data
from tests.helpers import assert_export_command_works_in_a_fresh_process
from tests.helpers import assert_one_line_error
from tests.helpers import assert_predict_agrees
from tests.helpers import assert_run_dir_complete
from tests.helpers import assert_savedmodel_serves_like_keras
from tests.helpers import call_cli
from tests.helpers import run_cli
from tests.helpers import smoke_train
from tf_finetune.cli import main

SMOKE_ACCURACY = 0.65  # seconds of training on 1,000 reviews beat chance (0.5) clearly (measured 0.72)
REVIEWS = [
    "One of the best films I have seen in years: moving, funny and beautifully acted.",
    "A boring, badly written mess. I want my two hours back.",
    "Ein großartiger Film! 素晴らしい映画 — naïve but charming.",
]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    return smoke_train(PROJECT, "imdb", tmp_path_factory)


def test_smoke_train_learns_from_real_reviews(smoke_run):
    report = assert_run_dir_complete(smoke_run, extra=["confusion_matrix.png"])
    assert report["class_names"] == ["negative", "positive"]
    assert report["accuracy"] >= SMOKE_ACCURACY, report["accuracy"]


def test_savedmodel_serves_raw_strings_like_keras(smoke_run, tmp_path):
    texts = smoke_run.read_json("run.json")["examples"] + REVIEWS + [""]
    assert_savedmodel_serves_like_keras(smoke_run, texts, tmp_path)


def test_the_export_command_loads_the_run_in_a_fresh_process(smoke_run, tmp_path):
    assert_export_command_works_in_a_fresh_process(smoke_run, tmp_path)


def test_predict_texts_and_at_file_from_run_and_savedmodel_agree(smoke_run, capsys, tmp_path):
    lines = tmp_path / "reviews.txt"
    lines.write_text("\n".join(REVIEWS[1:]) + "\n\n", encoding="utf-8")
    results = assert_predict_agrees(smoke_run, [REVIEWS[0], f"@{lines}"], capsys, count=3)
    assert [r["input"] for r in results] == REVIEWS


def test_evaluate_on_sst2_with_the_imdb_model(smoke_run, capsys):
    sst2 = require_data("sst2")
    assert main(PROJECT, ["evaluate", "--run-dir", smoke_run.run_dir, "--data-dir", sst2]) == 0
    out = capsys.readouterr().out
    assert "(872 examples)" in out and "negative" in out


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
def test_bad_input_is_one_line_and_nonzero_exit(tmp_path, case, capsys, monkeypatch):
    """One case in a new process, as a user runs it (TensorFlow's start-up lines hidden); the
    others in this one, which checks the same line without five seconds of start-up each."""
    args, expected = _bad_case(tmp_path, case)
    # Without --data-dir, data comes from $TF_FINETUNE_DATA/imdb, else TFDS (offline here).
    if case == "no data offline":
        result = run_cli("sentiment_lstm", *args, TF_FINETUNE_DATA=str(tmp_path))
    else:
        monkeypatch.setenv("TF_FINETUNE_DATA", str(tmp_path))
        monkeypatch.setenv("TF_FINETUNE_OFFLINE", "1")
        result = call_cli(PROJECT, args, capsys)
    assert_one_line_error(result, expected, run_dir=tmp_path / "run")
