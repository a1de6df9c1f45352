"""LoRA: adapters on named Dense/EinsumDense layers, only they train, and merging for export."""

import keras
import keras_hub
import numpy as np
import pytest

from tf_finetune.config import TrainConfig
from tf_finetune.errors import UserError
from tf_finetune.models import lora
from tf_finetune.models import trainable
from tf_finetune.models.trainable import Parts
from tf_finetune.training import optimizers
from tf_finetune.training import trainer as trainer_lib


def encoder_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6, 16))
    x = keras_hub.layers.TransformerEncoder(intermediate_dim=32, num_heads=2, name="block_0")(inputs)
    x = keras_hub.layers.TransformerEncoder(intermediate_dim=32, num_heads=2, name="block_1")(x)
    outputs = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling1D()(x))
    return keras.Model(inputs, outputs)


def parts(model):
    return Parts(None, [[model.get_layer("block_0")], [model.get_layer("block_1")]])


def test_lora_trains_only_the_adapters_and_the_head():
    model = encoder_model()
    described = trainable.apply(model, "lora:4", parts(model), trainable.capture(model), lora_targets=("query", "value"))
    assert "rank-4 adapters on 4 layers" in described
    names = sorted(w.path.split("/", 1)[1] if "block_" in w.path else w.path for w in model.trainable_weights)
    adapters = [f"self_attention_layer/{target}/lora_kernel_{ab}" for target in ("query", "value") for ab in "ab"]
    assert names == sorted(["head/bias", "head/kernel"] + adapters * 2)
    # Keras adapts a (16, 2 heads, 8) projection with A (16, 2, 4) and B (4, 8).
    adapters = sum(int(np.prod(w.shape)) for w in model.trainable_weights if "lora" in w.path)
    assert adapters == 2 * 2 * (16 * 2 * 4 + 4 * 8)

    x = np.random.default_rng(0).normal(size=(8, 6, 16)).astype("float32")
    y = np.random.default_rng(1).normal(size=(8, 3)).astype("float32")
    query = model.get_layer("block_0")._self_attention_layer._query_dense
    key = model.get_layer("block_0")._self_attention_layer._key_dense
    kernel_before, key_before = query._kernel.numpy().copy(), key.kernel.numpy().copy()
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    model.fit(x, y, epochs=2, verbose=0)
    np.testing.assert_array_equal(query._kernel.numpy(), kernel_before)  # the frozen base kernel
    np.testing.assert_array_equal(key.kernel.numpy(), key_before)
    assert np.abs(query.lora_kernel_b.numpy()).max() > 0  # the adapters learned


def test_also_train_trains_named_layers_in_full_beside_the_adapters():
    model = encoder_model()
    described = trainable.apply(model, "lora:4", parts(model), trainable.capture(model), lora_targets=("query", "value"),
                                also_train=("self_attention_layer_norm",))
    assert "also 2 layers in full (self_attention_layer_norm: 64 parameters)" in described
    names = [w.path.split("/", 1)[1] for w in model.trainable_weights if "block_" in w.path]
    norms = sorted(n for n in names if "lora" not in n)
    assert norms == sorted(["self_attention_layer_norm/beta", "self_attention_layer_norm/gamma"] * 2)
    assert sum("lora" in n for n in names) == 8

    x = np.random.default_rng(0).normal(size=(8, 6, 16)).astype("float32")
    y = np.random.default_rng(1).normal(size=(8, 3)).astype("float32")
    block = model.get_layer("block_0")
    norm, other = block._self_attention_layer_norm, block._feedforward_layer_norm
    norm_before, other_before = norm.gamma.numpy().copy(), other.gamma.numpy().copy()
    query_before = block._self_attention_layer._query_dense._kernel.numpy().copy()
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    model.fit(x, y, epochs=2, verbose=0)
    assert np.abs(norm.gamma.numpy() - norm_before).max() > 0  # trains in full
    np.testing.assert_array_equal(other.gamma.numpy(), other_before)  # not named: frozen
    np.testing.assert_array_equal(block._self_attention_layer._query_dense._kernel.numpy(), query_before)

    # A stage without it freezes the layer again; with `head`, only the head and the layer train.
    trainable.apply(model, "head", parts(model), trainable.capture(model))
    assert {w.path.split("/")[0] for w in model.trainable_weights} == {"head"}
    trainable.apply(model, "head", parts(model), trainable.capture(model), also_train=("feedforward_layer_norm",))
    assert sorted(w.path for w in model.trainable_weights if "block_" in w.path) == sorted(
        f"{b}/feedforward_layer_norm/{v}" for b in ("block_0", "block_1") for v in ("beta", "gamma"))


