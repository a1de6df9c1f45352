import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tf_finetune.models.freezing import (  # noqa: E402
    format_trainable_summary,
    freeze,
    freeze_first,
    trainable_summary,
    unfreeze,
    unfreeze_top,
)

NUM_CLASSES = 3


def make_backbone():
    """A tiny functional conv 'backbone' with BatchNormalization (like a pretrained one)."""
    inputs = keras.Input((8, 8, 3), name="bb_input")
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.ReLU(name="relu2")(x)
    return keras.Model(inputs, x, name="backbone")


def make_outer(backbone_training=False):
    """Transfer-learning model: inputs -> backbone -> GAP -> BN -> Dense.

    With `backbone_training=False` the backbone is always called in inference mode (the
    usual recipe). With None it receives `training=True` from `fit`, so its BatchNorm layers
    would update their statistics unless they are frozen.
    """
    keras.utils.set_random_seed(0)
    backbone = make_backbone()
    inputs = keras.Input((8, 8, 3), name="image")
    x = backbone(inputs, training=backbone_training)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.BatchNormalization(name="head_bn")(x)
    outputs = keras.layers.Dense(NUM_CLASSES, name="head")(x)
    return keras.Model(inputs, outputs, name="outer"), backbone


def fit_a_few_steps(model):
    rng = np.random.default_rng(0)
    # Offset inputs so batch statistics differ clearly from the initial moving mean/var (0/1).
    x = rng.normal(3.0, 2.0, size=(32, 8, 8, 3)).astype("float32")
    y = rng.integers(0, NUM_CLASSES, size=(32,))
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)


def snapshot(layer):
    return {w.path: np.array(w.numpy()) for w in layer.weights}


def assert_unchanged(before, after):
    assert before.keys() == after.keys()
    for path in before:
        np.testing.assert_array_equal(before[path], after[path], err_msg=path)


def assert_all_changed(before, after, paths):
    for path in paths:
        assert not np.array_equal(before[path], after[path]), f"{path} did not change"


def test_model_layers_of_functional_model_start_with_input_layer():
    # Documented in freezing.py: "first N" counts model.layers including the InputLayer.
    outer, backbone = make_outer()
    assert isinstance(outer.layers[0], keras.layers.InputLayer)
    names = [layer.name for layer in outer.layers]
    assert names == ["image", "backbone", "gap", "head_bn", "head"]
    assert isinstance(backbone.layers[0], keras.layers.InputLayer)


def test_frozen_backbone_is_bit_identical_after_fit_and_head_trains():
    outer, backbone = make_outer()
    freeze(backbone)
    head = outer.get_layer("head")
    bb_before, head_before = snapshot(backbone), snapshot(head)

    fit_a_few_steps(outer)

    assert_unchanged(bb_before, snapshot(backbone))  # includes BN moving_mean/variance
    assert_all_changed(head_before, snapshot(head), ["head/kernel", "head/bias"])


def test_unfreeze_keeps_nested_batchnorm_frozen():
    outer, backbone = make_outer()
    freeze(outer)
    unfreeze(outer)
    assert outer.trainable and backbone.trainable
    assert backbone.get_layer("conv1").trainable
    for name in ("bn1", "bn2"):
        assert backbone.get_layer(name).trainable is False
    assert outer.get_layer("head_bn").trainable is False

    unfreeze(outer, keep_batchnorm_frozen=False)
    assert backbone.get_layer("bn1").trainable and outer.get_layer("head_bn").trainable


def test_unfreeze_top_all_keeps_batchnorm_statistics_when_training_is_true():
    # Backbone called without training=False, so fit passes training=True into every BN.
    outer, backbone = make_outer(backbone_training=None)
    freeze(outer)
    # All 5 layers unfrozen except head_bn (a top-level BN kept frozen).
    assert unfreeze_top(outer, -1) == 4

    bn_layers = [backbone.get_layer("bn1"), backbone.get_layer("bn2"), outer.get_layer("head_bn")]
    assert all(bn.trainable is False for bn in bn_layers)
    bn_before = [snapshot(bn) for bn in bn_layers]
    convs = [backbone.get_layer("conv1"), backbone.get_layer("conv2")]
    conv_before = [snapshot(c) for c in convs]

    fit_a_few_steps(outer)

    for bn, before in zip(bn_layers, bn_before):
        assert_unchanged(before, snapshot(bn))
    for conv, before in zip(convs, conv_before):
        assert_all_changed(before, snapshot(conv), [f"{conv.name}/kernel"])


def test_unfreeze_top_with_trainable_batchnorm_updates_statistics():
    # Control for the test above: the same fit does move BN statistics when BN is trainable.
    outer, backbone = make_outer(backbone_training=None)
    unfreeze_top(outer, -1, keep_batchnorm_frozen=False)
    bn1 = backbone.get_layer("bn1")
    before = snapshot(bn1)
    fit_a_few_steps(outer)
    assert_all_changed(
        before, snapshot(bn1), ["bn1/moving_mean", "bn1/moving_variance", "bn1/gamma"]
    )


