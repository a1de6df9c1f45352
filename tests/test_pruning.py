"""Magnitude pruning as a stage option: the schedule, which kernels, masks through fit, resume and
export, and bad plans."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from projects.plant_cnn.project import PROJECT as PLANT
from tests.conftest import write_image
from tests.helpers import assert_one_line_error
from tests.helpers import call_cli
from tests.test_backup import compiled_model as compiled_backup_model
from tests.test_export import jpegs
from tests.test_export import preprocess
from tests.test_trainer import Crash
from tests.test_trainer import batches
from tests.test_trainer import crash_after_epoch
from tests.test_trainer import data
from tests.test_trainer import plan_config
from tf_finetune.config import TrainConfig
from tf_finetune.errors import UserError
from tf_finetune.models import pruning
from tf_finetune.models.frozen_prefix import FrozenPrefix
from tf_finetune.run_dir import read_history
from tf_finetune.serving import saved_model
from tf_finetune.training import backup
from tf_finetune.training import stages
from tf_finetune.training import trainer as trainer_lib

# --- the schedule -------------------------------------------------------------------


@pytest.mark.parametrize("step, initial, expected", [
    (0, 0.0, 0.0),        # before the begin step: the initial sparsity
    (10, 0.0, 0.0),       # at the begin step
    (35, 0.0, 0.4625),    # a quarter of the way: 0.8 - 0.8 * 0.75 ** 3, fast at first
    (60, 0.0, 0.7),       # halfway: 0.8 - 0.8 * 0.5 ** 3, slow near the target
    (110, 0.0, 0.8),      # at the end step: the target exactly
    (500, 0.0, 0.8),      # after it
    (60, 0.5, 0.7625),    # a later stage starts from the sparsity reached
], ids=["before", "begin", "quarter", "middle", "end", "after", "from_initial"])
def test_sparsity_follows_zhu_and_gupta_cubic_schedule(step, initial, expected):
    value = pruning.polynomial_sparsity(step, initial=initial, target=0.8, begin_step=10, end_step=110)
    assert value == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("step, expected", [
    (9, False), (10, True), (15, False), (20, True), (40, True), (44, False), (45, True), (46, False), (50, False),
])
def test_masks_are_remade_at_begin_every_frequency_steps_and_at_end_only(step, expected):
    assert pruning.should_update(step, begin_step=10, end_step=45, frequency=10) is expected


def test_a_schedule_past_the_stage_is_clipped_to_its_steps(caplog):
    stage = stages.Stage("prune", 2, prune_sparsity=0.5, prune_begin_step=30, prune_end_step=400, prune_frequency=3)
    with caplog.at_level("INFO"):
        schedule = pruning.Schedule.for_stage(stage, total_steps=20, initial=0.0, where="Stage 2 (prune)")
    assert (schedule.begin_step, schedule.end_step, schedule.frequency) == (19, 19, 3)
    assert schedule.sparsity(19) == 0.5 and schedule.updates_at(19)
    assert "clipped to steps 19 to 19" in caplog.text
    default = pruning.Schedule.for_stage(stages.Stage("p", 2, prune_sparsity=0.5), total_steps=20, initial=0.0)
    assert (default.begin_step, default.end_step) == (0, 19)  # -1: the stage's last step


# --- what is pruned -----------------------------------------------------------------


def layered_model():
    """Every kind of kernel, some inside a nested model, one inside a FrozenPrefix."""
    frozen_in = keras.Input((8, 8, 3))
    frozen_out = keras.layers.Conv2D(48, 3, padding="same", name="frozen_conv")(frozen_in)
    frozen = FrozenPrefix(keras.Model(frozen_in, frozen_out))
    inner_in = keras.Input((8, 8, 48))
    h = keras.layers.Conv2D(16, 3, padding="same", name="conv")(inner_in)             # 6,912
    h = keras.layers.DepthwiseConv2D(3, depth_multiplier=8, name="depthwise")(h)      # 1,152
    h = keras.layers.SeparableConv2D(64, 3, name="separable")(h)                     # 1,152 + 8,192
    h = keras.layers.BatchNormalization(name="bn")(h)
    inner = keras.Model(inner_in, h, name="inner")
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(inner(frozen(inputs)))
    x = keras.layers.EinsumDense("ab,bc->ac", output_shape=20, name="einsum")(x)     # 1,280
    x = keras.layers.Dense(40, name="small")(keras.layers.Dense(20, name="tiny")(x))  # 400, 800
    return keras.Model(inputs, keras.layers.Dense(30, name="head")(x))               # 1,200


def test_default_kernels_are_dense_and_conv_kernels_of_1000_params_at_any_depth():
    model = layered_model()
    assert [k.name for k in pruning.prunable_kernels(model)] == [
        "conv", "depthwise", "separable/depthwise_kernel", "separable/pointwise_kernel", "einsum", "head"]
    everything = [k.name for k in pruning.prunable_kernels(model, min_params=0)]
    assert "tiny" in everything and "small" in everything and "frozen_conv" not in everything
    chosen = pruning.prunable_kernels(model, names=("tiny", "separable"))
    assert [k.name for k in chosen] == ["tiny", "separable/depthwise_kernel", "separable/pointwise_kernel"]


def text_model():
    """An embedding table, a bidirectional LSTM and a GRU: where a text model keeps its weights."""
    inputs = keras.Input((12,), dtype="int32")
    x = keras.layers.Embedding(300, 16, name="embedding")(inputs)                       # 4,800
    x = keras.layers.Bidirectional(keras.layers.LSTM(16, return_sequences=True, name="lstm"),
                                   name="bilstm")(x)                                   # 2 x (1,024 + 1,024)
    x = keras.layers.GRU(16, name="gru")(x)                                             # 1,536 + 768
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="head")(x))


def test_text_models_prune_their_embedding_and_recurrent_kernels_and_a_bidirectional_name_means_both():
    model = text_model()
    assert [(k.name, k.size) for k in pruning.prunable_kernels(model)] == [
        ("embedding", 4800), ("forward_lstm/kernel", 1024), ("forward_lstm/recurrent_kernel", 1024),
        ("backward_lstm/kernel", 1024), ("backward_lstm/recurrent_kernel", 1024), ("gru/kernel", 1536)]
    assert [k.name for k in pruning.prunable_kernels(model, names=("bilstm",))] == [
        "forward_lstm/kernel", "forward_lstm/recurrent_kernel", "backward_lstm/kernel", "backward_lstm/recurrent_kernel"]
    assert [k.name for k in pruning.prunable_kernels(model, names=("gru",))] == ["gru/kernel", "gru/recurrent_kernel"]


def test_pruned_embedding_rows_and_recurrent_weights_stay_zero_through_training():
    """The embedding's gradient is sparse (only the rows a batch looks up); the mask is applied
    to the whole table after every step all the same."""
    keras.utils.set_random_seed(0)
    model = text_model()
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    kernels = pruning.prunable_kernels(model)
    pruner = pruning.Pruner(kernels)
    pruner.update(0.5)
    pruner.attach()
    before = [k.variable.numpy() for k in kernels]
    zeros = [b == 0 for b in before]
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 300, size=(256, 12)).astype("int32")
    model.fit(ids, (ids[:, 0] % 2).astype("int32"), batch_size=32, epochs=2, verbose=0)
    for kernel, old, was_zero in zip(kernels, before, zeros):
        value = kernel.variable.numpy()
        assert was_zero.sum() == pruning.pruned_count(0.5, kernel.size), kernel.name
        assert np.all(value[was_zero] == 0), kernel.name
        assert np.any(value[~was_zero] != old[~was_zero]), kernel.name  # the kept weights trained


@pytest.mark.parametrize("name, message", [
    ("nope", "stage 2 ('prune'), field prune_layers: no Dense, EinsumDense, convolution, Embedding or recurrent "
             "layer named 'nope' in the model (e.g. conv, depthwise, einsum"),
    ("bn", "layer named 'bn'"),
    ("frozen_conv", "layer 'frozen_conv' is inside the model's FrozenPrefix"),
])
def test_a_layer_that_cannot_be_pruned_is_one_line_naming_the_stage_and_field(name, message):
    stage = stages.Stage("prune", 1, prune_sparsity=0.5, prune_layers=(name,))
    with pytest.raises(UserError) as info:
        pruning.check_plan([stages.Stage("fit", 1), stage], layered_model())
    assert message in str(info.value) and "\n" not in str(info.value)


# --- masks --------------------------------------------------------------------------


def dense_with(weights):
    layer = keras.layers.Dense(weights.shape[1], use_bias=False)
    layer.build((None, weights.shape[0]))
    layer.kernel.assign(weights)
    return layer


def test_a_mask_zeroes_exactly_the_smallest_weights_ties_by_position_and_masks_only_grow():
    weights = np.array([[0.5, -0.1, 0.3, 0.1], [-0.7, 0.2, 0.1, -0.9]], np.float32)
    layer = dense_with(weights)
    pruner = pruning.Pruner([pruning.Kernel("d", layer, layer._kernel)])

    def after(sparsity, mask):
        pruner.update(sparsity)
        np.testing.assert_array_equal(layer.kernel.numpy(), weights * np.array(mask, np.float32))

    after(0.25, [[1, 0, 1, 0], [1, 1, 1, 1]])  # 2 of 8: of the three |0.1|, the first two
    after(0.5, [[1, 0, 1, 0], [1, 0, 0, 1]])   # then the third and 0.2
    after(0.3, [[1, 0, 1, 0], [1, 0, 0, 1]])   # a lower sparsity unmasks nothing
    after(0.75, [[0, 0, 0, 0], [1, 0, 0, 1]])  # 0.3 and 0.5 next
    assert pruner.sparsity()["layers"]["d"] == {"params": 8, "zeros": 6, "sparsity": 0.75}


@pytest.mark.parametrize("shapes, sparsity, expected", [
    # Densities 40/24 * (8/16, 16/64): 16 * 5/6 + 64 * 5/12 = 40 weights kept of 80.
    ([(4, 4), (8, 8)], 0.5, [1 / 6, 7 / 12]),
    # The 2x2 kernel's share would be 5.06: it stays dense and the other keeps (182 - 4) / 256.
    ([(2, 2), (16, 16)], 0.3, [0.0, 1 - 178 / 256]),
    # A convolution's spatial dimensions count too: scores 10 / 36 and 18 / 64, 20 of 100 kept.
    ([(3, 3, 2, 2), (1, 1, 8, 8)], 0.8, [1 - 20 / 28 * 10 / 36, 1 - 20 / 28 * 18 / 64]),
])
def test_erk_sparsities_match_a_hand_computation_and_add_up_to_the_target(shapes, sparsity, expected):
    got = pruning.erk_sparsities(shapes, sparsity)
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    sizes = [np.prod(shape) for shape in shapes]
    assert sum(size * share for size, share in zip(sizes, got)) == pytest.approx(sparsity * sum(sizes))


def test_erk_sparsities_never_drop_along_a_schedule():
    shapes = [(1, 1, 96, 96), (1, 1, 96, 192), (1, 1, 384, 384), (1, 1, 768, 768), (3, 3, 1, 96)]
    rows = [pruning.erk_sparsities(shapes, s) for s in np.linspace(0.0, 0.95, 40)]
    assert np.all(np.diff(np.array(rows), axis=0) >= -1e-12)
    assert rows[-1][0] < rows[-1][2] < rows[-1][3]  # the wider, the sparser


def test_global_masks_share_one_threshold_and_only_grow():
    small = np.array([[0.1, -0.2], [0.3, 0.05]], np.float32)
    large = np.array([[0.9, -0.15, 0.8, 0.25]], np.float32)
    layers = [dense_with(small), dense_with(large)]
    pruner = pruning.Pruner([pruning.Kernel(f"d{i}", layer, layer._kernel) for i, layer in enumerate(layers)])

    def after(sparsity, masks):
        pruner.update(sparsity, allocation="global")
        for layer, weights, mask in zip(layers, (small, large), masks):
            np.testing.assert_array_equal(layer.kernel.numpy(), weights * np.array(mask, np.float32))

    after(0.25, [[[0, 1], [1, 0]], [[1, 1, 1, 1]]])     # 2 of 8: 0.05 and 0.1, both in the small kernel
    after(0.5, [[[0, 0], [1, 0]], [[1, 0, 1, 1]]])      # then 0.15 (large) and 0.2
    after(0.4, [[[0, 0], [1, 0]], [[1, 0, 1, 1]]])      # a lower sparsity unmasks nothing
    layers[1]._kernel.assign(large * [[1, 0, 1, 0.01]])  # 0.25 -> 0.0025, now below 0.3
    after(0.625, [[[0, 0], [1, 0]], [[1, 0, 1, 0]]])
    assert pruner.mask_sparsity(allocation="global") == 0.625
    assert pruner.mask_sparsity() == 0.5  # "uniform": the least pruned kernel's share


class Recorder(keras.callbacks.Callback):
    """The kernel's zero count when each batch starts (after the masks were remade) and ends
    (after its optimizer step)."""

    def __init__(self, variable):
        super().__init__()
        self.variable, self.begin, self.end = variable, [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.begin.append(int(np.count_nonzero(self.variable.numpy() == 0)))

    def on_train_batch_end(self, batch, logs=None):
        self.end.append(int(np.count_nonzero(self.variable.numpy() == 0)))


def small_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Dense(32, activation="relu", name="hidden")(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(x))


def compiled(model):
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    return model


def test_in_a_real_fit_the_sparsity_follows_the_schedule_step_by_step_and_pruned_weights_stay_zero():
    keras.utils.set_random_seed(0)
    model = compiled(small_model())
    kernel = pruning.prunable_kernels(model, names=("hidden",))[0]
    pruner = pruning.Pruner([kernel])
    pruner.attach()
    schedule = pruning.Schedule(initial=0.0, target=0.9, begin_step=2, end_step=13, frequency=4)
    recorder = Recorder(kernel.variable)
    steps = 4  # 64 examples in batches of 16
    for epoch in range(4):  # one fit per epoch, as the trainer runs them; traced once, masks remade later
        model.fit(data(), epochs=1, verbose=0, shuffle=False,
                  callbacks=[pruning.PruningCallback(pruner, schedule, first_step=epoch * steps), recorder])
    expected, current = [], 0
    for step in range(4 * steps):
        if schedule.updates_at(step):
            current = pruning.pruned_count(schedule.sparsity(step), kernel.size)
        expected.append(current)
    assert expected[:2] == [0, 0] and expected[-1] == pruning.pruned_count(0.9, kernel.size)
    assert recorder.begin == expected  # remade at steps 2, 6, 10 and 13, at the schedule's values
    assert recorder.end == expected  # and no optimizer step moved a pruned weight
    pruner.detach()
    assert kernel.variable.constraint is None


def test_without_the_constraint_training_moves_pruned_weights():
    """The control of the test above: a mask applied once does not survive training."""
    model = compiled(small_model())
    kernel = pruning.prunable_kernels(model, names=("hidden",))[0]
    pruning.Pruner([kernel]).update(0.5)
    model.fit(data(), epochs=1, verbose=0, shuffle=False)
    assert np.count_nonzero(kernel.variable.numpy() == 0) < kernel.size // 2


# --- in the trainer: stages, best checkpoint, resume ---------------------------------


def fit_plan(run_dir, plan, **settings):
    trainer = trainer_lib.Trainer(plan_config(plan, **settings), str(run_dir))
    return trainer.fit(trainer.build_model(small_model), batches(), data(seed=1))


PRUNE_PLAN = [{"name": "dense", "epochs": 1, "trainable": "all", "learning_rate": 0.01},
              {"name": "prune", "epochs": 2, "learning_rate": 0.01, "prune_sparsity": 0.75, "prune_frequency": 2},
              {"name": "after", "epochs": 1, "learning_rate": 0.01}]


@pytest.fixture(scope="module")
def pruned_run(tmp_path_factory):
    """PRUNE_PLAN with EMA, uninterrupted: (run dir, returned model)."""
    run_dir = tmp_path_factory.mktemp("pruned_run")
    return run_dir, fit_plan(run_dir, PRUNE_PLAN, ema_momentum=0.9)


def kernel_sparsity(model, name):
    return float(np.mean(model.get_layer(name).kernel.numpy() == 0))


def test_a_pruning_stage_reaches_its_target_which_later_stages_keep_and_history_records(pruned_run):
    run_dir, model = pruned_run
    sparsity = read_history(str(run_dir))["sparsity"]
    assert sparsity[0] == 0.0 and 0.0 < sparsity[1] < 0.75 and sparsity[2:] == [0.75, 0.75]
    # The hidden kernel (6,144 weights) at the target; the head's 96 are under prune_min_params.
    assert kernel_sparsity(model, "hidden") == 0.75 and kernel_sparsity(model, "head") == 0.0
    assert model.get_layer("hidden")._kernel.constraint is None  # stripped: an ordinary model


def test_only_epochs_at_the_final_sparsity_can_be_the_best(tmp_path):
    """Every kernel pruned to 99% at a tiny rate: the dense epochs score at least as well (and
    come first, so they would win a tie), yet the kept model is the pruned one."""
    plan = [{"name": "dense", "epochs": 2, "trainable": "all", "learning_rate": 0.01},
            {"name": "prune", "epochs": 1, "learning_rate": 1e-6, "prune_sparsity": 0.99, "prune_min_params": 0}]
    model = fit_plan(tmp_path, plan)
    history = read_history(str(tmp_path))
    assert max(history["val_accuracy"][:2]) >= history["val_accuracy"][2]
    assert kernel_sparsity(model, "hidden") == pytest.approx(0.99, abs=1e-3)
    assert kernel_sparsity(model, "head") == pytest.approx(0.99, abs=0.01)


def test_an_erk_stage_keeps_the_small_kernel_dense_and_prunes_the_large_one_to_make_up(tmp_path):
    """The hidden kernel (192x32) and the head's (32x3) at 75% together, by ERK: the head's
    share would be 2.2, so it stays dense and the hidden kernel keeps (1560 - 96) of 6,144."""
    plan = [{"name": "dense", "epochs": 1, "trainable": "all", "learning_rate": 0.01},
            {"name": "prune", "epochs": 1, "learning_rate": 0.01, "prune_sparsity": 0.75, "prune_min_params": 0,
             "prune_allocation": "erk", "prune_frequency": 2}]
    model = fit_plan(tmp_path, plan)
    assert kernel_sparsity(model, "head") == 0.0
    assert kernel_sparsity(model, "hidden") == pruning.pruned_count(1 - 1464 / 6144, 6144) / 6144
    assert read_history(str(tmp_path))["sparsity"][-1] == pytest.approx(0.75, abs=1 / 6240)


def test_a_rerun_after_a_crash_mid_pruning_ends_like_an_uninterrupted_run(pruned_run, tmp_path, monkeypatch):
    whole_dir, expected = pruned_run
    with monkeypatch.context() as patch:
        crash_after_epoch(patch, 2)  # within the pruning stage: masks half made
        with pytest.raises(Crash):
            fit_plan(tmp_path, PRUNE_PLAN, ema_momentum=0.9)
    resumed = fit_plan(tmp_path, PRUNE_PLAN, ema_momentum=0.9)
    for w0, w1 in zip(expected.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(w0, w1, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(resumed.get_layer("hidden").kernel.numpy() == 0,
                                  expected.get_layer("hidden").kernel.numpy() == 0)
    assert read_history(str(tmp_path))["sparsity"] == read_history(str(whole_dir))["sparsity"]


def test_masks_round_trip_through_the_latest_backup_and_older_backups_read_without_them(tmp_path):
    model = compiled_backup_model()
    backups = backup.Backup(str(tmp_path), model)
    backups.track(model.trainable_variables)
    masks = {"dense": np.array([[0, 1], [1, 0], [1, 1]], np.float32)}
    backups.write_latest(model.optimizer, {"stage": 1, "epochs_done": 3, "masks": masks, "prune_initial": 0.25})
    meta, arrays, optimizer_arrays = backups.read_latest()
    np.testing.assert_array_equal(meta["masks"]["dense"], masks["dense"])
    assert meta["prune_initial"] == 0.25 and len(optimizer_arrays) == len(model.optimizer.variables)
    # A backup from before pruning existed: no masks, and the optimizer's arrays are all there.
    backup.write(str(tmp_path / backup.LATEST), [*arrays, *optimizer_arrays],
                 {"stage": 1, "epochs_done": 3, "indices": backups.indices, "model_count": len(arrays)})
    meta, _, optimizer_arrays = backups.read_latest()
    assert meta["masks"] == {} and len(optimizer_arrays) == len(model.optimizer.variables)


# --- export -------------------------------------------------------------------------


def test_the_savedmodel_records_the_sparsity_and_serves_like_the_masked_model(pruned_run, tmp_path):
    _, model = pruned_run
    plan = [stage.to_dict() for stage in stages.expand(plan_config(PRUNE_PLAN))]
    path = saved_model.export_classifier(model, preprocess=preprocess, class_names=list("abc"),
                                         export_dir=str(tmp_path), examples=jpegs(4), plan=plan)
    with open(os.path.join(path, "pruning.json")) as f:
        record = json.load(f)
    assert record["target_sparsity"] == 0.75 and record["layers"]["hidden"]["sparsity"] == 0.75
    assert record["sparsity"] == 0.75 and set(record["layers"]) == {"hidden"}
    size = record["formats"]["saved_model"]
    assert 0 < size["gzip_bytes"] < size["bytes"]
    raw = jpegs(6, seed=1)
    served = tf.saved_model.load(path).signatures["serving_default"](tf.constant(raw))["probabilities"]
    np.testing.assert_allclose(served.numpy(), model(preprocess(tf.constant(raw))), atol=1e-5)
    # A run that did not prune writes no pruning.json.
    plain = saved_model.export_classifier(model, preprocess=preprocess, class_names=list("abc"),
                                          export_dir=str(tmp_path), examples=jpegs(2), plan=plan[:1])
    assert not os.path.exists(os.path.join(plain, "pruning.json"))


# --- bad plans ----------------------------------------------------------------------


@pytest.mark.parametrize("fields, message", [
    ({"prune_sparsity": 1.2},
     "stage 2 ('prune'), field prune_sparsity: must be in [0, 1). Received: prune_sparsity=1.2"),
    ({"prune_sparsity": -0.1}, "field prune_sparsity: must be in [0, 1). Received: prune_sparsity=-0.1"),
    ({"prune_sparsity": 0.5, "prune_begin_step": 50, "prune_end_step": 20},
     "field prune_end_step: an end step before the begin step: must be after prune_begin_step (50), or -1 for the "
     "stage's last step. Received: prune_end_step=20"),
    ({"prune_sparsity": 0.5, "prune_frequency": 0}, "field prune_frequency: must be at least 1"),
    ({"prune_sparsity": 0.5, "prune_layers": [3]}, "field prune_layers: must be a list of names"),
    ({"prune_sparsity": 0.5, "prune_allocation": "layerwise"},
     "field prune_allocation: must be one of uniform, erk, global. Received: prune_allocation='layerwise'"),
    ({"distill_alpha": 1.5}, "stage 2 ('prune'), field distill_alpha: must be in [0, 1] (the soft targets' weight; "
                             "0 = no teacher). Received: distill_alpha=1.5"),
    ({"distill_alpha": 0.5, "distill_temperature": 0.0},
     "field distill_temperature: must be positive. Received: distill_temperature=0.0"),
])
def test_a_bad_pruning_field_is_one_line(fields, message):
    specs = ({"name": "fit", "epochs": 1}, {"name": "prune", "epochs": 1, **fields})
    with pytest.raises(UserError) as info:
        stages.expand(TrainConfig(stages=specs))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_pruning_and_lora_in_one_plan_are_refused():
    specs = ({"name": "lora", "epochs": 1, "trainable": "lora:4"},
             {"name": "prune", "epochs": 1, "prune_sparsity": 0.5})
    with pytest.raises(UserError, match="stage 2 \\('prune'\\), field prune_sparsity: pruning and LoRA do not combine"):
        stages.expand(TrainConfig(stages=specs), num_blocks=2)


PLAN_TOML = """
[[stages]]
name = "fit"
epochs = 1
trainable = "all"

