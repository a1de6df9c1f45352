import os

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import write_image
from tf_finetune.data import image_folder
from tf_finetune.errors import UserError


def test_scan_lists_classes_and_labels(image_folder_factory):
    root = image_folder_factory(classes=("cat", "dog"), per_class=3)
    folder = image_folder.scan(root)
    assert folder.class_names == ("cat", "dog")
    assert folder.class_counts() == [3, 3]
    assert all(os.path.basename(os.path.dirname(f)) == folder.class_names[l]
               for f, l in zip(folder.files, folder.labels))


def test_corrupt_and_stray_files_are_skipped_with_a_count(image_folder_factory):
    root = image_folder_factory(per_class=4)
    with open(os.path.join(root, "a", "broken.jpg"), "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 not really a jpeg")
    open(os.path.join(root, "b", "empty.png"), "wb").close()
    with open(os.path.join(root, "b", "notes.txt"), "w") as f:
        f.write("hello")
    with open(os.path.join(root, "README.md"), "w") as f:  # top-level stray file
        f.write("data")
    folder = image_folder.scan(root)
    assert len(folder) == 8
    assert folder.skipped == {"unreadable": 2, "not an image file": 1}
    assert not any("broken" in f or "empty" in f for f in folder.files)


def test_grayscale_and_png_decode_to_rgb(tmp_path):
    path = str(tmp_path / "g.png")
    gray = np.full((20, 30, 1), 77, np.uint8)
    with open(path, "wb") as f:
        f.write(tf.io.encode_png(gray).numpy())
    image = image_folder.decode_image(tf.io.read_file(path), (16, 16))
    assert image.shape == (16, 16, 3) and image.dtype == tf.uint8
    assert int(tf.reduce_min(image)) == 77 and int(tf.reduce_max(image)) == 77


@pytest.mark.parametrize(
    "setup, message",
    [
        ("missing", "does not exist"),
        ("empty", "no class subfolders"),
        ("one_class", "one class only"),
        ("no_images", "no readable images"),
    ],
)
def test_bad_folders_give_one_clear_line(tmp_path, setup, message):
    root = tmp_path / "d"
    if setup == "empty":
        root.mkdir()
    elif setup == "one_class":
        write_image(str(root / "only" / "1.jpg"))
        write_image(str(root / "only" / "2.jpg"))
    elif setup == "no_images":
        (root / "a").mkdir(parents=True)
        (root / "b").mkdir()
        (root / "b" / "x.txt").write_text("x")
    with pytest.raises(UserError, match=message) as info:
        image_folder.scan(str(root))
    assert "\n" not in str(info.value)


def test_split_is_stratified_seeded_and_disjoint(image_folder_factory):
    root = image_folder_factory(classes=("a", "b", "c"), per_class=10)
    folder = image_folder.scan(root, validate=False)
    train, val = image_folder.split(folder, 0.2, seed=1)
    assert val.class_counts() == [2, 2, 2] and train.class_counts() == [8, 8, 8]
    assert not set(train.files) & set(val.files)
    again = image_folder.split(folder, 0.2, seed=1)
    other = image_folder.split(folder, 0.2, seed=2)
    assert again[1].files == val.files
    assert other[1].files != val.files


def test_small_classes_still_get_a_validation_image(image_folder_factory):
    root = image_folder_factory(per_class=2)
    train, val = image_folder.split(image_folder.scan(root, validate=False), 0.1, seed=0)
    assert val.class_counts() == [1, 1] and train.class_counts() == [1, 1]


def test_max_per_class_samples(image_folder_factory):
    root = image_folder_factory(per_class=9)
    folder = image_folder.scan(root, max_per_class=4, validate=False)
    assert folder.class_counts() == [4, 4]


def test_make_dataset_batches_float_images_and_labels(image_folder_factory):
    root = image_folder_factory(per_class=5, size=(40, 50))
    folder = image_folder.scan(root)
    ds = image_folder.make_dataset(folder.files, folder.labels, image_size=(24, 24), batch_size=4,
                                   shuffle=True, seed=0)
    batches = list(ds)
    assert len(batches) == 3
    x, y = batches[0]
    assert x.shape == (4, 24, 24, 3) and x.dtype == tf.float32 and y.dtype == tf.int32
    labels = np.concatenate([b[1].numpy() for b in batches])
    assert sorted(labels.tolist()) == [0] * 5 + [1] * 5
    # Class 0 images are red, class 1 blue: labels stay attached to their images.
    for xb, yb in batches:
        red_minus_blue = xb.numpy()[..., 0].mean(axis=(1, 2)) - xb.numpy()[..., 2].mean(axis=(1, 2))
        np.testing.assert_array_equal(red_minus_blue > 0, yb.numpy() == 0)
