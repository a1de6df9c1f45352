"""Plans of stages: the flat flags' two stages, each shorthand's exact expansion, bad plans."""

import pytest

from tf_finetune import config as config_lib
from tf_finetune.config import TrainConfig
from tf_finetune.errors import UserError
from tf_finetune.training import stages


def plan(specs, num_blocks=5, **settings):
    config = TrainConfig(stages=tuple(specs), **settings)
    return [(s.name, s.epochs, s.trainable) for s in stages.expand(config, num_blocks=num_blocks)]


def test_the_flat_flags_give_todays_two_stages():
    config = TrainConfig(epochs=5, learning_rate=3e-3, fine_tune_epochs=4, unfreeze_top=60,
                         fine_tune_learning_rate=3e-4, batch_size=16, warmup_epochs=0.5)
    head, fine_tune = stages.expand(config)
    assert (head.name, head.epochs, head.trainable, head.learning_rate) == ("head", 5, "as_built", 3e-3)
    assert (fine_tune.name, fine_tune.epochs, fine_tune.trainable, fine_tune.learning_rate) == (
        "fine-tune", 4, "top_layers:60", 3e-4)
    assert head.batch_size == fine_tune.batch_size == 16 and fine_tune.warmup_epochs == 0.5
    assert [s.name for s in stages.expand(TrainConfig(epochs=3))] == ["head"]


def test_stage_fields_default_to_the_config_and_trainable_to_the_stage_before():
    config = TrainConfig(optimizer="adamw", learning_rate=1e-3, batch_size=8,
                         stages=({"name": "a", "epochs": 1, "trainable": "head"},
                                 {"name": "b", "epochs": 2, "learning_rate": 1e-4}))
    a, b = stages.expand(config)
    assert (a.optimizer, a.learning_rate, a.batch_size) == ("adamw", 1e-3, 8)
    assert (b.trainable, b.learning_rate) == ("head", 1e-4)


def test_gradual_unfreezing_adds_a_block_per_step():
    assert plan([{"technique": "gradual_unfreezing", "blocks": 3, "epochs_per_block": 2}]) == [
        ("gradual_unfreezing-0", 2, "head"), ("gradual_unfreezing-1", 2, "top:1"),
        ("gradual_unfreezing-2", 2, "top:2"), ("gradual_unfreezing-3", 2, "top:3")]
    # "all" blocks: the model's count.
    assert len(plan([{"technique": "gradual_unfreezing"}], num_blocks=4)) == 5


def test_adaptive_unfreezing_steps_end_on_a_stall():
    expanded = stages.expand(TrainConfig(stages=({"technique": "adaptive_unfreezing", "max_blocks": 2,
                                                  "patience": 2, "epochs_per_block": 5},)), num_blocks=9)
    assert [(s.name, s.epochs, s.trainable, s.advance_patience) for s in expanded] == [
        ("adaptive_unfreezing-0", 5, "head", 2), ("adaptive_unfreezing-1", 5, "top:1", 2),
        ("adaptive_unfreezing-2", 5, "top:2", 2)]


def test_optimizer_switch_derives_the_sgd_rate():
    config = TrainConfig(stages=({"name": "head", "epochs": 2, "trainable": "head"},
                                 {"technique": "optimizer_switch", "epochs": [3, 4], "learning_rate": 1e-3}))
    head, first, then = stages.expand(config, num_blocks=3)
    assert (first.name, first.epochs, first.optimizer, first.trainable) == ("optimizer_switch-adamw", 3, "adamw", "head")
    assert (then.name, then.epochs, then.optimizer, then.derive_learning_rate, then.warmup_epochs) == (
        "optimizer_switch-sgd", 4, "sgd", True, 0.0)


def test_batch_ramp_doubles_every_k_epochs_up_to_the_cap_at_a_constant_rate():
    config = TrainConfig(stages=({"technique": "batch_ramp", "start": 16, "every": 2, "max": 64, "epochs": 9,
                                  "learning_rate": 0.01},))
    ramp = stages.expand(config)
    assert [(s.name, s.epochs, s.batch_size, s.continue_optimizer) for s in ramp] == [
        ("batch_ramp-16", 2, 16, False), ("batch_ramp-32", 2, 32, True), ("batch_ramp-64", 5, 64, True)]
    assert {s.lr_schedule for s in ramp} == {"constant"} and {s.learning_rate for s in ramp} == {0.01}