def lora_step(tmp_path, ratio, layer_decay=1.0):
    """Each adapter's change over one SGD step of a `lora:4` stage built by the trainer, from
    non-zero B matrices (at B = 0 the A matrices get no gradient)."""
    stage = {"name": "lora", "epochs": 1, "trainable": "lora:4", "optimizer": "sgd", "learning_rate": 0.05,
             "loraplus_lr_ratio": ratio, "layer_decay": layer_decay}
    trainer = trainer_lib.Trainer(TrainConfig(stages=(stage,)), str(tmp_path))
    model = trainer.build_model(encoder_model)
    (stage,) = trainer.plan(model, parts(model))
    trainable.apply_stage(model, stage, parts(model), trainable.capture(model))
    for i, layer in enumerate(lora.adapted_layers(model)):
        layer.lora_kernel_b.assign(np.random.default_rng(i).normal(size=layer.lora_kernel_b.shape) * 0.1)
    trainer.compile(model, trainer.make_optimizer(model, stage, steps_per_epoch=1), loss="mse")
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    x = np.random.default_rng(0).normal(size=(8, 6, 16)).astype("float32")
    model.train_on_batch(x, np.random.default_rng(1).normal(size=(8, 3)).astype("float32"))
    return {v.path: v.numpy() - before[v.path] for v in model.trainable_variables}, model


def test_loraplus_trains_the_b_matrices_at_the_ratio_and_the_rest_at_the_rate(tmp_path):
    plain, _ = lora_step(tmp_path / "plain", 1.0)
    plus, model = lora_step(tmp_path / "plus", 16.0)
    b_paths = {layer.lora_kernel_b.path for layer in lora.adapted_layers(model)}
    assert optimizers.loraplus_scales(model, 16.0) == {path: 16.0 for path in b_paths} and len(b_paths) == 4
    assert isinstance(model.optimizer, optimizers.ScaledSGD)
    for path, step in plain.items():
        assert np.abs(step).max() > 0, path  # every adapter (A and B) and the head moved
        # SGD's first step is rate x gradient: B's is 16 times plain LoRA's, A's and the head's the same.
        np.testing.assert_allclose(plus[path], (16.0 if path in b_paths else 1.0) * step, rtol=1e-4, atol=1e-7)
    # Under layer decay a B matrix gets both multipliers.
    _, model = lora_step(tmp_path / "decayed", 16.0, layer_decay=0.5)
    scales = model.optimizer.rate_scales
    assert {scales[path] for path in b_paths} == {16.0 * 0.5, 16.0 * 0.25}
    assert scales["head/kernel"] == 1.0


def test_pissa_starts_from_the_principal_directions_and_computes_the_same():
    model = encoder_model()
    x = np.random.default_rng(0).normal(size=(4, 6, 16)).astype("float32")
    before = model(x).numpy()  # not predict_on_batch, whose traced function would outlive enable_lora
    query = model.get_layer("block_0")._self_attention_layer._query_dense
    kernel = query.kernel.numpy().astype("float64").reshape(-1, 8)  # (16 x 2 heads, 8): what Keras adapts
    described = trainable.apply(model, "lora:3", parts(model), trainable.capture(model), lora_alpha=6,
                                lora_init="pissa")
    assert "(PiSSA)" in described

    # Unchanged output; the adapters hold the top 3 singular directions (scaled by alpha / rank = 2),
    # the frozen kernel the other 5.
    np.testing.assert_allclose(model(x).numpy(), before, atol=1e-5)
    u, s, vh = np.linalg.svd(kernel, full_matrices=False)
    a, b = query.lora_kernel_a.numpy().reshape(-1, 3), query.lora_kernel_b.numpy()
    np.testing.assert_allclose(2.0 * a @ b, (u[:, :3] * s[:3]) @ vh[:3], atol=1e-5)
    residual = query._kernel.numpy().reshape(-1, 8)
    np.testing.assert_allclose(np.linalg.svd(residual, compute_uv=False)[:5], s[3:], atol=1e-5)
    np.testing.assert_allclose(a.T @ a, b @ b.T, atol=1e-5)  # both halves carry sqrt(S / 2)

    # Unlike Keras's start (B = 0, so A gets no gradient), both matrices learn from the first step.
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    a0 = query.lora_kernel_a.numpy().copy()
    model.train_on_batch(x, np.zeros((4, 3), "float32"))
    assert np.abs(query.lora_kernel_a.numpy() - a0).max() > 0
    assert sorted(w.path.split("/")[-1] for w in model.trainable_weights if "block_0" in w.path) == sorted(
        ["lora_kernel_a", "lora_kernel_b"] * 2)


