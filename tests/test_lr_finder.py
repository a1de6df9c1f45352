"""The learning-rate range test: on a toy problem whose divergence point is known, it suggests a
rate below it; the CLI's lr-find writes its plot and table and touches no run directory."""

import os

import keras
import numpy as np
import pytest

from tests.helpers import assert_one_line_error
from tests.helpers import call_cli
from tf_finetune.training import lr_finder


def test_a_linear_regression_diverges_where_theory_says_and_the_suggestion_is_below():
    """Least squares on x ~ N(0, 1) has curvature 2 (the loss is mean((w x - y)^2)); plain
    gradient descent diverges once the rate passes 2 / 2 = 1 (the noise in y keeps the
    gradient from vanishing at the optimum, so the divergence shows)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4096, 1)).astype("float32")
    y = (3.0 * x + rng.normal(size=(4096, 1))).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    optimizer = keras.optimizers.SGD(1e-4)
    model.compile(optimizer=optimizer, loss="mse")
    before = model.get_weights()[0].copy()
    batches = ((x[i: i + 256], y[i: i + 256]) for _ in range(100) for i in range(0, 4096, 256))

    result = lr_finder.run(model, batches, set_rate=lambda rate: setattr(optimizer, "learning_rate", rate),
                           steps=120, start=1e-4, end=100.0)

    assert result.diverged_at is not None and 1.0 < result.diverged_at < 10.0
    assert result.suggestion < 1.0 and result.minimum_rate < result.diverged_at
    assert result.suggestion < result.minimum_rate
    np.testing.assert_array_equal(model.get_weights()[0], before)  # the weights are put back
    assert len(result.rates) == len(result.losses) and len(result.smoothed) <= len(result.losses)


def test_exponential_rates_span_the_sweep():
    rates = lr_finder.exponential_rates(1e-7, 10.0, 9)
    np.testing.assert_allclose(rates, [10.0 ** e for e in range(-7, 2)], rtol=1e-9)
    with pytest.raises(ValueError):
        lr_finder.exponential_rates(1.0, 0.1, 5)


def test_lr_find_on_real_reviews_writes_its_files_and_a_suggestion(tmp_path, capsys):
    from projects.sentiment_lstm.project import PROJECT
    from tests.conftest import require_data

    data = require_data("imdb")
    out = tmp_path / "lr"
    result = call_cli(PROJECT, ["lr-find", "--smoke", "--data-dir", data, "--steps", "40", "--start-lr", "1e-5",
                                "--end-lr", "10", "--output-dir", str(out)], capsys)
    assert result.status == 0, result.err[-3000:]
    assert sorted(os.listdir(out)) == ["lr_find.csv", "lr_find.png"]
    rows = (out / "lr_find.csv").read_text().splitlines()
    assert rows[0] == "step,learning_rate,loss,smoothed_loss" and 3 < len(rows) <= 41
    line = [l for l in result.out.splitlines() if l.startswith("Suggested learning rate:")]
    assert len(line) == 1 and "valley" in line[0]
    suggestion = float(line[0].split(":")[1].split()[0])
    assert 1e-5 <= suggestion <= 10


def test_lr_find_refuses_a_run_directory_and_writes_nothing(tmp_path, capsys):
    from projects.plant_cnn.project import PROJECT

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text('{"project": "plant_cnn"}')
    before = sorted(os.listdir(run))
    result = call_cli(PROJECT, ["lr-find", "--smoke", "--output-dir", str(run)], capsys)
    assert_one_line_error(result, f"--output-dir {run} is a training run directory", "pass a new folder")
    assert sorted(os.listdir(run)) == before


def tiny_reviews(tmp_path):
    """A folder of train.tsv and dev.tsv: 256 and 64 three-word reviews, one word list per class."""
    data = tmp_path / "reviews"
    data.mkdir()
    rng = np.random.default_rng(0)
    words = {0: ["dull", "awful", "boring", "weak"], 1: ["great", "lovely", "moving", "sharp"]}
    for split, n in (("train", 256), ("dev", 64)):
        labels = rng.integers(0, 2, size=n)
        rows = [f"a {' '.join(rng.choice(words[y], size=3))} film\t{y}" for y in labels]
        (data / f"{split}.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    return data


def test_lr_find_sweeps_with_the_stages_per_variable_rates(tmp_path, capsys, monkeypatch):
    """A stage's per-variable rates multiply the swept rate as they do in training: here its
    layer decay; a LoRA+ ratio goes through the same `stage_rate_scales` (tests/test_lora.py)."""
    from projects.sentiment_lstm.project import PROJECT
    from tf_finetune.training import optimizers

    made = []
    make = optimizers.make_optimizer
    monkeypatch.setattr(optimizers, "make_optimizer", lambda *a, **k: made.append(k.get("rate_scales")) or make(*a, **k))
    config = tmp_path / "plan.toml"
    config.write_text('[[stages]]\nname = "all"\nepochs = 1\ntrainable = "all"\nlayer_decay = 0.5\n')
    result = call_cli(PROJECT, ["lr-find", "--smoke", "--config", str(config), "--data-dir", str(tiny_reviews(tmp_path)),
                                "--steps", "3", "--output-dir", str(tmp_path / "lr")], capsys)
    assert result.status == 0, result.err[-3000:]
    (scales,) = made
    assert sorted(set(scales.values())) == [0.5, 1.0]  # the classifier x1, the BiLSTM below it x0.5


def test_lr_find_on_a_taught_stage_sweeps_the_stages_loss(tmp_path, capsys):
    """A stage with distill_alpha learns from the model as the stage begins; its range test
    sweeps that loss: at the sweep's first step the teacher equals the model, so the soft term
    is 0 and the loss is (1 - alpha) times the labels' loss of the same stage untaught."""
    from projects.sentiment_lstm.project import PROJECT

    data = tiny_reviews(tmp_path)
    first_losses = {}
    for alpha in (0.0, 0.75):
        config = tmp_path / f"plan{alpha}.toml"
        config.write_text(f'[[stages]]\nname = "all"\nepochs = 1\ntrainable = "all"\nlearning_rate = 0.001\n'
                          f"distill_alpha = {alpha}\n")
        out = tmp_path / f"lr{alpha}"
        result = call_cli(PROJECT, ["lr-find", "--smoke", "--config", str(config), "--data-dir", str(data),
                                    "--steps", "5", "--start-lr", "1e-7", "--end-lr", "1e-6",
                                    "--output-dir", str(out)], capsys)
        assert result.status == 0, result.err[-3000:]
        first_losses[alpha] = float((out / "lr_find.csv").read_text().splitlines()[1].split(",")[2])
    assert first_losses[0.0] > 0.1
    np.testing.assert_allclose(first_losses[0.75], 0.25 * first_losses[0.0], rtol=1e-3)
