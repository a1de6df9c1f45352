"""The Trainer: stages epoch by epoch, what trains when, backups and exact resume, logs."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_finetune.config import TrainConfig
from tf_finetune.errors import UserError
from tf_finetune.models import freezing
from tf_finetune.models.trainable import Parts
from tf_finetune.run_dir import RunDir
from tf_finetune.run_dir import read_history
from tf_finetune.training import backup
from tf_finetune.training import trainer as trainer_lib


def examples(n=64, seed=0, nan=False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype("int32")
    x = (rng.normal(size=(n, 8, 8, 3)) + y[:, None, None, None]).astype("float32")
    if nan:
        x[:] = np.nan
    return x, y


def data(n=64, seed=0, nan=False):
    """A plain dataset of 16-example batches (the same every pass)."""
    return tf.data.Dataset.from_tensor_slices(examples(n, seed, nan)).batch(16)


def batches(n=64, seed=0, seen=None):
    """`train(seed, batch_size)`: shuffled batches with per-batch noise, both fixed by the seed
    (as every project's data gives them); `seen` collects the (seed, batch size) asked for."""
    ds = tf.data.Dataset.from_tensor_slices(examples(n, seed))

    def make(epoch_seed, batch_size):
        if seen is not None:
            seen.append((epoch_seed, batch_size))
        shuffled = ds.shuffle(n, seed=epoch_seed, reshuffle_each_iteration=False).batch(batch_size)
        noise = tf.data.Dataset.random(seed=epoch_seed, rerandomize_each_iteration=False).batch(2)
        return tf.data.Dataset.zip(shuffled, noise).map(
            lambda batch, pair: (batch[0] + tf.random.stateless_normal(tf.shape(batch[0]), pair), batch[1]))

    return make


def model_fn():
    # A 'backbone' with BatchNorm, called with training=False as in transfer learning.
    b_in = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, name="conv_a")(b_in)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.Conv2D(4, 3, name="conv_b")(h)
    backbone = keras.Model(b_in, h, name="backbone")
    backbone.trainable = False
    inputs = keras.Input((8, 8, 3))
    x = backbone(inputs, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.3)(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(x))


def parts(model):
    backbone = model.get_layer("backbone")
    return Parts(backbone, [[backbone.get_layer("conv_a"), backbone.get_layer("bn")], [backbone.get_layer("conv_b")]])


def fit(trainer, model, train=None, val=None):
    """`trainer.fit` with the model's pretrained parts named, as the CLI does."""
    return trainer.fit(model, train or batches(), val or data(seed=1), parts=parts(model))


def weights_of(model, name):
    return [w.copy() for w in model.get_layer("backbone").get_layer(name).get_weights()]


def plan_config(stages, **settings):
    return TrainConfig(batch_size=16, stages=tuple(stages), **settings)


def test_two_phases_freeze_then_fine_tune_top(tmp_path):
    config = TrainConfig(epochs=2, fine_tune_epochs=2, unfreeze_top=1, batch_size=16, learning_rate=0.01,
                         fine_tune_learning_rate=0.01)
    trainer = trainer_lib.Trainer(config, str(tmp_path))
    model = trainer.build_model(model_fn)
    before = {n: weights_of(model, n) for n in ("conv_a", "bn", "conv_b")}
    best = fit(trainer, model)

    # Phase 2 unfroze only the top backbone layer: conv_b changed, conv_a and BN did not.
    for w0, w1 in zip(before["conv_a"], weights_of(model, "conv_a")):
        np.testing.assert_array_equal(w0, w1)
    for w0, w1 in zip(before["bn"], weights_of(model, "bn")):
        np.testing.assert_array_equal(w0, w1)
    assert any(not np.array_equal(w0, w1) for w0, w1 in zip(before["conv_b"], weights_of(model, "conv_b")))

    history = read_history(str(tmp_path))
    assert history["stage"] == ["head", "head", "fine-tune", "fine-tune"]
    assert len(history["loss"]) == 4 and len(history["val_accuracy"]) == 4
    assert isinstance(best, keras.Model)
    assert RunDir(str(tmp_path)).stage_boundaries() == [(2, "fine-tune")]


