import keras
import numpy as np
import pytest

from tests.helpers import assert_saves_and_reloads
from tf_finetune.training import optimizers
from tf_finetune.training import trainer as trainer_lib
from tf_finetune.config import TrainConfig
from tf_finetune.errors import UserError


def stack():
    """in -> dense_a -> dropout -> nested (dense_b1 -> dense_b2) -> head."""
    inner_in = keras.Input((3,))
    nested = keras.Model(inner_in, keras.layers.Dense(3, name="dense_b2")(keras.layers.Dense(3, name="dense_b1")(inner_in)),
                         name="nested")
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="dense_a")(inputs)
    x = keras.layers.Dropout(0.0)(x)
    x = nested(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(x))


def one_step(name, rate_scales, seed=0):
    """Weights of `stack()` before and after one training step (same data, same init)."""
    keras.utils.set_random_seed(seed)
    model = stack()
    model.compile(optimizers.make_optimizer(name, 0.1, rate_scales=rate_scales), "mse")
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    model.train_on_batch(x, np.ones((8, 2), "float32"))
    return {v.path: v.numpy() - before[v.path] for v in model.trainable_variables}


def test_layer_decay_counts_top_level_layers_with_trainable_weights():
    model = stack()
    scales = optimizers.layer_decay_scales(model, 0.5)
    assert scales == {
        "head/kernel": 1.0, "head/bias": 1.0,
        # The nested model is one layer; the dropout (no weights) is not counted.
        "dense_b2/kernel": 0.5, "dense_b2/bias": 0.5, "dense_b1/kernel": 0.5, "dense_b1/bias": 0.5,
        "dense_a/kernel": 0.25, "dense_a/bias": 0.25,
    }
    model.get_layer("nested").trainable = False  # frozen layers are skipped, not counted
    assert optimizers.layer_decay_scales(model, 0.5)["dense_a/kernel"] == 0.5
    assert "dense_b1/kernel" not in optimizers.layer_decay_scales(model, 0.5)


@pytest.mark.parametrize("name", ["adam", "sgd", "rmsprop"])
def test_each_variable_moves_by_its_scale_of_the_step(name):
    plain = one_step(name, None)
    scales = {"dense_a/kernel": 0.25, "dense_a/bias": 0.25, "dense_b1/kernel": 0.5}
    scaled = one_step(name, scales)
    for path, step in plain.items():
        assert np.abs(step).max() > 0, path
        np.testing.assert_allclose(scaled[path], scales.get(path, 1.0) * step, rtol=1e-4, atol=1e-7)  # float32 rounding of w1 - w0


def test_scaled_optimizer_saves_reloads_and_keeps_its_slots(tmp_path):
    model = stack()
    scales = optimizers.layer_decay_scales(model, 0.5)
    model.compile(optimizers.make_optimizer("adamw", 1e-3, 0.01, rate_scales=scales), "mse")
    model.fit(np.ones((8, 4)), np.ones((8, 2)), verbose=0)
    assert type(model.optimizer).__name__ == "ScaledAdamW"
    # The same optimizer variables as Keras's AdamW, so backups of either restore into both.
    plain = keras.optimizers.AdamW(1e-3)
    plain.build(model.trainable_variables)
    assert [v.shape for v in model.optimizer.variables] == [v.shape for v in plain.variables]
    reloaded = assert_saves_and_reloads(model, np.ones((2, 4)), tmp_path)
    assert isinstance(reloaded.optimizer, optimizers.ScaledAdamW)
    assert reloaded.optimizer.rate_scales == scales


def test_no_decay_builds_the_plain_keras_optimizer():
    assert type(optimizers.make_optimizer("adamw", 1e-3, 0.01)) is keras.optimizers.AdamW
    assert type(optimizers.make_optimizer("adam", 1e-3, rate_scales={"a/kernel": 1.0})) is keras.optimizers.Adam
    ema = optimizers.make_optimizer("sgd", 1e-3, ema_momentum=0.99)
    assert ema.use_ema and ema.ema_momentum == 0.99
    assert not optimizers.make_optimizer("sgd", 1e-3).use_ema
    with pytest.raises(ValueError, match="Received: name='lamb'"):
        optimizers.make_optimizer("lamb", 1e-3)


def test_trainer_applies_layer_decay_from_the_config(tmp_path):
    config = TrainConfig(layer_decay=0.5, optimizer="sgd", learning_rate=0.1)
    trainer = trainer_lib.Trainer(config, str(tmp_path))
    model = trainer.build_model(stack)
    (stage,) = trainer.plan(model)
    trainer.compile(model, trainer.make_optimizer(model, stage, steps_per_epoch=1))
    assert isinstance(model.optimizer, optimizers.ScaledSGD)
    assert model.optimizer.rate_scales["dense_a/kernel"] == 0.25
    with pytest.raises(UserError, match=r"--layer-decay must be in \(0, 1\]. Received: layer_decay=0"):
        TrainConfig(layer_decay=0.0)


def test_weight_decay_skips_biases_and_norms():
    optimizer = optimizers.make_optimizer("adamw", 1e-3, 0.01)
    norm = keras.layers.LayerNormalization()
    norm.build((None, 3))
    dense = keras.layers.Dense(2)
    dense.build((None, 3))
    assert optimizer._use_weight_decay(dense.kernel)
    assert not any(optimizer._use_weight_decay(v) for v in (dense.bias, norm.gamma, norm.beta))


def test_the_sgd_rate_derived_from_adam_matches_the_size_of_its_steps():
    """Stationary gradients of size G: Adam steps by about its rate, SGD with momentum 0.9 by
    rate_sgd * G / 0.1, so the derived rate is 0.1 * rate / G."""
    variable = keras.Variable(np.zeros((100,), "float32"))
    adam = keras.optimizers.Adam(1e-3)
    adam.build([variable])
    gradient = np.full((100,), 0.5, "float32")  # G = 0.5
    for _ in range(200):
        adam.apply([gradient], [variable])
    rate = optimizers.sgd_rate_from_adam(adam, peak_rate=1e-3, momentum=0.9)
    assert rate == pytest.approx(0.1 * 1e-3 / 0.5, rel=1e-3)