def test_smoke_cuts_every_stage_to_seconds(tmp_path):
    path = tmp_path / "plan.toml"
    path.write_text('[[stages]]\nname = "head"\nepochs = 5\ntrainable = "head"\n'
                    '[[stages]]\ntechnique = "gradual_unfreezing"\nblocks = 2\nepochs_per_block = 3\n')
    config = config_lib.build_config(TrainConfig, file=str(path), smoke=True)
    assert [(s.name, s.epochs) for s in stages.expand(config, num_blocks=4)] == [
        ("head", 1), ("gradual_unfreezing-0", 1), ("gradual_unfreezing-1", 1), ("gradual_unfreezing-2", 1)]


def test_fields_that_depend_on_trainable_see_the_one_a_stage_inherits():
    """A stage without `trainable` trains what the stage before it did, in the config's checks too."""
    lora = [{"name": "a", "epochs": 1, "trainable": "lora:8", "loraplus_lr_ratio": 16},
            {"name": "b", "epochs": 1, "learning_rate": 1e-4, "loraplus_lr_ratio": 16}]
    ladder = [{"technique": "gradual_unfreezing", "blocks": 2},
              {"name": "c", "epochs": 1, "batchnorm": "train"}]
    for specs, trainable in ((lora, "lora:8"), (ladder, "top:2")):
        config = TrainConfig(stages=tuple(specs))
        assert stages.expand(config, num_blocks=3)[-1].trainable == trainable
    with pytest.raises(UserError, match=r"stage 2 \('b'\), field loraplus_lr_ratio: sets the rate of LoRA"):
        TrainConfig(stages=({"name": "a", "epochs": 1, "trainable": "all"}, lora[1]))


