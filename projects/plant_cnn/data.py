"""Data for plant_cnn: an image folder (or TFDS online), split, decoded, augmented."""

import logging
import os

from tf_finetune.data import image_folder
from tf_finetune.data import image_header
from tf_finetune.data import locate
from tf_finetune.data import splits
from tf_finetune.errors import UserError
from tf_finetune.project import Data
from tf_finetune.project import pick_examples

from projects.plant_cnn.config import TFDS_NAMES

logger = logging.getLogger(__name__)
NUM_EXAMPLES = 8  # validation images recorded for predict/export checks


def load_data(config, data_dir=None):
    """Returns `Data` for `config`: train with augmentation, validation without."""
    source = locate.resolve_data(data_dir, config.dataset, tfds_name=TFDS_NAMES.get(config.dataset))
    if isinstance(source, locate.TfdsSource):
        if config.folds:
            raise UserError(f"--folds {config.folds}: cross-validation reads the images from a folder; pass "
                            "--data-dir or set $TF_FINETUNE_DATA.")
        return _load_tfds(config, source.name)

    folder = image_folder.scan(source, max_per_class=config.max_examples_per_class, seed=config.seed,
                               max_pixels=config.max_image_pixels)
    rest, test = (image_folder.hold_out(folder, config.test_split, config.seed) if config.test_split
                  else (folder, None))
    train, val = image_folder.split_for(rest, config)
    size = (config.resolved_image_size(),) * 2
    augmentation = make_augmentation(config)
    train_ds = image_folder.make_dataset(
        train.files, train.labels, image_size=size, batch_size=config.batch_size,
        shuffle=True, seed=config.seed, augmentation=augmentation,
    )
    val_ds = image_folder.make_dataset(val.files, val.labels, image_size=size, batch_size=config.batch_size)
    info = {
        "train_examples": len(train),
        "validation_examples": len(val),
        "split": splits.describe(config),
        **({"test_examples": len(test)} if test else {}),
        "class_counts": dict(zip(folder.class_names, folder.class_counts())),
        "train_counts": dict(zip(folder.class_names, train.class_counts())),
        "skipped": folder.skipped,
    }
    batches = image_folder.training_batches(train.files, train.labels, image_size=size, augmentation=augmentation)
    test_ds = test and image_folder.make_dataset(test.files, test.labels, image_size=size,
                                                 batch_size=config.batch_size)
    calibration = image_folder.make_dataset(train.files, train.labels, image_size=size,
                                            batch_size=config.batch_size, shuffle=True, seed=config.seed, cache=False)
    return Data(train_ds, val_ds, folder.class_names, source, pick_examples(val.files, val.labels, NUM_EXAMPLES),
                info, augmentation=augmentation, train_batches=batches, test=test_ds, calibration=calibration,
                mixing=make_mixing(config))


def make_augmentation(config):
    from tf_finetune.augmentation import ImageAugmentation

    return ImageAugmentation(**config.augmentation_kwargs(), seed=config.seed)


def make_mixing(config):
    """MixUp/CutMix of the training batches (`BatchMixing`), or None when both are off."""
    if not (config.mixup or config.cutmix):
        return None
    from tf_finetune.augmentation import BatchMixing

    return BatchMixing(mixup=config.mixup, cutmix=config.cutmix)


def _load_tfds(config, name):
    """The TFDS variant: TFDS has one `train` split, held out by percentage."""
    import tensorflow_datasets as tfds

    val_percent = int(round(config.validation_split * 100))
    (train, val), info = tfds.load(
        name, split=[f"train[{val_percent}%:]", f"train[:{val_percent}%]"],
        as_supervised=True, with_info=True,
    )
    if config.max_examples_per_class:
        limit = config.max_examples_per_class * info.features["label"].num_classes
        train, val = train.take(limit), val.take(max(1, int(limit * config.validation_split)))
    size = (config.resolved_image_size(),) * 2
    augmentation = make_augmentation(config)

    def pipeline(ds, training):
        ds = ds.map(lambda x, y: (image_folder.resize_image(x, size), y))
        return image_folder.batch_images(
            ds, batch_size=config.batch_size, shuffle=training, seed=config.seed,
            augmentation=augmentation if training else None,
        )

    resized = train.map(lambda x, y: (image_folder.resize_image(x, size), y)).cache()

    def batches(seed, batch_size):
        return image_folder.batch_images(resized, batch_size=batch_size, shuffle=True, seed=seed,
                                         augmentation=augmentation, cache=False, reshuffle=False)

    class_names = tuple(info.features["label"].names)
    return Data(pipeline(train, True), pipeline(val, False), class_names, f"tfds:{name}", [],
                {"tfds": name}, augmentation=augmentation, train_batches=batches, mixing=make_mixing(config))


def read_inputs(paths, max_pixels=image_header.DEFAULT_MAX_PIXELS):
    """Image paths -> encoded bytes; a missing file, an image whose header declares more than
    `max_pixels` pixels (0 = no limit; checked before anything is decoded) or an undecodable
    file is one clear error."""
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise UserError(f"INPUT {missing[0]} is not a file: pass paths of image files.")
    for p in paths:
        image_header.check_file(p, max_pixels, name=f"INPUT {p}")
    bad = image_folder.find_unreadable(list(paths))
    if bad:
        raise UserError(f"INPUT {bad[0]} is not a readable image: pass JPEG, PNG, BMP or GIF files.")
    out = []
    for p in paths:
        with open(p, "rb") as f:
            out.append(f.read())
    return out


def synthetic_inputs(config, n=4):
    """A few random JPEGs, to verify an export when the run's images are gone."""
    import tensorflow as tf

    size = config.resolved_image_size()
    images = tf.random.stateless_uniform((n, size, size, 3), seed=(1, 2), maxval=256, dtype=tf.int32)
    return [tf.io.encode_jpeg(tf.cast(im, tf.uint8)).numpy() for im in images]


def preprocess(config):
    """In-graph pre-processing: 1-D tf.string of encoded images -> float32 [B, H, W, 3].

    An image whose header declares more than `config.max_image_pixels` pixels fails with an
    `InvalidArgumentError` before it is decoded (0 = no check): the exported SavedModel
    refuses decompression bombs by itself.
    """
    import tensorflow as tf

    size = config.resolved_image_size()
    max_pixels = config.max_image_pixels

    def fn(encoded):
        images = tf.map_fn(
            lambda s: image_folder.decode_image(s, (size, size), max_pixels=max_pixels),
            encoded,
            fn_output_signature=tf.TensorSpec((size, size, 3), tf.uint8),
        )
        return tf.cast(images, tf.float32)

    return fn