def test_frozen_weights_stay_bit_identical_within_a_stage_and_change_once_unfrozen(tmp_path, monkeypatch):
    """A three-stage plan: head, then the top block, then everything. After every epoch, each
    weight has changed only if its stage trains it."""
    config = plan_config([{"name": "head", "epochs": 2, "trainable": "head", "learning_rate": 0.05},
                          {"name": "top", "epochs": 2, "trainable": "top:1", "learning_rate": 0.05},
                          {"name": "all", "epochs": 1, "trainable": "all", "learning_rate": 0.05}])
    trainer = trainer_lib.Trainer(config, str(tmp_path))
    model = trainer.build_model(model_fn)
    snapshots = []
    fit_epoch = trainer_lib.Trainer._fit_epoch

    def recording(self, *args, **kwargs):
        logs = fit_epoch(self, *args, **kwargs)
        snapshots.append({n: weights_of(model, n)[0].copy() for n in ("conv_a", "conv_b")}
                         | {"head": model.get_layer("head").kernel.numpy().copy()})
        return logs

    monkeypatch.setattr(trainer_lib.Trainer, "_fit_epoch", recording)
    start = {n: weights_of(model, n)[0].copy() for n in ("conv_a", "conv_b")} | {
        "head": model.get_layer("head").kernel.numpy().copy()}
    fit(trainer, model)
    trained = {0: {"head"}, 1: {"head"}, 2: {"head", "conv_b"}, 3: {"head", "conv_b"},
               4: {"head", "conv_b", "conv_a"}}
    previous = start
    for epoch, snapshot in enumerate(snapshots):
        for name, value in snapshot.items():
            changed = not np.array_equal(value, previous[name])
            assert changed == (name in trained[epoch]), (epoch, name)
        previous = snapshot


