"""Search spaces (`tune --space`): parsing, checks against the config, grids, and best.toml."""

import dataclasses
import textwrap

import pytest

from tf_finetune import config as config_lib
from tf_finetune.errors import UserError
from tf_finetune.search import results
from tf_finetune.search import space as space_lib
from tf_finetune.search import tuner

from projects.plant_cnn.config import PlantConfig
from projects.sentiment_lstm.config import SentimentConfig


def _space(tmp_path, text, name="space.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def test_the_keras_tuner_vocabulary_is_read(tmp_path):
    params = space_lib.read_space(_space(tmp_path, """
        [learning_rate]
        type = "float"
        min = 1e-4
        max = 1e-2
        sampling = "log"

        [optimizer]
        type = "choice"
        values = ["adam", "sgd"]

        [weight_decay]
        type = "float"
        min_value = 0.0
        max_value = 0.001
        step = 0.0005
        parent_name = "optimizer"
        parent_values = ["sgd"]

        [stages.2.epochs]
        type = "int"
        min_value = 2
        max_value = 6
        step = 2

        ["stages.1.learning_rate"]
        type = "fixed"
        value = 0.003
        """), PlantConfig)
    by_name = {p.name: p for p in params}
    assert list(by_name) == ["learning_rate", "optimizer", "weight_decay", "stages.2.epochs", "stages.1.learning_rate"]
    assert by_name["learning_rate"].sampling == "log" and by_name["learning_rate"].candidates() is None
    assert by_name["weight_decay"].candidates() == [0.0, 0.0005, 0.001]
    assert by_name["stages.2.epochs"].candidates() == [2, 4, 6]
    assert by_name["weight_decay"].parent_values == ("sgd",)


def test_declared_on_keras_tuner_hyperparameters(tmp_path):
    import keras_tuner

    params = space_lib.read_space(_space(tmp_path, """
        [optimizer]
        type = "choice"
        values = ["adam", "sgd"]
        [weight_decay]
        type = "float"
        min_value = 1e-5
        max_value = 1e-3
        sampling = "log"
        parent_name = "optimizer"
        parent_values = ["sgd"]
        """), PlantConfig)
    hp = keras_tuner.HyperParameters()
    for p in params:
        p.declare(hp)
    assert hp.values["optimizer"] == "adam" and not hp.is_active("weight_decay")
    hp.values["optimizer"] = "sgd"
    assert hp.is_active("weight_decay")


@pytest.mark.parametrize("text, message", [
    ("", "is empty"),
    ("[learnin_rate]\ntype = 'float'\nmin_value = 0.1\nmax_value = 1.0\n", "learnin_rate: unknown field"),
    ("[dropout]\ntype = 'uniform'\n", "type must be one of"),
    ("[dropout]\ntype = 'float'\nmin_value = 0.5\nmax_value = 0.1\n", "min_value must be below max_value"),
    ("[learning_rate]\ntype = 'float'\nmin_value = 0.0\nmax_value = 0.1\nsampling = 'log'\n", "positive min_value"),
    ("[epochs]\ntype = 'int'\nmin_value = 1.5\nmax_value = 3\n", "whole bounds"),
    ("[optimizer]\ntype = 'choice'\nvalues = []\n", "non-empty list"),
    ("[dropout]\ntype = 'float'\nmin_value = 0.1\nmax_value = 0.3\nparent_name = 'optimizer'\n"
     "parent_values = ['sgd']\n", "must be a field searched above it"),
    ("[dropout]\ntype = 'float'\nmin_value = 0.1\nmax_value = 0.3\nscale = 2\n", "unknown key(s) scale"),
    ("[seed]\ntype = 'int'\nmin_value = 1\nmax_value = 3\n", "not a setting to search"),
    ("[stages.x.epochs]\ntype = 'int'\nmin_value = 1\nmax_value = 3\n", "stages.N.FIELD"),
])
def test_bad_spaces_are_one_line_naming_the_field(tmp_path, text, message):
    with pytest.raises(UserError, match="--space .*space.toml") as e:
        space_lib.read_space(_space(tmp_path, text), PlantConfig)
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("text, message", [
    ("[learning_rate]\ntype = 'float'\nmin_value = -0.1\nmax_value = 0.1\n", "learning_rate = -0.1"),
    ("[optimizer]\ntype = 'choice'\nvalues = ['adam', 'lamb']\n", "optimizer = 'lamb'"),
    ("[dropout]\ntype = 'choice'\nvalues = ['high']\n", "dropout = 'high'"),
])
def test_values_outside_a_fields_valid_range_are_refused(tmp_path, text, message):
    params = space_lib.read_space(_space(tmp_path, text), SentimentConfig)
    with pytest.raises(UserError, match="not a valid setting") as e:
        space_lib.check_space(params, SentimentConfig())
    assert message in str(e.value)


def test_apply_sets_config_and_stage_fields():
    config = PlantConfig(stages=({"name": "head", "epochs": 2, "trainable": "head"},
                                 {"name": "top", "epochs": 3, "trainable": "top:4"}))
    out = space_lib.apply(config, {"dropout": 0.3, "stages.2.learning_rate": 5e-5, "tuner/epochs": 4})
    assert out.dropout == 0.3 and out.stages[1]["learning_rate"] == 5e-5 and out.stages[0] == config.stages[0]
    with pytest.raises(UserError, match="the plan has 2 stage"):
        space_lib.apply(config, {"stages.3.epochs": 1})
    with pytest.raises(UserError, match="config has no stages"):
        space_lib.apply(PlantConfig(), {"stages.1.epochs": 1})


def test_grid_size_counts_conditional_fields_only_where_active(tmp_path):
    params = space_lib.read_space(_space(tmp_path, """
        [optimizer]
        type = "choice"
        values = ["adam", "sgd", "rmsprop"]
        [weight_decay]
        type = "choice"
        values = [0.0, 1e-4]
        parent_name = "optimizer"
        parent_values = ["sgd"]
        [label_smoothing]
        type = "choice"
        values = [0.0, 0.1]
        """), PlantConfig)
    assert space_lib.grid_size(params) == (1 + 2 + 1) * 2


def test_the_first_trial_starts_from_the_base_config_where_the_space_holds_it(tmp_path):
    params = space_lib.read_space(_space(tmp_path, """
        [learning_rate]
        type = "float"
        min_value = 1e-4
        max_value = 1e-2
        sampling = "log"
        [optimizer]
        type = "choice"
        values = ["adam", "sgd"]
        [weight_decay]
        type = "choice"
        values = [0.001, 0.01]
        parent_name = "optimizer"
        parent_values = ["sgd"]
        [image_size]
        type = "int"
        min_value = 160
        max_value = 320
        step = 32
        [stages.2.epochs]
        type = "int"
        min_value = 2
        max_value = 6
        """), PlantConfig)
    stages = ({"name": "head", "epochs": 2, "trainable": "head"}, {"name": "top", "epochs": 3, "trainable": "top:4"})
    config = PlantConfig(learning_rate=0.003, image_size=224, stages=stages)
    # weight_decay is only searched under sgd: the base config's adam leaves it out.
    assert space_lib.starting_values(params, config) == (
        {"learning_rate": 0.003, "optimizer": "adam", "image_size": 224, "stages.2.epochs": 3}, None)
    for outside, why in [({"learning_rate": 0.05}, "learning_rate = 0.05 is outside"),
                         ({"image_size": 200}, "image_size = 200 is outside"),  # off the step
                         ({"optimizer": "sgd", "weight_decay": 0.004}, "weight_decay = 0.004 is outside")]:
        assert space_lib.starting_values(params, dataclasses.replace(config, **outside)) == (None, why + " its space")
    assert space_lib.starting_values(params, dataclasses.replace(config, optimizer="sgd", weight_decay=0.01))[0][
        "weight_decay"] == 0.01
    assert space_lib.starting_values(params, dataclasses.replace(config, stages=stages[:1])) == (
        None, "stages.2.epochs is not set")
    # A stage that leaves a field out takes the config's flat setting, or the stage's default.
    rates = space_lib.read_space(_space(tmp_path, """
        [stages.2.learning_rate]
        type = "float"
        min_value = 1e-5
        max_value = 1e-2
        [stages.2.distill_alpha]
        type = "choice"
        values = [0.0, 0.5]
        """, "rates.toml"), PlantConfig)
    assert space_lib.starting_values(rates, config) == (
        {"stages.2.learning_rate": 0.003, "stages.2.distill_alpha": 0.0}, None)
    # What trains carries over from the stage before, as the plan expands it.
    trainable = space_lib.read_space(_space(tmp_path, '[stages.2.trainable]\ntype = "choice"\nvalues = ["head", "all"]\n',
                                            "trainable.toml"), PlantConfig)
    carried = dataclasses.replace(config, stages=(stages[0], {"name": "more", "epochs": 3}))
    assert space_lib.starting_values(trainable, carried) == ({"stages.2.trainable": "head"}, None)


def test_a_spaces_own_default_wins_and_must_lie_inside_it(tmp_path):
    text = '[dropout]\ntype = "choice"\nvalues = [0.2, 0.5]\ndefault = {}\n'
    params = space_lib.read_space(_space(tmp_path, text.format(0.5)), PlantConfig)
    assert space_lib.starting_values(params, PlantConfig(dropout=0.2)) == ({"dropout": 0.5}, None)
    with pytest.raises(UserError, match="dropout: default = 0.3 is not one of the values it searches"):
        space_lib.read_space(_space(tmp_path, text.format(0.3)), PlantConfig)
    flag = space_lib.read_space(_space(tmp_path, '[horizontal_flip]\ntype = "choice"\nvalues = [0, 1]\n'),
                                PlantConfig)[0]
    assert not flag.contains(True) and flag.contains(1)  # True is not the number 1 here


def test_best_toml_round_trips_to_the_same_config(tmp_path):
    config = PlantConfig(dropout=0.35, learning_rate=3e-4, horizontal_flip=False, brightness_range=(0.8, 1.2),
                         stages=({"name": "head", "epochs": 2, "trainable": "head", "learning_rate": 3e-3},
                                 {"technique": "gradual_unfreezing", "blocks": 2, "epochs_per_block": 1}),
                         epoch_budget=3)
    results.write_best_config(config, tmp_path / "best.toml", "best trial\nof a search")
    text = (tmp_path / "best.toml").read_text()
    assert text.startswith("# best trial\n# of a search\n")
    assert config_lib.build_config(PlantConfig, file=str(tmp_path / "best.toml")) == config


def test_objective_names_and_directions():
    from tf_finetune.tasks import ClassificationTask

    task = ClassificationTask()
    assert tuner.parse_objective(None, task) == ("accuracy", "max")
    assert tuner.parse_objective("val_loss", task) == ("val_loss", "min")
    assert tuner.parse_objective("macro_f1:min", task) == ("macro_f1", "min")
    with pytest.raises(UserError, match="runs do not record 'bleu'"):
        tuner.parse_objective("bleu", task)
    with pytest.raises(UserError, match="never chooses on the test split"):
        tuner.parse_objective("test_accuracy", task)


def test_trials_sort_by_the_objectives_direction():
    rows = [results.TrialRow("0", "COMPLETED", {}, 0.5), results.TrialRow("1", "FAILED", {}, None),
            results.TrialRow("2", "COMPLETED", {}, 0.2), results.TrialRow("3", "COMPLETED", {}, 0.9)]
    assert [r.trial_id for r in results.sort_rows(rows, "max")] == ["3", "0", "2", "1"]
    assert [r.trial_id for r in results.sort_rows(rows, "min")] == ["2", "0", "3", "1"]


def test_hyperband_budget_is_the_plans_length():
    assert tuner.plan_epochs(PlantConfig(epochs=3, fine_tune_epochs=4)) == 7
    staged = dataclasses.replace(PlantConfig(), stages=({"epochs": 2, "trainable": "head"},
                                                        {"epochs": 5, "trainable": "all"}))
    assert tuner.plan_epochs(staged) == 7