[[stages]]
name = "prune"
epochs = {epochs}
prune_sparsity = {sparsity}
prune_layers = {layers}
prune_end_step = 500
prune_frequency = 2
"""


def plan_toml(tmp_path, epochs=1, sparsity=0.8, layers=()):
    """A fit stage, then a pruning stage whose end step is past a smoke run's steps."""
    path = tmp_path / "prune.toml"
    path.write_text(PLAN_TOML.format(epochs=epochs, sparsity=sparsity, layers=json.dumps(list(layers))))
    return str(path)


@pytest.mark.parametrize("kwargs, fragments", [
    ({"sparsity": 1.2}, ["stage 2 ('prune'), field prune_sparsity: must be in [0, 1). Received: prune_sparsity=1.2"]),
    ({"layers": ["conv9"]}, ["stage 2 ('prune'), field prune_layers: no Dense, EinsumDense, convolution, Embedding "
                             "or recurrent layer named 'conv9' in the model (e.g. ", "conv2d"]),
], ids=["sparsity", "unknown_layer"])
def test_the_cli_rejects_a_bad_pruning_stage_with_one_line_and_writes_nothing(tmp_path, capsys, kwargs, fragments):
    images = tmp_path / "images"
    for cls, color in (("blue", (20, 20, 220)), ("red", (220, 20, 20))):
        for i in range(4):
            write_image(str(images / cls / f"{i}.jpg"), size=(24, 24), color=color)
    run = str(tmp_path / "run")
    result = call_cli(PLANT, ["train", "--config", plan_toml(tmp_path, **kwargs), "--data-dir", str(images),
                              "--smoke", "--backbone", "seed_cnn", "--image-size", "32", "--batch-size", "4",
                              "--output-dir", run, "--export-dir", str(tmp_path / "exports")], capsys)
    assert_one_line_error(result, *fragments, run_dir=run)
    assert not os.path.exists(tmp_path / "exports")


# The end-to-end run (a smoke plant_cnn run with a pruning stage, exported with int8 LiteRT
# beside it) is in tests/test_plant_cnn_cli.py, with the other smoke runs: it takes 20 s.
