"""End to end on the real Tatoeba pairs: train --smoke, BLEU report, export, serve raw English."""

import json
import os
import subprocess
import sys

import pytest

from projects.translation.project import PROJECT
from tests.conftest import REPO, smoke_train
from tf_finetune.cli import main
from tf_finetune.run_dir import read_history

SENTENCES = ["I love you.", "Tom is my friend.", "Where is the station?", "Ünïcödé → 漢字", ""]
SMOKE_ACCURACY = 0.30  # next-character accuracy after 8 short epochs on 2,000 pairs


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    return smoke_train(PROJECT, "cmn_eng", tmp_path_factory)


def test_smoke_train_learns_and_reports_bleu(smoke_run):
    _, run_dir, _ = smoke_run
    for name in ("config.json", "run.json", "metrics.json", "history.csv", "training_curves.png",
                 "translations.tsv", "checkpoints/best.keras"):
        assert os.path.isfile(os.path.join(run_dir, name)), name
    with open(os.path.join(run_dir, "metrics.json"), encoding="utf-8") as f:
        report = json.load(f)
    assert report["num_examples"] == report["data"]["test_sentences"] > 50
    assert 0.0 <= report["bleu_greedy"] <= 100.0 and 0.0 <= report["bleu_beam"] <= 100.0
    assert len(report["examples"]) == 10 and all(e["references"] for e in report["examples"])
    best = max(read_history(run_dir)["val_accuracy"])
    assert best >= SMOKE_ACCURACY, best


def test_savedmodel_translates_raw_strings_without_keras_like_the_keras_model(smoke_run, tmp_path):
    _, run_dir, export_dir = smoke_run
    assert sorted(os.listdir(export_dir)) == ["1"]  # no temp dirs left behind
    inputs = tmp_path / "in.json"
    inputs.write_text(json.dumps(SENTENCES), encoding="utf-8")
    # A fresh process with TensorFlow only: tokenizing and decoding are in the graph.
    script = (
        "import json, sys, tensorflow as tf\n"
        "texts = json.load(open(sys.argv[2], encoding='utf-8'))\n"
        "out = tf.saved_model.load(sys.argv[1]).signatures['serving_default'](tf.constant(texts))\n"
        "print(json.dumps({'t': [s.decode() for s in out['translation'].numpy()],"
        " 'imported': sorted(m for m in ('keras_hub', 'tf_finetune', 'projects') if m in sys.modules)}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, os.path.join(export_dir, "1"), str(inputs)],
                            capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stderr[-2000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["imported"] == []

    import keras
    import tensorflow as tf

    model = keras.models.load_model(os.path.join(run_dir, "checkpoints", "best.keras"))
    expected = [s.decode() for s in model.translate(tf.constant(SENTENCES)).numpy()]
    assert served["t"] == expected
    assert all(t and "[" not in t for t in expected[:3])  # some characters, no marks


def test_predict_from_run_and_savedmodel_agree(smoke_run, capsys):
    _, run_dir, export_dir = smoke_run
    capsys.readouterr()
    assert main(PROJECT, ["predict", "--model", export_dir, "--json", *SENTENCES[:3]]) == 0
    from_savedmodel = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert main(PROJECT, ["predict", "--model", run_dir, "--json", *SENTENCES[:3]]) == 0
    from_run = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert [r["input"] for r in from_run] == SENTENCES[:3]
    assert from_run == from_savedmodel


def test_evaluate_prints_bleu_and_examples(smoke_run, capsys):
    _, run_dir, _ = smoke_run
    capsys.readouterr()
    assert main(PROJECT, ["evaluate", "--run-dir", run_dir]) == 0
    out = capsys.readouterr().out
    assert "BLEU-4" in out and " -> " in out
    assert os.path.isfile(os.path.join(run_dir, "evaluation", "translations.tsv"))


@pytest.mark.parametrize("case", ["folder without cmn.txt", "no pairs", "too few pairs"])
def test_bad_data_is_one_line_and_exit_2(tmp_path, case, capsys):
    if case == "folder without cmn.txt":
        (tmp_path / "empty").mkdir()
        data, expected = tmp_path / "empty", "has no cmn.txt"
    elif case == "no pairs":
        (data := tmp_path / "cmn.txt").write_text("only english\n", encoding="utf-8")
        expected = "no English<TAB>Chinese"
    else:
        (data := tmp_path / "cmn.txt").write_text("Hi.\t你好。\nRun.\t跑。\n", encoding="utf-8")
        expected = "too few"
    capsys.readouterr()
    assert main(PROJECT, ["train", "--smoke", "--data-dir", str(data), "--output-dir", str(tmp_path / "run")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error:") and expected in errors[0], errors
    assert not os.path.exists(tmp_path / "run")


def test_no_data_offline_is_one_line_without_a_traceback(tmp_path):
    env = dict(os.environ, TF_FINETUNE_OFFLINE="1", TF_FINETUNE_DATA=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "projects.translation", "train", "--smoke",
                             "--output-dir", str(tmp_path / "run")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and "pass --data-dir" in errors[0] and "cmn_eng" in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "run")