def test_rerun_skips_finished_stages(tmp_path):
    config = TrainConfig(epochs=1, fine_tune_epochs=0, batch_size=16)
    first = trainer_lib.Trainer(config, str(tmp_path)).fit(model_fn(), batches(), data(seed=1))
    rows_before = len(read_history(str(tmp_path))["loss"])
    mtime = os.path.getmtime(tmp_path / "checkpoints" / "best.keras")
    again = trainer_lib.Trainer(config, str(tmp_path)).fit(model_fn(), batches(), data(seed=1))
    assert os.path.getmtime(tmp_path / "checkpoints" / "best.keras") == mtime
    assert len(read_history(str(tmp_path))["loss"]) == rows_before
    for w0, w1 in zip(first.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(w0, w1)
    assert not os.path.exists(tmp_path / "backup")  # removed once best.keras is written


class Crash(Exception):
    pass


def crash_after_epoch(monkeypatch, epochs_done):
    """Makes training die right after the backup of epoch `epochs_done` (1-based) is written."""
    write = backup.Backup.write_latest

    def write_latest(self, optimizer, meta):
        write(self, optimizer, meta)
        if meta["epochs_done"] == epochs_done:
            raise Crash(f"killed after epoch {epochs_done}")

    monkeypatch.setattr(backup.Backup, "write_latest", write_latest)


PLAN = [{"name": "head", "epochs": 2, "trainable": "head", "learning_rate": 0.01},
        {"name": "top", "epochs": 2, "trainable": "top:1", "learning_rate": 0.01, "optimizer": "adamw",
         "reduce_on_plateau": 0.5, "plateau_patience": 1},
        {"name": "ramp", "epochs": 2, "trainable": "top:1", "learning_rate": 0.01, "batch_size": 32,
         "lr_schedule": "constant", "continue_optimizer": True}]


def run_plan(config, run_dir):
    """Trains `config` into `run_dir` as a fresh process would: new model, new datasets."""
    trainer = trainer_lib.Trainer(config, str(run_dir))
    return fit(trainer, trainer.build_model(model_fn))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """PLAN's uninterrupted run for an EMA momentum, trained once per module: (weights, run dir)."""
    runs = {}

    def get(ema):
        if ema not in runs:
            run_dir = tmp_path_factory.mktemp("whole")
            runs[ema] = (run_plan(plan_config(PLAN, ema_momentum=ema), run_dir).get_weights(), run_dir)
        return runs[ema]

    return get


# Crash points (after the backup of epoch 1, 2, 3 or 5) with and without EMA: by default each
# point once and each EMA setting at two points; the other four combinations repeat them (slow).
slow = pytest.mark.slow
CRASHES = [pytest.param(1, 0.0, id="in_stage1-plain"), pytest.param(2, 0.9, id="between_stages-ema"),
           pytest.param(3, 0.9, id="in_stage2-ema"), pytest.param(5, 0.0, id="in_stage3-plain"),
           pytest.param(1, 0.9, id="in_stage1-ema", marks=slow),
           pytest.param(2, 0.0, id="between_stages-plain", marks=slow),
           pytest.param(3, 0.0, id="in_stage2-plain", marks=slow),
           pytest.param(5, 0.9, id="in_stage3-ema", marks=slow)]


@pytest.mark.parametrize("crash_at, ema", CRASHES)
def test_a_rerun_after_a_crash_ends_like_an_uninterrupted_run(tmp_path, monkeypatch, uninterrupted, crash_at, ema):
    config = plan_config(PLAN, ema_momentum=ema)
    expected_weights, whole_dir = uninterrupted(ema)
    with monkeypatch.context() as patch:
        crash_after_epoch(patch, crash_at)
        with pytest.raises(Crash):
            run_plan(config, tmp_path / "killed")
    assert not os.path.exists(tmp_path / "killed" / "checkpoints" / "best.keras")
    resumed = run_plan(config, tmp_path / "killed")

    # Same weights, optimizer and dropout state at the crash, the same learning-rate steps
    # and the same shuffles and noise (epoch k's) after it.
    for w0, w1 in zip(expected_weights, resumed.get_weights()):
        np.testing.assert_allclose(w0, w1, rtol=1e-5, atol=1e-6)
    whole = read_history(str(whole_dir))
    killed = read_history(str(tmp_path / "killed"))
    np.testing.assert_allclose(killed["learning_rate"], whole["learning_rate"], rtol=1e-6)
    np.testing.assert_allclose(killed["val_loss"], whole["val_loss"], rtol=1e-4)
    assert killed["stage"] == whole["stage"] == ["head"] * 2 + ["top"] * 2 + ["ramp"] * 2


BN_PLAN = [{"name": "head", "epochs": 1, "trainable": "head", "learning_rate": 0.01},
           {"name": "all", "epochs": 2, "trainable": "all", "learning_rate": 0.01, "batchnorm": "train",
            "batchnorm_momentum": 0.5},
           {"name": "frozen", "epochs": 1, "trainable": "all", "learning_rate": 0.01}]


def test_a_stage_can_train_batchnorm_and_resume_its_statistics(tmp_path, monkeypatch):
    """`batchnorm = "train"`: BatchNorm's scale and moving statistics change in that stage only
    (at the stage's momentum, put back afterwards), and a run killed inside it resumes them."""
    config = plan_config(BN_PLAN)
    trainer = trainer_lib.Trainer(config, str(tmp_path / "whole"))
    model = trainer.build_model(model_fn)
    bn = model.get_layer("backbone").get_layer("bn")
    seen = []
    fit_epoch = trainer_lib.Trainer._fit_epoch

    def recording(self, *args, **kwargs):
        before = [w.copy() for w in bn.get_weights()]  # gamma, beta, moving mean, moving variance
        logs = fit_epoch(self, *args, **kwargs)
        seen.append(([not np.array_equal(a, b) for a, b in zip(before, bn.get_weights())], bn.momentum))
        return logs

    monkeypatch.setattr(trainer_lib.Trainer, "_fit_epoch", recording)
    expected = fit(trainer, model)
    assert seen == [([False] * 4, 0.99), ([True] * 4, 0.5), ([True] * 4, 0.5), ([False] * 4, 0.99)]
    monkeypatch.undo()

    with monkeypatch.context() as patch:
        crash_after_epoch(patch, 2)  # inside the stage that trains BatchNorm
        with pytest.raises(Crash):
            run_plan(config, tmp_path / "killed")
    resumed = run_plan(config, tmp_path / "killed")
    for w0, w1 in zip(expected.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(w0, w1, rtol=1e-5, atol=1e-6)


def killed_then_rerun(monkeypatch, run, crash_at):
    """`run()` killed after epoch `crash_at` (None: not killed), then run again to the end."""
    if crash_at:
        with monkeypatch.context() as patch:
            crash_after_epoch(patch, crash_at)
            with pytest.raises(Crash):
                run()
    return run()


# Epoch 2 (the head's last) is the best; the 'all' stage then trains the backbone and
# BatchNorm's statistics, and scores worse.
BEST_EARLY_PLAN = [{"name": "head", "epochs": 2, "trainable": "head", "learning_rate": 0.05},
                   {"name": "all", "epochs": 2, "trainable": "all", "learning_rate": 0.05, "batchnorm": "train",
                    "batchnorm_momentum": 0.5}]


def script_val_accuracy(monkeypatch, values, record):
    """Epoch g's `val_accuracy` becomes `values[g]`; `record(g, model)` runs after it."""
    fit_epoch = trainer_lib.Trainer._fit_epoch

    def scripted(self, stage_model, batches, val, g, *args, **kwargs):
        logs = fit_epoch(self, stage_model, batches, val, g, *args, **kwargs)
        record(g, stage_model)
        return {**logs, "val_accuracy": values[g]}

    monkeypatch.setattr(trainer_lib.Trainer, "_fit_epoch", scripted)


@pytest.mark.parametrize("crash_at", [None, 3], ids=["whole", "killed_in_stage2"])
def test_the_kept_model_is_the_best_epochs_in_every_variable_when_a_later_stage_trained_more(
        tmp_path, monkeypatch, crash_at):
    """Not the best epoch's head on the later stage's backbone: the backbone, BatchNorm's
    scale and statistics are put back too, also after a kill inside the later stage."""
    snapshots = {}

    def record(g, model):
        snapshots[g] = [w.copy() for w in model.get_weights()]

    script_val_accuracy(monkeypatch, [0.5, 0.9, 0.1, 0.2], record)
    config = plan_config(BEST_EARLY_PLAN)

    kept = killed_then_rerun(monkeypatch, lambda: run_plan(config, tmp_path), crash_at)
    assert not np.array_equal(snapshots[3][0], snapshots[1][0])  # the 'all' stage changed conv_a
    for w0, w1 in zip(snapshots[1], kept.get_weights()):
        np.testing.assert_array_equal(w0, w1)
    saved = keras.models.load_model(RunDir(str(tmp_path)).best_checkpoint)
    for w0, w1 in zip(snapshots[1], saved.get_weights()):
        np.testing.assert_array_equal(w0, w1)


def dense_model_fn():
    keras.utils.set_random_seed(0)
    b_in = keras.Input((8, 8, 3))
    h = keras.layers.Dense(6, name="query")(keras.layers.Flatten()(b_in))
    backbone = keras.Model(b_in, keras.layers.Dense(6, name="value")(h), name="backbone")
    backbone.trainable = False
    inputs = keras.Input((8, 8, 3))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(backbone(inputs)))


@pytest.mark.parametrize("lora_init", ["default", "pissa"])
@pytest.mark.parametrize("crash_at", [None, 3], ids=["whole", "killed_in_stage2"])
def test_the_best_epoch_before_a_lora_stage_is_kept_exactly(tmp_path, monkeypatch, crash_at, lora_init):
    """A LoRA stage adds adapter variables in the middle of `model.variables`; the head stage's
    best snapshot still goes back to the head, and the adapters to their starting values
    (B = 0, or PiSSA's split of the kernel: the adapted layers compute what they did)."""
    outputs, rate_scales = {}, {}
    x = examples(16, seed=3)[0]

    def record(g, model):
        outputs[g] = model.predict(x, verbose=0)
        rate_scales[g] = getattr(model.optimizer, "rate_scales", None)

    script_val_accuracy(monkeypatch, [0.5, 0.9, 0.1, 0.2], record)
    config = plan_config([{"name": "head", "epochs": 2, "trainable": "head", "learning_rate": 0.05},
                          {"name": "lora", "epochs": 2, "trainable": "lora:2", "lora_targets": ["query", "value"],
                           "learning_rate": 0.05, "loraplus_lr_ratio": 4, "lora_init": lora_init}])

    def run():
        trainer = trainer_lib.Trainer(config, str(tmp_path))
        model = trainer.build_model(dense_model_fn)
        backbone = model.get_layer("backbone")
        return trainer.fit(model, batches(), data(seed=1),
                           parts=Parts(backbone, [[backbone.get_layer("query")], [backbone.get_layer("value")]]))

    kept = killed_then_rerun(monkeypatch, run, crash_at)
    adapters = [v for v in kept.variables if "lora_kernel" in v.path]
    assert len(adapters) == 4 and not np.allclose(outputs[3], outputs[1])
    # LoRA+: the B matrices at 4x the rate, the rest at 1x (when killed, g = 3 is the resumed run's).
    for g in (2, 3):  # the lora stage's epochs
        assert rate_scales[g] == {"query/lora_kernel_b": 4.0, "value/lora_kernel_b": 4.0}
    np.testing.assert_allclose(kept.predict(x, verbose=0), outputs[1], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(kept.get_layer("head").kernel.numpy(),
                                  keras.models.load_model(RunDir(str(tmp_path)).best_checkpoint)
                                  .get_layer("head").kernel.numpy())


def test_a_pissa_stage_killed_midway_ends_like_the_uninterrupted_run(tmp_path, monkeypatch):
    """The resumed run splits the rebuilt kernels again, to the same residuals, and takes the
    adapters from the backup."""
    script_val_accuracy(monkeypatch, [0.5, 0.6, 0.7, 0.8], lambda g, model: None)  # the last epoch is kept
    config = plan_config([{"name": "head", "epochs": 2, "trainable": "head", "learning_rate": 0.05},
                          {"name": "lora", "epochs": 2, "trainable": "lora:2", "lora_targets": ["query", "value"],
                           "learning_rate": 0.05, "lora_init": "pissa"}])

    def run(run_dir):
        trainer = trainer_lib.Trainer(config, str(run_dir))
        model = trainer.build_model(dense_model_fn)
        backbone = model.get_layer("backbone")
        return trainer.fit(model, batches(), data(seed=1),
                           parts=Parts(backbone, [[backbone.get_layer("query")], [backbone.get_layer("value")]]))

    whole = run(tmp_path / "whole")
    resumed = killed_then_rerun(monkeypatch, lambda: run(tmp_path / "killed"), 3)
    query = resumed.get_layer("backbone").get_layer("query")
    assert query.lora_enabled and np.abs(query.lora_kernel_a.numpy()).max() > 0
    for w0, w1 in zip(whole.weights, resumed.weights):
        np.testing.assert_allclose(w0.numpy(), w1.numpy(), rtol=1e-6, atol=1e-7, err_msg=w0.path)
    x = examples(16, seed=3)[0]
    np.testing.assert_allclose(resumed.predict(x, verbose=0), whole.predict(x, verbose=0), rtol=1e-6, atol=1e-7)


def test_a_corrupt_latest_backup_falls_back_to_the_one_before(tmp_path, monkeypatch, caplog):
    config = plan_config(PLAN[:2])
    with monkeypatch.context() as patch:
        crash_after_epoch(patch, 3)
        with pytest.raises(Crash):
            trainer = trainer_lib.Trainer(config, str(tmp_path))
            fit(trainer, trainer.build_model(model_fn))
    latest = tmp_path / "backup" / backup.LATEST
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])  # truncated
    with caplog.at_level("WARNING"):
        trainer = trainer_lib.Trainer(config, str(tmp_path))
        fit(trainer, trainer.build_model(model_fn))
    assert any("is unreadable" in r.getMessage() and "falling back" in r.getMessage() for r in caplog.records)
    history = read_history(str(tmp_path))
    assert history["stage"] == ["head", "head", "top", "top"]  # epoch 3 ran again