def test_unfreeze_top_last_two_layers_freezes_the_rest():
    outer, backbone = make_outer()
    assert unfreeze_top(outer, 2) == 1  # head_bn (kept frozen) and head
    assert [layer.trainable for layer in outer.layers] == [False, False, False, False, True]
    assert backbone.get_layer("conv1").trainable is False
    head, bb_before = outer.get_layer("head"), snapshot(backbone)
    head_before = snapshot(head)

    fit_a_few_steps(outer)

    assert_unchanged(bb_before, snapshot(backbone))
    assert_all_changed(head_before, snapshot(head), ["head/kernel"])


@pytest.mark.parametrize(
    "n, keep_bn, expected",
    [(0, True, 0), (100, True, 4), (None, True, 4), (100, False, 5), (-1, False, 5)],
)
def test_unfreeze_top_bounds(n, keep_bn, expected):
    # outer.layers: image, backbone, gap, head_bn, head; head_bn only counts if not kept frozen.
    outer, _ = make_outer()
    assert unfreeze_top(outer, n, keep_batchnorm_frozen=keep_bn) == expected
    trainable = [layer.trainable for layer in outer.layers]
    assert trainable.count(True) == expected
    if expected == 0:
        assert outer.trainable_weights == []


def test_unfreeze_top_rejects_negative_n():
    outer, _ = make_outer()
    with pytest.raises(ValueError, match=r"Received: n=-3"):
        unfreeze_top(outer, -3)


def test_freeze_first_n_counts_input_layer_and_fits():
    outer, backbone = make_outer()
    freeze(outer)  # freeze_first must also make the rest trainable again
    assert freeze_first(outer, 2) == 2  # the InputLayer and the backbone
    assert [layer.trainable for layer in outer.layers] == [False, False, True, False, True]
    # head_bn is in the trainable rest but stays frozen by default.
    assert outer.get_layer("head_bn").trainable is False

    bb_before = snapshot(backbone)
    head_before = snapshot(outer.get_layer("head"))
    fit_a_few_steps(outer)
    assert_unchanged(bb_before, snapshot(backbone))
    assert_all_changed(head_before, snapshot(outer.get_layer("head")), ["head/kernel"])


def test_freeze_first_up_to_inside_backbone():
    _, backbone = make_outer()
    # backbone.layers: bb_input, conv1, bn1, relu1, conv2, bn2, relu2
    assert freeze_first(backbone, up_to="relu1") == 4
    assert backbone.get_layer("conv1").trainable is False
    assert backbone.get_layer("conv2").trainable is True
    assert backbone.get_layer("bn2").trainable is False  # BN kept frozen

    freeze_first(backbone, up_to="relu1", keep_batchnorm_frozen=False)
    assert backbone.get_layer("bn2").trainable is True
    assert backbone.get_layer("bn1").trainable is False


def test_freeze_first_unknown_name_lists_layers():
    outer, _ = make_outer()
    with pytest.raises(ValueError) as info:
        freeze_first(outer, up_to="block9")
    message = str(info.value)
    assert "Received: up_to='block9'" in message
    assert "'backbone'" in message and "'head'" in message


@pytest.mark.parametrize("kwargs", [{}, {"n": 1, "up_to": "gap"}])
def test_freeze_first_needs_exactly_one_of_n_and_up_to(kwargs):
    outer, _ = make_outer()
    with pytest.raises(ValueError, match="exactly one of `n` and `up_to`"):
        freeze_first(outer, **kwargs)


def test_trainable_summary_matches_count_params():
    outer, backbone = make_outer()
    freeze(backbone)
    summary = trainable_summary(outer)

    # Trainable: head_bn is trainable here (gamma, beta = 2*4) and head (4*3 + 3).
    assert summary["trainable_params"] == 2 * 4 + (4 * 3 + 3)
    assert summary["total_params"] == outer.count_params()
    assert summary["trainable_params"] + summary["non_trainable_params"] == outer.count_params()
    expected_trainable = sum(int(np.prod(w.shape)) for w in outer.trainable_weights)
    assert summary["trainable_params"] == expected_trainable
    # Weight-owning layers: conv1, bn1, conv2, bn2 (frozen); head_bn, head (trainable).
    assert summary["trainable_layers"] == 2
    assert summary["frozen_layers"] == 4

    unfreeze(outer)  # BN stay frozen: conv1, conv2, head trainable; bn1, bn2, head_bn frozen
    summary = trainable_summary(outer)
    assert (summary["trainable_layers"], summary["frozen_layers"]) == (3, 3)
    assert summary["total_params"] == outer.count_params()

    line = format_trainable_summary(outer)
    assert "\n" not in line
    assert f"{summary['trainable_params']:,} of {summary['total_params']:,}" in line
    assert "3 layers trainable, 3 frozen" in line


def test_unfreeze_reaches_a_frozen_backbone_inside_an_already_trainable_model():
    # `outer.trainable = True` is a no-op when outer.trainable is already True (TF backend),
    # so a plain attribute set would leave the backbone frozen.
    outer, backbone = make_outer()
    freeze(backbone)
    assert outer.trainable is True
    unfreeze(outer)
    assert backbone.trainable and backbone.get_layer("conv1").trainable

    # And the other way round: freeze(outer) while outer.trainable is already False.
    freeze(outer)
    backbone.get_layer("conv2").trainable = True
    freeze(outer)
    assert backbone.get_layer("conv2").trainable is False
    assert outer.trainable_weights == [] and backbone.trainable_weights == []
