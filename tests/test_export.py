import os
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import assert_export_versions
from tf_finetune.serving import saved_model as export
from tf_finetune.serving import versions
from tf_finetune.errors import UserError


def tiny_classifier():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def preprocess(strings):
    images = tf.map_fn(lambda s: tf.image.resize(tf.io.decode_image(s, channels=3, expand_animations=False), (8, 8)),
                       strings, fn_output_signature=tf.TensorSpec((8, 8, 3), tf.float32))
    return images


def jpegs(n, seed=0):
    rng = np.random.default_rng(seed)
    return [tf.io.encode_jpeg(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).numpy() for _ in range(n)]


def test_export_serves_raw_bytes_and_matches_keras(tmp_path):
    model = tiny_classifier()
    path = export.export_classifier(model, preprocess=preprocess, class_names=["a", "b", "c"],
                                    export_dir=str(tmp_path), examples=jpegs(4))
    assert path == str(tmp_path / "1")
    assert (tmp_path / "1" / "assets" / "labels.txt").read_text() == "a\nb\nc\n"
    raw = jpegs(5, seed=1)
    out = tf.saved_model.load(path).signatures["serving_default"](tf.constant(raw))
    expected = model(preprocess(tf.constant(raw)))
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)
    assert [l.decode() for l in out["labels"].numpy()] == [
        "abc"[i] for i in np.argmax(expected, axis=1)]
    # The next export is version 2, TF Serving layout.
    export.export_classifier(model, preprocess=preprocess, class_names=["a", "b", "c"],
                             export_dir=str(tmp_path), examples=jpegs(2))
    assert sorted(os.listdir(tmp_path)) == ["1", "2"]
    assert export.find_saved_model(str(tmp_path)) == str(tmp_path / "2")


def test_failed_verification_leaves_nothing_behind(tmp_path):
    with pytest.raises(RuntimeError, match="does not match"):
        export.export_classifier(tiny_classifier(), preprocess=preprocess, class_names=list("abc"),
                                 export_dir=str(tmp_path), examples=jpegs(2), tolerance=-1.0)
    assert os.listdir(tmp_path) == []


def test_export_dir_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        export.check_export_dir(str(tmp_path / "f"))


def test_read_only_export_dir(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(UserError, match="not writable"):
        export.check_export_dir(str(ro / "models"))


def test_concurrent_reservations_get_distinct_versions(tmp_path):
    got, barrier = [], threading.Barrier(8)

    def export():
        barrier.wait()
        with versions.published(str(tmp_path)) as (version, tmp, final):
            with open(os.path.join(tmp, "file"), "w") as f:
                f.write(str(version))
        got.append(version)

    threads = [threading.Thread(target=export) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 9))
    assert_export_versions(str(tmp_path), [str(v) for v in range(1, 9)])