def test_ema_validates_and_keeps_the_moving_average(tmp_path, monkeypatch):
    """With --ema-momentum, each epoch's validation and the best model are the weights' average."""
    raw_heads = []  # the head's trained (not averaged) kernel at each epoch's end
    fit_epoch = trainer_lib.Trainer._fit_epoch

    def recording(self, model, *args, **kwargs):
        logs = fit_epoch(self, model, *args, **kwargs)
        raw_heads.append(model.get_layer("head").kernel.numpy().copy())
        return logs

    monkeypatch.setattr(trainer_lib.Trainer, "_fit_epoch", recording)
    config = TrainConfig(epochs=3, fine_tune_epochs=0, batch_size=16, learning_rate=0.05,
                         ema_momentum=0.9, monitor="val_loss")
    trainer = trainer_lib.Trainer(config, str(tmp_path))
    model = trainer.fit(trainer.build_model(model_fn), batches(), data(seed=1))

    history = read_history(str(tmp_path))
    best = int(np.argmin(history["val_loss"]))
    loss, accuracy = model.evaluate(data(seed=1), verbose=0)
    # The logged validation of the best epoch is the returned model's: the average was
    # validated and kept, not the weights the last step left.
    np.testing.assert_allclose(loss, history["val_loss"][best], rtol=1e-5)
    np.testing.assert_allclose(accuracy, history["val_accuracy"][best], rtol=1e-6)
    assert np.abs(model.get_layer("head").kernel.numpy() - raw_heads[best]).max() > 1e-3
    assert not os.path.exists(tmp_path / "backup")