def test_pissa_refuses_a_kernel_an_earlier_stage_trained_or_a_rank_past_the_kernels(tmp_path):
    def plan(stages):
        trainer = trainer_lib.Trainer(TrainConfig(stages=tuple(stages)), str(tmp_path))
        model = trainer.build_model(encoder_model)
        return trainer.plan(model, parts(model))

    pissa = {"name": "lora", "epochs": 1, "trainable": "lora:4", "lora_init": "pissa"}
    assert len(plan([{"name": "probe", "epochs": 1, "trainable": "head"}, pissa])) == 2
    assert len(plan([{"name": "probe", "epochs": 1, "trainable": "head", "also_train": ["key"]}, pissa])) == 2
    for before, trained in [({"trainable": "top:1"}, "query"), ({"trainable": "head", "also_train": ["value"]}, "value"),
                            ({"trainable": "as_built"}, "query")]:
        with pytest.raises(UserError) as info:
            plan([{"name": "probe", "epochs": 1, **before}, pissa])
        assert str(info.value).startswith("stage 2 ('lora'), field lora_init: 'pissa' splits each target's kernel")
        assert f"stage 1 ('probe') trains {trained!r} in full before it" in str(info.value)
    with pytest.raises(UserError, match=r"'pissa' takes rank 9 from 'query', whose kernel \(16, 2, 8\) has rank at "
                                        r"most 8: lower the rank"):
        plan([{**pissa, "trainable": "lora:9"}])


def test_merged_model_is_ordinary_and_computes_the_same(tmp_path):
    model = encoder_model()
    trainable.apply(model, "lora:4", parts(model), trainable.capture(model))
    for layer in lora.adapted_layers(model):  # as if trained: non-zero adapters
        layer.lora_kernel_b.assign(np.random.default_rng(2).normal(size=layer.lora_kernel_b.shape) * 0.1)
    x = np.random.default_rng(0).normal(size=(4, 6, 16)).astype("float32")
    merged = lora.merged(model)
    assert lora.adapted_layers(merged) == []
    assert not any("lora" in w.path for w in merged.weights)
    np.testing.assert_allclose(merged.predict_on_batch(x), model.predict_on_batch(x), atol=1e-5)


def test_a_dense_layer_that_asks_for_lora_in_its_config_merges_too():
    inputs = keras.Input((5,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(keras.layers.Dense(4, name="query")(inputs)))
    lora.enable(lora.find_targets([model], ["query"])["query"], rank=2)
    model.get_layer("query").lora_kernel_b.assign(np.ones((2, 4)) * 0.3)
    x = np.random.default_rng(0).normal(size=(3, 5)).astype("float32")
    merged = lora.merged(model)
    assert not merged.get_layer("query").lora_enabled
    np.testing.assert_allclose(merged.predict_on_batch(x), model.predict_on_batch(x), atol=1e-5)


@pytest.mark.parametrize("form, trains", [
    ("head", {"head"}),
    ("top:1", {"head", "block_1"}),
    ("from:block_0", {"head", "block_0", "block_1"}),
    ("all", {"head", "block_0", "block_1"}),
])
def test_each_trainable_form_trains_its_part(form, trains):
    model = encoder_model()
    as_built = trainable.capture(model)
    trainable.apply(model, form, parts(model), as_built)
    owners = {w.path.split("/")[0] for w in model.trainable_weights}
    assert owners == trains
    trainable.apply(model, "as_built", parts(model), as_built)
    assert {w.path.split("/")[0] for w in model.trainable_weights} == {"head", "block_0", "block_1"}
