"""BatchMixing: MixUp and CutMix on training batches (Keras's layers, one seed per batch)."""

import numpy as np
import pytest
import tensorflow as tf

from tf_finetune.augmentation import BatchMixing

CLASSES = 4


def constant_images(n=8, size=32):
    """Image i is filled with the value 10 * (its class + 1), one class per image: a mixed
    image's mean then says how much of each class it holds."""
    labels = np.arange(n) % CLASSES
    images = np.repeat((10.0 * (labels + 1))[:, None, None, None], size * size * 3, axis=1)
    return tf.constant(images.reshape(n, size, size, 3), tf.float32), tf.one_hot(labels, CLASSES)


def class_values():
    return 10.0 * (np.arange(CLASSES) + 1)


@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
def test_each_mixed_image_holds_its_classes_in_the_proportions_of_its_label(kind):
    images, labels = constant_images(size=64)
    mixing = BatchMixing(**{kind: 1.0})
    mixed_any = False
    for seed in range(5):
        out, soft = mixing(images, labels, tf.constant([seed, 0], tf.int32))
        out, soft = out.numpy(), soft.numpy()
        np.testing.assert_allclose(soft.sum(-1), 1.0, rtol=1e-5)
        assert (soft >= 0).all()
        # The image's mean is the label-weighted mean of the classes' values: CutMix's box
        # edges are whole pixels, its label the box's exact area (64 px: within 2 pixels' rows).
        tolerance = 1e-3 if kind == "mixup" else 2 * 2 / 64 * 40
        np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), soft @ class_values(), atol=tolerance)
        mixed_any |= bool((soft.max(-1) < 0.99).any())
        if kind == "cutmix":  # pasted, not blended: every pixel is one of the images' values
            assert np.isin(out, class_values()).all()
    assert mixed_any


def test_a_batch_mix_is_a_function_of_its_seed():
    images, labels = constant_images()
    mixing = BatchMixing(mixup=0.4, cutmix=1.0)
    a = mixing(images, labels, tf.constant([7, 3], tf.int32))
    b = mixing(images, labels, tf.constant([7, 3], tf.int32))
    c = mixing(images, labels, tf.constant([7, 4], tf.int32))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_apply_mixes_every_batch_the_same_way_on_every_pass_and_differently_per_seed():
    images, labels = constant_images(n=32)
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
    mixing = BatchMixing(mixup=0.4)
    first = [y.numpy() for _, y in mixing.apply(ds, seed=11)]
    again = [y.numpy() for _, y in mixing.apply(ds, seed=11)]
    other = [y.numpy() for _, y in mixing.apply(ds, seed=12)]
    assert len(first) == 4
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    # Batches differ from one another (the batch index is part of each batch's seed).
    weights = [np.sort(b.max(-1)) for b in first]
    assert not all(np.array_equal(weights[0], w) for w in weights[1:])


def test_with_both_each_batch_gets_one_of_the_two():
    images, labels = constant_images()
    mixing = BatchMixing(mixup=1.0, cutmix=1.0)
    kinds = set()
    for seed in range(24):
        out, _ = mixing(images, labels, tf.constant([seed, 0], tf.int32))
        kinds.add("cutmix" if np.isin(out.numpy(), class_values()).all() else "mixup")
    assert kinds == {"mixup", "cutmix"}


def test_off_is_the_identity_and_bad_values_are_refused():
    images, labels = constant_images()
    mixing = BatchMixing()
    assert not mixing.active and mixing.describe() == "none"
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    assert mixing.apply(ds, seed=1) is ds
    for bad in (dict(mixup=-0.1), dict(cutmix=1.5), dict(mixup="0.2"), dict(cutmix=True)):
        with pytest.raises(ValueError, match="in \\[0, 1\\]"):
            BatchMixing(**bad)
    with pytest.raises(ValueError, match="one-hot labels"):
        BatchMixing(mixup=0.2)(images, tf.range(8), tf.constant([1, 2], tf.int32))