def test_nan_loss_is_a_clear_error(tmp_path):
    config = TrainConfig(epochs=1, batch_size=16)
    with pytest.raises(UserError, match="lower its learning rate"):
        trainer_lib.Trainer(config, str(tmp_path)).fit(model_fn(), data(nan=True), data(seed=1))


def plain_model():
    inputs = keras.Input((8, 8, 3))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inputs)))


def test_nothing_to_unfreeze_trains_one_phase_and_says_so(tmp_path, caplog):
    config = TrainConfig(epochs=2, fine_tune_epochs=3, batch_size=16)
    # No pretrained part at all, and a backbone that was never frozen.
    trainable = model_fn()
    trainable.get_layer("backbone").trainable = True
    for name, model, backbone, reason in (
        ("none", plain_model(), None, "this model has no pretrained backbone to unfreeze"),
        ("trainable", trainable, trainable.get_layer("backbone"), "all layers of 'backbone' are trainable already"),
    ):
        with caplog.at_level("INFO", logger="tf_finetune"):
            trainer_lib.Trainer(config, str(tmp_path / name)).fit(model, batches(), data(seed=1), backbone=backbone)
        lines = [r.getMessage() for r in caplog.records if "one phase" in r.getMessage()]
        assert lines == [f"Training in one phase of 2 epochs: {reason}, so --fine-tune-epochs 3 is not used."]
        caplog.clear()
        assert len(read_history(str(tmp_path / name))["loss"]) == 2
        assert [s["name"] for s in RunDir(str(tmp_path / name)).read_state()["stages"]] == ["head"]


