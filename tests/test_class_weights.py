"""Class weights (`--class-weight`): the values, what they do to training, and the record."""

import json
import os

import numpy as np
import pytest

from tests.conftest import write_image
from tests.helpers import call_cli
from tf_finetune.config import TrainConfig
from tf_finetune.errors import UserError
from tf_finetune.training import class_weights


def test_balanced_gives_every_class_the_same_total_weight():
    counts = {"a": 60, "b": 30, "c": 10}
    weights = class_weights.resolve("balanced", ("a", "b", "c"), counts)
    assert weights == pytest.approx({0: 100 / 180, 1: 100 / 90, 2: 100 / 30})
    totals = [weights[i] * n for i, n in enumerate(counts.values())]
    assert totals == pytest.approx([100 / 3] * 3)  # n / k each, so the weights average 1 per example
    # A class the training split lacks weighs 1 and does not count among the k classes.
    assert class_weights.resolve("balanced", ("a", "b", "c"), {"a": 30, "b": 10}) == pytest.approx(
        {0: 40 / 60, 1: 40 / 20, 2: 1.0})


def test_named_weights_and_none():
    assert class_weights.resolve(" b=2.5 , c=0.5", ("a", "b", "c")) == {0: 1.0, 1: 2.5, 2: 0.5}
    assert class_weights.resolve("none", ("a", "b")) is None
    assert class_weights.resolve("None", ("a", "b")) is None
    assert class_weights.describe({0: 1.0, 1: 2.5}, ("a", "b")) == "a 1, b 2.5"


@pytest.mark.parametrize("spec, fragment", [
    ("heavy", "'heavy' is not a NAME=WEIGHT pair"),
    ("a=", "'a=' is not a NAME=WEIGHT pair"),
    ("=2", "'=2' is not a NAME=WEIGHT pair"),
    ("a=2,", "'' is not a NAME=WEIGHT pair"),
    ("a=0", "the weight of 'a' must be a positive number. Received: 0"),
    ("a=-1", "the weight of 'a' must be a positive number"),
    ("a=nan", "the weight of 'a' must be a positive number"),
    ("a=inf", "the weight of 'a' must be a positive number"),
    ("a=1,a=2", "'a' is given twice"),
])
def test_a_malformed_value_is_refused_when_the_config_is_built(spec, fragment):
    with pytest.raises(UserError, match="--class-weight") as info:
        TrainConfig(class_weight=spec)
    assert fragment in str(info.value)


def test_balanced_without_counts_and_unknown_names_are_refused():
    with pytest.raises(UserError, match="does not give its training split's class counts"):
        class_weights.resolve("balanced", ("a", "b"), None)
    with pytest.raises(UserError, match="no class named 'c'; the classes are a, b"):
        class_weights.resolve("c=2", ("a", "b"), {"a": 1, "b": 1})
    with pytest.raises(UserError, match="has no classes to weight"):
        class_weights.resolve("balanced", (), None)


def test_a_command_with_a_loss_of_its_own_refuses_weights():
    class Data:
        class_names = ("a", "b")
        info = {"train_counts": {"a": 3, "b": 1}}

    config = TrainConfig(class_weight="balanced")
    assert class_weights.for_data(config, Data()) == pytest.approx({0: 4 / 6, 1: 2.0})
    with pytest.raises(UserError, match="trains with a loss of its own"):
        class_weights.for_data(config, Data(), loss="a distillation loss")
    assert class_weights.for_data(TrainConfig(), Data(), loss="a distillation loss") is None


def _overlapping(n0, n1, seed):
    """1-D points: class 0 around -1, class 1 around +1, both with unit spread."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(-1, 1, n0), rng.normal(1, 1, n1)]).astype("float32")[:, None]
    y = np.array([0] * n0 + [1] * n1, dtype="int32")
    return x, y


def test_balanced_weights_move_the_boundary_towards_the_rare_class(tmp_path):
    """9 to 1 overlapping classes: unweighted, the best boundary sits where the posterior
    crosses 1/2, near x = log(9) / 2 = 1.1, so most of the rare class is missed; weighted
    "balanced", it sits near 0, as with even classes."""
    import keras
    import tensorflow as tf

    from tf_finetune.training import Trainer

    x, y = _overlapping(900, 100, seed=0)
    train = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(1000, seed=0).batch(100)
    vx, vy = _overlapping(500, 500, seed=1)
    val = tf.data.Dataset.from_tensor_slices((vx, vy)).batch(250)
    recalls = {}
    for spec in ("none", "balanced"):
        keras.utils.set_random_seed(0)
        config = TrainConfig(epochs=30, batch_size=100, learning_rate=0.1, lr_schedule="constant",
                             class_weight=spec, checkpoint="last")
        weights = class_weights.resolve(spec, ("common", "rare"), {"common": 900, "rare": 100})
        trainer = Trainer(config, str(tmp_path / spec))
        model = trainer.build_model(lambda: keras.Sequential([keras.Input((1,)), keras.layers.Dense(2, activation="softmax")]))
        model = trainer.fit(model, train, val, class_weight=weights)
        predicted = model.predict(vx, verbose=0).argmax(-1)
        recalls[spec] = float((predicted[vy == 1] == 1).mean())
    # Recall of a N(1, 1) class above a boundary b is P(z > b - 1): about 0.46 at 1.1, 0.84 at 0.
    assert recalls["none"] < 0.6 < 0.75 < recalls["balanced"], recalls


def test_a_run_records_the_weights_from_its_training_split(tmp_path, capsys):
    from projects.plant_cnn.project import PROJECT

    for cls, count, color in (("common", 12, (200, 30, 30)), ("rare", 4, (30, 30, 200))):
        for i in range(count):
            write_image(str(tmp_path / "data" / cls / f"{i}.jpg"), size=(32, 32), color=color)
    run_dir = str(tmp_path / "run")
    result = call_cli(PROJECT, ["train", "--smoke", "--data-dir", str(tmp_path / "data"), "--output-dir", run_dir,
                                "--backbone", "seed_cnn", "--weights", "none", "--image-size", "32", "--epochs", "1",
                                "--fine-tune-epochs", "0", "--batch-size", "4", "--class-weight", "balanced"], capsys)
    assert result.status == 0, result.err[-3000:]
    with open(os.path.join(run_dir, "run.json")) as f:
        record = json.load(f)
    counts = record["data"]["train_counts"]
    assert sum(counts.values()) == record["data"]["train_examples"] and counts["common"] > counts["rare"]
    n = sum(counts.values())
    assert record["class_weight"] == pytest.approx({name: n / (2 * c) for name, c in counts.items()})
