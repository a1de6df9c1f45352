"""`tune`: a grid over two fields, the objective's direction, best.toml, the best trial's
export, bad input, and, for real, a search killed with SIGKILL that resumes, and a chief with
two workers on 127.0.0.1 one of which is killed and restarted. `train --folds`: one run per
fold and their summary.

Trials train sentiment_lstm's smoke model on a small table of made-up reviews (tmp_path):
what is tested is the search, not accuracy.
"""

import csv
import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import REPO, free_ports
from tests.helpers import assert_one_line_error, call_cli

from projects.sentiment_lstm.project import PROJECT

GOOD = ["good", "great", "lovely", "fine", "superb", "fun"]
BAD = ["bad", "awful", "dull", "boring", "poor", "weak"]
FILLER = ["the", "film", "plot", "actor", "scene", "story", "was", "and", "a", "very"]

GRID = """
[learning_rate]
type = "choice"
values = [0.001, 0.01]

[dropout]
type = "choice"
values = [0.0, 0.5]
"""

STARTED = re.compile(r" Trial (\S+): .* -> ")

RATE = """
[learning_rate]
type = "float"
min_value = 0.0001
max_value = 0.01
sampling = "log"
"""


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    """A folder with train.csv: 160 short made-up reviews per class."""
    folder = tmp_path_factory.mktemp("reviews")
    rng = random.Random(0)
    with open(folder / "train.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(320):
            words = rng.sample(FILLER, 5) + rng.sample(GOOD if i % 2 else BAD, 2)
            rng.shuffle(words)
            writer.writerow([" ".join(words) + f" {i}", "pos" if i % 2 else "neg"])
    return str(folder)


def _space(tmp_path, text):
    path = tmp_path / "space.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def tune_args(reviews, space, tune_dir, *extra):
    return ["tune", "--smoke", "--data-dir", reviews, "--space", space, "--tune-dir", str(tune_dir),
            "--seed", "1", *extra]


def _trials(tune_dir):
    folder = os.path.join(tune_dir, "trials")
    return sorted(d for d in os.listdir(folder) if not d.endswith(".copying")) if os.path.isdir(folder) else []


def _config(tune_dir, trial):
    with open(os.path.join(tune_dir, "trials", trial, "config.json"), encoding="utf-8") as f:
        return json.load(f)


def _results(tune_dir):
    with open(os.path.join(tune_dir, "results.csv"), newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_grid_runs_every_combination_once_best_first_and_best_toml_reproduces_it(reviews, tmp_path, capsys):
    from tf_finetune import config as config_lib
    from tf_finetune.run_dir import RunDir

    tune_dir = tmp_path / "search"
    args = tune_args(reviews, _space(tmp_path, GRID), tune_dir, "--tuner", "grid", "--objective", "val_loss",
                     "--epochs", "1")
    result = call_cli(PROJECT, args, capsys)
    assert result.status == 0, result.err[-3000:]
    trials = _trials(tune_dir)
    combos = [(_config(tune_dir, t)["learning_rate"], _config(tune_dir, t)["dropout"]) for t in trials]
    assert sorted(combos) == sorted(itertools.product([0.001, 0.01], [0.0, 0.5]))  # each exactly once

    # val_loss is minimised: the table is in ascending order, best.toml is the lowest trial.
    best_loss = {t: min(RunDir(tune_dir / "trials" / t).read_history()["val_loss"]) for t in trials}
    rows = _results(tune_dir)
    assert [row["trial"] for row in rows] == sorted(trials, key=best_loss.get)
    assert [float(row["val_loss"]) for row in rows] == pytest.approx(sorted(best_loss.values()), abs=1e-4)
    best = min(trials, key=best_loss.get)
    reproduced = config_lib.build_config(PROJECT.config_class, file=str(tune_dir / "best.toml"))
    assert reproduced == RunDir(tune_dir / "trials" / best).read_config(PROJECT.config_class)
    assert os.path.isdir(tune_dir / "trials" / best / "logs" / "hparams")
    assert "| trial | status | val_loss | learning_rate | dropout | epochs trained | seconds |" in result.out

    # The same command again: every trial is done, none trains again; the best one is exported.
    stamps = {t: os.path.getmtime(tune_dir / "trials" / t / "metrics.json") for t in trials}
    again = call_cli(PROJECT, [*args, "--export-dir", str(tmp_path / "exports")], capsys)
    assert again.status == 0, again.err[-3000:]
    assert {t: os.path.getmtime(tune_dir / "trials" / t / "metrics.json") for t in trials} == stamps
    assert _trials(tune_dir) == trials
    assert f"Exported the best trial ({best})" in again.out
    assert os.path.isfile(tmp_path / "exports" / "1" / "saved_model.pb")


def test_the_first_trial_is_the_base_config_then_the_tuner_chooses(reviews, tmp_path, capsys):
    """Bayesian optimisation (random at first) would not try the config the search starts from:
    its first trial does, so the table holds the starting point, scored the same way."""
    tune_dir = tmp_path / "search"
    args = tune_args(reviews, _space(tmp_path, RATE), tune_dir, "--tuner", "bayesian", "--max-trials", "2",
                     "--epochs", "1", "--learning-rate", "0.003")
    result = call_cli(PROJECT, args, capsys)
    assert result.status == 0, result.err[-3000:]
    rates = [_config(tune_dir, t)["learning_rate"] for t in _trials(tune_dir)]
    assert rates[0] == 0.003 and rates[1] != 0.003
    assert "The first trial takes the base config's settings (or the space's defaults): learning_rate=0.003." in (
        result.out + result.err)


@pytest.mark.slow  # ~20 s; resuming a search is tested by the SIGKILL test
def test_a_finished_search_goes_on_with_a_larger_max_trials(reviews, tmp_path, capsys):
    tune_dir = tmp_path / "search"
    args = tune_args(reviews, _space(tmp_path, RATE), tune_dir, "--tuner", "random", "--epochs", "1")
    assert call_cli(PROJECT, [*args, "--max-trials", "2"], capsys).status == 0
    first = _trials(tune_dir)
    stamps = {t: os.path.getmtime(tune_dir / "trials" / t / "metrics.json") for t in first}
    more = call_cli(PROJECT, [*args, "--max-trials", "3"], capsys)
    assert more.status == 0, more.err[-3000:]
    assert len(_trials(tune_dir)) == 3 and set(first) < set(_trials(tune_dir))
    assert {t: os.path.getmtime(tune_dir / "trials" / t / "metrics.json") for t in first} == stamps
    assert len(_results(tune_dir)) == 3


@pytest.mark.parametrize("case", ["empty", "unknown field", "out of range", "grid too large", "continuous grid",
                                  "objective", "test objective", "other project", "other settings"])
def test_bad_search_input_is_one_line_and_writes_nothing(reviews, tmp_path, capsys, case):
    space, extra, fragments = GRID, [], []
    tune_dir = tmp_path / "search"
    if case == "empty":
        space, fragments = "", ["is empty"]
    elif case == "unknown field":
        space, fragments = "[learning_rat]\ntype = 'choice'\nvalues = [0.1]\n", ["learning_rat: unknown field"]
    elif case == "out of range":
        space, fragments = "[dropout]\ntype = 'float'\nmin_value = 0.2\nmax_value = 1.5\n", ["dropout = 1.5"]
    elif case == "grid too large":
        extra, fragments = ["--tuner", "grid", "--max-trials", "3"], ["4 combinations", "--max-trials 3"]
    elif case == "continuous grid":
        space, extra, fragments = RATE, ["--tuner", "grid"], ["learning_rate is a continuous range"]
    elif case == "objective":
        extra, fragments = ["--objective", "bleu"], ["runs do not record 'bleu'"]
    elif case == "test objective":
        extra, fragments = ["--objective", "test_accuracy"], ["never chooses on the test split"]
    elif case in ("other project", "other settings"):
        tune_dir.mkdir()
        (tune_dir / "search.json").write_text(json.dumps(
            {"project": "plant_cnn" if case == "other project" else "sentiment_lstm", "tuner": "random"}))
        fragments = ["holds a 'plant_cnn' search"] if case == "other project" else ["other settings"]
    before = sorted(os.listdir(tune_dir)) if tune_dir.exists() else None
    result = call_cli(PROJECT, tune_args(reviews, _space(tmp_path, space), tune_dir, *extra), capsys)
    assert_one_line_error(result, *fragments)
    assert (sorted(os.listdir(tune_dir)) if tune_dir.exists() else None) == before


def test_folds_train_one_run_per_fold_summarise_them_and_refit(reviews, tmp_path, capsys):
    out = tmp_path / "cv"
    args = ["train", "--smoke", "--data-dir", reviews, "--epochs", "1", "--folds", "3", "--refit",
            "--output-dir", str(out)]
    result = call_cli(PROJECT, args, capsys)
    assert result.status == 0, result.err[-3000:]
    assert sorted(os.listdir(out)) == ["cross_validation.json", "cross_validation.md", "fold_1", "fold_2",
                                       "fold_3", "refit"]
    records = [json.loads((out / f"fold_{i}" / "run.json").read_text()) for i in (1, 2, 3)]
    assert [r["data"]["split"] for r in records] == [f"fold {i} of 3" for i in (1, 2, 3)]
    assert sum(r["data"]["validation_examples"] for r in records) == 320  # the folds cover the data once
    scores = [json.loads((out / f"fold_{i}" / "metrics.json").read_text())["accuracy"] for i in (1, 2, 3)]
    summary = json.loads((out / "cross_validation.json").read_text())
    assert summary["validation"]["accuracy"]["mean"] == pytest.approx(np.mean(scores))
    assert summary["validation"]["accuracy"]["std"] == pytest.approx(np.std(scores, ddof=1))
    refit = json.loads((out / "refit" / "config.json").read_text())
    assert (refit["fold"], refit["folds"], refit["checkpoint"]) == (0, 3, "last")
    assert json.loads((out / "refit" / "run.json").read_text())["data"]["train_examples"] == 320
    assert "| mean +- std |" in result.out

    stamp = os.path.getmtime(out / "fold_2" / "metrics.json")
    again = call_cli(PROJECT, args, capsys)  # the same command: every fold is read back, none retrained
    assert again.status == 0 and os.path.getmtime(out / "fold_2" / "metrics.json") == stamp
    bad = call_cli(PROJECT, ["train", "--smoke", "--data-dir", reviews, "--folds", "3", "--output-dir", str(out),
                             "--export-dir", str(tmp_path / "exports")], capsys)
    assert_one_line_error(bad, "--export-dir with --folds", "--refit")


def _spawn(args, log, **env):
    return subprocess.Popen([sys.executable, "-m", "projects.sentiment_lstm", *args], cwd=REPO, text=True,
                            env=dict(os.environ, TF_FINETUNE_OFFLINE="1", **env), stdout=log,
                            stderr=subprocess.STDOUT)


def _backup_epochs(run_dir):
    try:
        with np.load(os.path.join(run_dir, "backup", "latest.npz")) as data:
            return json.loads(str(data["meta"]))["epochs_done"]
    except (OSError, ValueError, KeyError):
        return 0


def _wait_for(condition, process, timeout=240):
    """Polls `condition()` until true; fails if `process` ends first or time runs out."""
    start = time.time()
    while not condition():
        assert process.poll() is None, "the process ended before the moment to kill it"
        assert time.time() - start < timeout, "timed out"
        time.sleep(0.02)


def _continued_trial(tune_dir, past_epoch):
    """A trial that continues Hyperband's previous round and has a backup beyond `past_epoch`."""
    for trial in _trials(tune_dir):
        path = os.path.join(tune_dir, "trials", trial)
        try:
            with open(os.path.join(path, "run.json"), encoding="utf-8") as f:
                continued = "continued_from_trial" in json.load(f)
        except (OSError, ValueError):
            continue
        if continued and _backup_epochs(path) > past_epoch:
            return trial
    return None


def test_sigkilled_hyperband_search_resumes_without_rerunning_trials(reviews, tmp_path):
    """Hyperband (max 3 epochs, factor 3): three 1-epoch trials, then the best continued to 3
    epochs. The kill lands in that continuation's last epoch; the rerun trains none of the
    finished trials again and continues the running one from its backup, not from its start."""
    tune_dir = tmp_path / "search"
    args = tune_args(reviews, _space(tmp_path, RATE), tune_dir, "--tuner", "hyperband", "--epochs", "3",
                     "--batch-size", "2", "--max-trials", "4")
    with open(tmp_path / "first.log", "w") as log:
        process = _spawn(args, log)
        try:
            _wait_for(lambda: _continued_trial(tune_dir, past_epoch=1), process)
            process.send_signal(signal.SIGKILL)
            process.wait()
        finally:
            process.kill()
    killed = _continued_trial(tune_dir, past_epoch=1)
    at = _backup_epochs(tune_dir / "trials" / killed)
    finished = [t for t in _trials(tune_dir) if os.path.isfile(tune_dir / "trials" / t / "metrics.json")]
    stamps = {t: os.path.getmtime(tune_dir / "trials" / t / "metrics.json") for t in finished}

    with open(tmp_path / "second.log", "w") as log:
        assert _spawn(args, log).wait(timeout=600) == 0, (tmp_path / "second.log").read_text()[-3000:]
    second = (tmp_path / "second.log").read_text()
    assert {t: os.path.getmtime(tune_dir / "trials" / t / "metrics.json") for t in finished} == stamps
    assert f"Trial {killed}: " in second and f"after epoch {at} of 3" in second, second[-3000:]
    rows = _results(tune_dir)
    assert len(rows) == 4 and all(row["status"] == "COMPLETED" for row in rows)
    assert sorted(int(row["budget"]) for row in rows) == [1, 1, 1, 3]


def test_chief_and_two_workers_share_one_oracle_and_a_restarted_worker_resumes(reviews, tmp_path):
    tune_dir = tmp_path / "search"
    space = "[learning_rate]\ntype = 'choice'\nvalues = [0.001, 0.003, 0.01]\n"
    args = tune_args(reviews, _space(tmp_path, space), tune_dir, "--tuner", "grid", "--epochs", "4",
                     "--batch-size", "4")
    env = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(free_ports(1)[0])}
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("chief", "w1", "w2", "w1-again")}
    processes = {}
    try:
        processes["chief"] = _spawn(args, logs["chief"], KERASTUNER_TUNER_ID="chief", **env)
        _wait_for(lambda: os.path.isfile(tune_dir / "search.json"), processes["chief"])
        time.sleep(2)
        for name in ("w1", "w2"):
            processes[name] = _spawn(args, logs[name], KERASTUNER_TUNER_ID=name, **env)

        def w1_trial():
            trial = next(iter(STARTED.findall((tmp_path / "w1.log").read_text())), None)
            return trial if trial and _backup_epochs(tune_dir / "trials" / trial) >= 1 else None

        _wait_for(w1_trial, processes["w1"])
        trial = w1_trial()
        processes["w1"].send_signal(signal.SIGKILL)
        processes["w1"].wait()
        processes["w1-again"] = _spawn(args, logs["w1-again"], KERASTUNER_TUNER_ID="w1", **env)
        for name in ("w1-again", "w2", "chief"):
            assert processes[name].wait(timeout=600) == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
    finally:
        for process in processes.values():
            process.kill()
        for log in logs.values():
            log.close()
    text = {name: (tmp_path / f"{name}.log").read_text() for name in logs}
    assert f"Trial {trial}: " in text["w1-again"] and "Resuming stage 1" in text["w1-again"], text["w1-again"][-3000:]

    def started(name):
        return STARTED.findall(text[name])

    # Every trial ran in exactly one worker (the killed one's twice: started, then resumed).
    runs = started("w1") + started("w2") + [t for t in started("w1-again") if t != trial]
    assert sorted(runs) == ["0", "1", "2"] and started("chief") == []
    rows = _results(tune_dir)
    assert len(rows) == 3 and all(row["status"] == "COMPLETED" for row in rows)