def test_only_a_fine_tune_phase_with_nothing_to_unfreeze_is_a_clear_error(tmp_path):
    config = TrainConfig(epochs=0, fine_tune_epochs=1, batch_size=16)
    with pytest.raises(UserError, match="--epochs 0 leaves only the fine-tune phase, but this model has no pretrained"):
        trainer_lib.Trainer(config, str(tmp_path)).fit(plain_model(), batches(), data(seed=1))
    assert not os.path.exists(tmp_path / "checkpoints")


def test_unfreezable_parameters_are_counted_without_changing_the_model():
    model = model_fn()
    backbone = model.get_layer("backbone")
    flags = [layer.trainable for layer in backbone._flatten_layers()]
    # conv_b (3*3*4*4 + 4) is the top layer, then BatchNorm (stays frozen), then conv_a
    # (3*3*3*4 + 4).
    assert freezing.frozen_params_in_top(backbone, 1) == 148
    assert freezing.frozen_params_in_top(backbone, -1) == 148 + 112
    assert [layer.trainable for layer in backbone._flatten_layers()] == flags
    assert not backbone.trainable_weights


def test_read_history_keeps_the_last_row_of_a_repeated_epoch(tmp_path):
    (tmp_path / "history.csv").write_text(
        "epoch,stage,accuracy,loss\n0,a,0.5,1.0\n1,a,0.6,0.9\nepoch,stage,accuracy,loss\n1,b,0.7,0.8\n2,b,0.8,0.7\n")
    assert read_history(str(tmp_path)) == {"stage": ["a", "b", "b"], "accuracy": [0.5, 0.7, 0.8],
                                           "loss": [1.0, 0.8, 0.7]}