@pytest.mark.parametrize("specs, message", [
    ([{"name": "x", "epochs": 2, "trainable": "top5"}],
     "stage 1 ('x'), field trainable: must be one of as_built, head, all, top:N, from:LAYER, top_layers:N, lora:R. "
     "Received: trainable='top5'"),
    ([{"name": "x", "epochs": 2, "lr": 0.1}], "stage 1 ('x'): unknown field(s) lr; stage fields are name, epochs"),
    ([{"name": "x"}], "stage 1 ('x'): epochs is missing"),
    ([{"name": "x", "epochs": 1, "trainable": "lora:0"}], "lora: takes a whole number >= 1 (the rank)"),
    ([{"name": "x", "epochs": 1, "optimizer": "lamb"}], "field optimizer: must be one of adam, adamw, sgd, rmsprop"),
    ([{"technique": "gradual"}], "stage 1, field technique: must be one of gradual_unfreezing"),
    ([{"technique": "batch_ramp", "start": 8}], "stage 1 (batch_ramp): every, max, epochs are missing."),
    ([{"technique": "batch_ramp", "start": 64, "every": 1, "max": 32, "epochs": 3}], "field max: must be >= start"),
    ([{"technique": "optimizer_switch", "epochs": [2]}], "field epochs: must be [E1, E2]"),
    ([{"technique": "optimizer_switch", "epochs": [1, 1], "first": "sgd"}],
     "derive_learning_rate: the rate is derived from the stage before's Adam state"),
    ([{"name": "a", "epochs": 1}, {"name": "a", "epochs": 1}], "names must differ; 'a' repeats"),
    ([{"name": "x", "epochs": 1, "trainable": "all", "batchnorm": "update"}],
     "stage 1 ('x'), field batchnorm: must be one of frozen, train. Received: batchnorm='update'"),
    ([{"name": "x", "epochs": 1, "batchnorm": "train"}], "field batchnorm: \"train\" applies to what the stage trains"),
    ([{"name": "x", "epochs": 1, "trainable": "all", "batchnorm": "train", "batchnorm_momentum": 1.0}],
     "field batchnorm_momentum: must be in [0, 1) (0 = as built). Received: batchnorm_momentum=1.0"),
    ([{"name": "x", "epochs": 1, "trainable": "all", "batchnorm_momentum": 0.9}],
     "field batchnorm_momentum: sets the momentum of BatchNorm statistics that train: set batchnorm"),
    ([{"name": "x", "epochs": 1, "trainable": "lora:8", "loraplus_lr_ratio": 0.5}],
     "stage 1 ('x'), field loraplus_lr_ratio: must be >= 1 (the B matrices' rate over the A matrices'; 1 = plain "
     "LoRA). Received: loraplus_lr_ratio=0.5"),
    ([{"name": "x", "epochs": 1, "trainable": "lora:8", "lora_targets": ["query", "value"], "also_train": ["value"]}],
     "stage 1 ('x'), field also_train: 'value' is a LoRA target too"),
    ([{"name": "x", "epochs": 1, "trainable": "top:2", "loraplus_lr_ratio": 16}],
     "field loraplus_lr_ratio: sets the rate of LoRA adapters: set trainable = \"lora:R\" too"),
    ([{"name": "x", "epochs": 1, "trainable": "lora:8", "lora_init": "svd"}],
     "stage 1 ('x'), field lora_init: must be \"default\" (Keras's: A random, B zeros) or \"pissa\""),
    ([{"name": "x", "epochs": 1, "trainable": "top:2", "lora_init": "pissa"}],
     "field lora_init: sets how LoRA adapters start: set trainable = \"lora:R\" too"),
])
def test_a_bad_plan_is_one_line_naming_the_stage_and_field(specs, message):
    with pytest.raises(UserError) as info:
        stages.expand(TrainConfig(stages=tuple(specs)), num_blocks=3)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("stage, context, message", [
    ({"trainable": "top:7"}, {}, "trainable='top:7': the model has 3 blocks: pass top:0 to top:3"),
    ({"trainable": "from:conv_z"}, {}, "no layer named 'conv_z' in the pretrained blocks (e.g. conv_a"),
    ({"trainable": "lora:4", "lora_targets": ["query"]}, {}, "no Dense or EinsumDense layer named 'query'"),
    ({"trainable": "lora:4", "lora_targets": ["dense"], "also_train": ["norm"]}, {},
     "also_train=['norm']: no layer named 'norm' in the pretrained blocks (e.g. conv_a"),
    ({"trainable": "head"}, {"num_blocks": 0}, "this model has no pretrained blocks (it trains from scratch)"),
    ({"trainable": "top_layers:3"}, {"has_backbone": False}, "this model has no pretrained backbone"),
    ({"batch_size": 512}, {}, "batch_size=512: the training data has only 100 examples"),
])
def test_a_plan_is_checked_against_the_model_and_data(stage, context, message):
    plan_ = stages.expand(TrainConfig(stages=({"name": "s", "epochs": 1, **stage},)), num_blocks=3)
    facts = dict(num_blocks=3, layer_names={"conv_a", "conv_b"}, lora_targets={"dense"}, has_backbone=True,
                 train_examples=100) | context
    with pytest.raises(UserError, match="stage 1 \\('s'\\)") as info:
        stages.check_against_model(plan_, **facts)
    assert message in str(info.value)


def test_flat_phase_two_flags_with_stages_are_refused():
    with pytest.raises(UserError, match="--fine-tune-epochs describes the two-phase plan, but this config has stages"):
        TrainConfig(fine_tune_epochs=2, stages=({"name": "a", "epochs": 1},))


def test_stages_are_config_file_only_and_round_trip_through_config_json(tmp_path):
    import argparse
    import json

    parser = argparse.ArgumentParser()
    config_lib.add_config_flags(parser, TrainConfig)
    assert "--stages" not in parser.format_help()
    config = TrainConfig(stages=({"name": "a", "epochs": 1, "trainable": "head", "lora_targets": ["query"]},))
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    assert config_lib.load_run_config(TrainConfig, str(tmp_path / "config.json")) == config
