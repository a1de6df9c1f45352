"""End to end on the real Tatoeba pairs: train --smoke, BLEU report, export, serve raw English."""

import os

import pytest

from projects.translation.project import PROJECT
from tests.helpers import assert_export_command_works_in_a_fresh_process
from tests.helpers import assert_one_line_error
from tests.helpers import assert_predict_agrees
from tests.helpers import assert_run_dir_complete
from tests.helpers import assert_savedmodel_serves_like_keras
from tests.helpers import call_cli
from tests.helpers import smoke_train
from tf_finetune.cli import main
from tf_finetune.run_dir import read_history

SENTENCES = ["I love you.", "Tom is my friend.", "Where is the station?", "Ünïcödé → 漢字", ""]
SMOKE_ACCURACY = 0.30  # next-character accuracy after 8 short epochs on 2,000 pairs


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    return smoke_train(PROJECT, "cmn_eng", tmp_path_factory)


def keras_translations(run, model, raw):
    import tensorflow as tf

    return {"translation": model.translate(tf.constant(raw))}


def test_smoke_train_learns_and_reports_bleu(smoke_run):
    report = assert_run_dir_complete(smoke_run, extra=["translations.tsv", "preview.txt"])
    assert report["num_examples"] == report["data"]["test_sentences"] > 50
    assert 0.0 <= report["bleu_greedy"] <= 100.0 and 0.0 <= report["bleu_beam"] <= 100.0
    assert len(report["examples"]) == 10 and all(e["references"] for e in report["examples"])
    best = max(read_history(smoke_run.run_dir)["val_accuracy"])
    assert best >= SMOKE_ACCURACY, best


def test_savedmodel_translates_raw_strings_without_keras_like_the_keras_model(smoke_run, tmp_path):
    # TensorFlow only: tokenizing and decoding are in the graph.
    served = assert_savedmodel_serves_like_keras(smoke_run, SENTENCES, tmp_path,
                                                 keras_outputs=keras_translations)
    assert all(t and "[" not in t for t in served["translation"][:3])  # some characters, no marks


def test_the_export_command_loads_the_run_in_a_fresh_process(smoke_run, tmp_path):
    assert_export_command_works_in_a_fresh_process(smoke_run, tmp_path)


def test_predict_from_run_and_savedmodel_agree(smoke_run, capsys):
    results = assert_predict_agrees(smoke_run, SENTENCES[:3], capsys, count=3)
    assert [r["input"] for r in results] == SENTENCES[:3]


def test_evaluate_prints_bleu_and_examples(smoke_run, capsys):
    capsys.readouterr()
    assert main(PROJECT, ["evaluate", "--run-dir", smoke_run.run_dir]) == 0
    out = capsys.readouterr().out
    assert "BLEU-4" in out and " -> " in out
    assert os.path.isfile(smoke_run.path("evaluation", "translations.tsv"))


def _bad_case(tmp_path, case):
    """Writes the bad --data-dir for `case` (none: offline, no data); returns (args, fragments)."""
    args = ["train", "--smoke", "--output-dir", str(tmp_path / "run")]
    if case == "no data offline":  # $TF_FINETUNE_DATA has no cmn_eng/
        return args, ["pass --data-dir", "cmn_eng"]
    if case == "folder without cmn.txt":
        (data := tmp_path / "empty").mkdir()
        expected = "has no cmn.txt"
    elif case == "no pairs":
        (data := tmp_path / "cmn.txt").write_text("only english\n", encoding="utf-8")
        expected = "no English<TAB>Chinese"
    else:
        (data := tmp_path / "cmn.txt").write_text("Hi.\t你好。\nRun.\t跑。\n", encoding="utf-8")
        expected = "too few"
    return [*args, "--data-dir", str(data)], [expected]


@pytest.mark.parametrize("case", ["folder without cmn.txt", "no pairs", "too few pairs", "no data offline"])
def test_bad_data_is_one_line_and_exit_2(tmp_path, case, capsys, monkeypatch):
    args, expected = _bad_case(tmp_path, case)
    monkeypatch.setenv("TF_FINETUNE_DATA", str(tmp_path))
    monkeypatch.setenv("TF_FINETUNE_OFFLINE", "1")
    assert_one_line_error(call_cli(PROJECT, args, capsys), *expected, run_dir=tmp_path / "run", alone=True)


def test_a_taught_stage_is_refused_before_anything_is_written(tmp_path, capsys, shared_data):
    # Translation trains with its own loss (masked, from logits): a stage's teacher, whose
    # term is mixed into the classification loss only, is one line and no run directory.
    config = tmp_path / "taught.toml"
    config.write_text('[[stages]]\nname = "all"\nepochs = 1\ntrainable = "all"\ndistill_alpha = 0.5\n')
    args = ["train", "--smoke", "--config", str(config), "--data-dir", os.path.join(shared_data, "cmn_eng"),
            "--output-dir", str(tmp_path / "run")]
    assert_one_line_error(call_cli(PROJECT, args, capsys), "stage 1 ('all'), field distill_alpha",
                          "own loss", "leave distill_alpha out", run_dir=tmp_path / "run")