def test_history_records_the_learning_rate_of_each_stage(tmp_path):
    config = TrainConfig(epochs=2, fine_tune_epochs=1, unfreeze_top=-1, batch_size=16,
                         lr_schedule="constant", learning_rate=0.01, fine_tune_learning_rate=0.001)
    trainer = trainer_lib.Trainer(config, str(tmp_path))
    fit(trainer, model_fn())
    np.testing.assert_allclose(read_history(str(tmp_path))["learning_rate"], [0.01, 0.01, 0.001], rtol=1e-6)


def test_each_epoch_reads_the_batches_of_its_seed_and_the_ramp_its_batch_size(tmp_path):
    seen = []
    config = plan_config([{"technique": "batch_ramp", "start": 8, "every": 1, "max": 32, "epochs": 4,
                           "trainable": "head", "learning_rate": 0.01}])
    trainer = trainer_lib.Trainer(config, str(tmp_path))
    fit(trainer, trainer.build_model(model_fn), train=batches(seen=seen))
    # The first call measures the stage's steps; then one call per epoch.
    sizes = [size for _, size in seen]
    assert sizes == [8, 8, 16, 32, 32]
    assert [s for s, _ in seen[1:3]] == [trainer_lib.epoch_seed(42, 0, 0), trainer_lib.epoch_seed(42, 1, 0)]
    assert read_history(str(tmp_path))["stage"] == ["batch_ramp-8", "batch_ramp-16", "batch_ramp-32", "batch_ramp-32"]


def test_adaptive_unfreezing_unfreezes_the_next_block_when_the_metric_stalls(tmp_path, monkeypatch):
    """A scripted val_accuracy: up, then flat. With patience 2 the head step ends after two
    flat epochs, the next step unfreezes one block, and so on up to max_blocks."""
    script = iter([0.5, 0.6, 0.6, 0.6, 0.7, 0.7, 0.7, 0.75, 0.8, 0.8, 0.8])
    fit_epoch = trainer_lib.Trainer._fit_epoch

    def scripted(self, *args, **kwargs):
        logs = fit_epoch(self, *args, **kwargs)
        logs["val_accuracy"] = next(script)
        return logs

    monkeypatch.setattr(trainer_lib.Trainer, "_fit_epoch", scripted)
    config = plan_config([{"technique": "adaptive_unfreezing", "max_blocks": 2, "patience": 2,
                           "epochs_per_block": 4, "learning_rate": 0.01}])
    trainer = trainer_lib.Trainer(config, str(tmp_path))
    fit(trainer, trainer.build_model(model_fn))
    stages = RunDir(str(tmp_path)).read_state()["stages"]
    assert [(s["name"], s["epochs_run"], s["ended"]) for s in stages] == [
        ("adaptive_unfreezing-0", 4, "stalled"),  # 0.5 0.6 0.6 0.6: two epochs without a gain
        ("adaptive_unfreezing-1", 3, "stalled"),  # 0.7 0.7 0.7
        ("adaptive_unfreezing-2", 4, "stalled"),  # 0.75 0.8 0.8 0.8
    ]
    history = read_history(str(tmp_path))
    assert history["stage"] == ["adaptive_unfreezing-0"] * 4 + ["adaptive_unfreezing-1"] * 3 + [
        "adaptive_unfreezing-2"] * 4


def test_mixed_precision_applies_to_the_model_only(tmp_path):
    config = TrainConfig(mixed_precision=True)
    before = keras.config.dtype_policy().name
    model = trainer_lib.Trainer(config, str(tmp_path)).build_model(model_fn)
    assert model.get_layer("backbone").get_layer("conv_a").dtype_policy.name == "mixed_float16"
    assert keras.config.dtype_policy().name == before  # no global policy left behind


def test_tensorboard_gets_one_summary_per_epoch(tmp_path):
    config = TrainConfig(epochs=2, fine_tune_epochs=0, batch_size=16)
    trainer_lib.Trainer(config, str(tmp_path)).fit(model_fn(), batches(), data(seed=1))
    steps = {}
    for root, _, names in os.walk(tmp_path / "logs"):
        for name in names:
            for event in tf.compat.v1.train.summary_iterator(os.path.join(root, name)):
                for value in event.summary.value:
                    steps.setdefault(value.tag, []).append(event.step)
    assert sorted(steps["epoch_loss"]) == [0, 0, 1, 1]  # train and validation writers
    assert steps["epoch_learning_rate"] == [0, 1]
    assert not any(tag.startswith("batch_") for tag in steps)
