"""Image classification data laid out one subfolder per class.

```
ROOT/
  daisy/    001.jpg 002.jpg ...
  roses/    ...
```

`scan` lists the images, checks that each one decodes (unreadable files, and images whose
header declares more than `--max-image-pixels`, are skipped and counted, never a crash),
`split` makes a seeded stratified train/validation split, and `make_dataset` turns a file
list into a batched `tf.data` pipeline. `decode_image` is the one decode-and-resize
function, used both for training and inside the exported serving graph, so what the model
sees in training is what it sees in production (the serving graph also refuses images over
the pixel limit, reading only their header: `check_max_pixels`).
"""

import collections
import concurrent.futures
import dataclasses
import logging
import os
import random

from tf_finetune.data import image_header
from tf_finetune.data import splits
from tf_finetune.errors import UserError

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


@dataclasses.dataclass(frozen=True)
class ImageFolder:
    """A list of labelled image files.

    Attributes:
        root: the folder that was scanned.
        class_names: class names, sorted; label `i` is `class_names[i]`.
        files: image paths.
        labels: integer label of each file.
        skipped: reason -> number of files skipped for it (e.g. `{"unreadable": 1}`,
            `{"too large": 1}` for an image over the pixel limit).
    """

    root: str
    class_names: tuple
    files: tuple
    labels: tuple
    skipped: dict = dataclasses.field(default_factory=dict)

    def __len__(self):
        return len(self.files)

    def class_counts(self):
        """Number of images per class, in class order."""
        counts = collections.Counter(self.labels)
        return [counts.get(i, 0) for i in range(len(self.class_names))]


def scan(root, *, validate=True, max_per_class=0, seed=0, max_pixels=image_header.DEFAULT_MAX_PIXELS):
    """Lists the images under `root`, one subfolder per class.

    Args:
        root: the data folder.
        validate: read every image's header and skip (and count, as "too large") the ones
            that declare more than `max_pixels` pixels, without decoding them; then decode
            every other image once and skip (and count, as "unreadable") the ones that fail.
        max_per_class: keep at most this many images per class (a seeded random
            sample; 0 keeps all). Used by `--smoke`.
        seed: seed for that sample.
        max_pixels: the largest width x height an image may declare (0 = no limit):
            `--max-image-pixels`.

    Returns:
        An `ImageFolder`.

    Raises:
        UserError: when the folder is missing, has no class subfolders, no readable
            images, or fewer than two classes with images.
    """
    root = os.path.abspath(os.path.expanduser(str(root)))
    if not os.path.isdir(root):
        what = "is a file" if os.path.exists(root) else "does not exist"
        raise UserError(
            f"Data folder {root} {what}: pass --data-dir pointing to a folder with one "
            "subfolder of images per class."
        )
    class_dirs = sorted(
        entry.name
        for entry in os.scandir(root)
        if entry.is_dir() and not entry.name.startswith(".")
    )
    if not class_dirs:
        raise UserError(
            f"Data folder {root} has no class subfolders: expected one subfolder per class "
            f"with images inside (e.g. {os.path.join(root, 'class_a', 'image1.jpg')})."
        )

    skipped = collections.Counter()
    per_class = {}
    for name in class_dirs:
        paths = []
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, name)):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                if filename.startswith("."):
                    continue
                if filename.lower().endswith(IMAGE_EXTENSIONS):
                    paths.append(os.path.join(dirpath, filename))
                else:
                    skipped["not an image file"] += 1
        if max_per_class and len(paths) > max_per_class:
            paths = sorted(random.Random(f"{seed}-{name}").sample(paths, max_per_class))
        per_class[name] = paths

    if validate:
        all_paths = [p for paths in per_class.values() for p in paths]
        large = dict(find_too_large(all_paths, max_pixels))
        if large:
            skipped["too large"] += len(large)
            path, (width, height) = min(large.items())
            logger.warning(
                "Skipped %d image file(s) in %s that declare more than %d pixels (e.g. %s, %dx%d), "
                "without decoding them: resize them, or raise %s.", len(large), root, max_pixels,
                os.path.relpath(path, root), width, height, image_header.FLAG,
            )
            all_paths = [p for p in all_paths if p not in large]
            per_class = {n: [p for p in ps if p not in large] for n, ps in per_class.items()}
        logger.info("Checking that %d images in %s decode...", len(all_paths), root)
        bad = set(find_unreadable(all_paths))
        if bad:
            skipped["unreadable"] += len(bad)
            examples = ", ".join(sorted(os.path.relpath(p, root) for p in bad)[:3])
            logger.warning(
                "Skipped %d unreadable image file(s) in %s (e.g. %s).", len(bad), root, examples
            )
            per_class = {n: [p for p in ps if p not in bad] for n, ps in per_class.items()}

    empty = [name for name, paths in per_class.items() if not paths]
    for name in empty:
        logger.warning("Class folder %s has no readable images; it is left out.", name)
    class_names = tuple(name for name in class_dirs if per_class[name])
    found = f"; skipped {_describe(skipped)}" if skipped else ""
    if not class_names:
        raise UserError(
            f"Data folder {root} has no readable images ({', '.join(class_dirs[:5])} "
            f"hold none{found}): put images that decode in the class subfolders (supported "
            f"types: {', '.join(IMAGE_EXTENSIONS)})."
        )
    if len(class_names) < 2:
        others = f"; none readable in {', '.join(empty[:5])}{found}" if empty else ""
        raise UserError(
            f"Data folder {root} has images for one class only ({class_names[0]!r}{others}): "
            "classification needs at least two class subfolders with images."
        )
    files, labels = [], []
    for label, name in enumerate(class_names):
        files.extend(per_class[name])
        labels.extend([label] * len(per_class[name]))
    if skipped:
        logger.info("Skipped %s.", _describe(skipped))
    return ImageFolder(root, class_names, tuple(files), tuple(labels), dict(skipped))


def _describe(skipped):
    """`{"unreadable": 2, "not an image file": 1}` -> "1 not an image file, 2 unreadable"."""
    return ", ".join(f"{count} {reason}" for reason, count in sorted(skipped.items()))


def find_too_large(paths, max_pixels, num_threads=None):
    """`[(path, (width, height))]` of the images whose header declares more than
    `max_pixels` pixels (0 = no limit). Reads only the headers; decodes nothing."""
    if not max_pixels:
        return []
    num_threads = num_threads or min(8, (os.cpu_count() or 1) * 2)
    with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
        sizes = list(pool.map(_header_size, paths))
    return [(path, size) for path, size in zip(paths, sizes) if image_header.over_limit(size, max_pixels)]


def _header_size(path):
    try:
        return image_header.file_image_size(path)
    except OSError:
        return None  # an unreadable file: `find_unreadable` counts it


def find_unreadable(paths, num_threads=None):
    """Returns the paths that TensorFlow cannot read and decode as an image."""
    import tensorflow as tf

    def readable(path):
        try:
            data = tf.io.read_file(path)
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            return image.shape[0] > 0 and image.shape[1] > 0
        except (tf.errors.OpError, ValueError):
            return False

    num_threads = num_threads or min(8, (os.cpu_count() or 1) * 2)
    with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
        ok = list(pool.map(readable, paths))
    return [path for path, good in zip(paths, ok) if not good]


def split(folder, validation_split, seed):
    """Seeded stratified split into (train, validation) `ImageFolder`s.

    Each class contributes `round(n * validation_split)` images to validation, at least
    one when it has two or more, so every class is seen on both sides (see
    `splits.stratified_split`).
    """
    train, val = splits.stratified_split(folder.files, folder.labels, validation_split, seed)
    return _subset(folder, train), _subset(folder, val)


def split_for(folder, config):
    """`(train, validation)` `ImageFolder`s as `config` asks: a validation split, or a fold of
    a cross-validation (`splits.train_validation`)."""
    train, val = splits.train_validation(folder.files, folder.labels, config)
    return _subset(folder, train), _subset(folder, val)


def hold_out(folder, test_split, seed):
    """`(rest, test)` `ImageFolder`s: a seeded stratified test set that training never sees
    (`splits.hold_out`); split `rest` into training and validation as usual."""
    rest, test = splits.hold_out(folder.files, folder.labels, test_split, seed)
    return _subset(folder, rest), _subset(folder, test)


def _subset(folder, indices):
    return ImageFolder(folder.root, folder.class_names, tuple(folder.files[i] for i in indices),
                       tuple(folder.labels[i] for i in indices), folder.skipped)


def decode_image(encoded, image_size, max_pixels=0):
    """Decodes encoded image bytes (JPEG, PNG, BMP, GIF) to a uint8 [H, W, 3] tensor.

    Grayscale and RGBA become RGB; the image is resized (bilinear) to `image_size` and
    rounded back to uint8. Training and the exported serving graph both call this.

    `max_pixels` > 0 first reads the width and height the header declares and fails with
    an `InvalidArgumentError` naming the limit when their product is larger, before any
    pixel is decoded (`check_max_pixels`); the serving graph sets it. Training leaves it at
    0: `scan` has skipped those files already.
    """
    import tensorflow as tf

    if max_pixels:
        encoded = check_max_pixels(encoded, max_pixels)
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False, dtype=tf.uint8)
    return resize_image(image, image_size)


def check_max_pixels(encoded, max_pixels):
    """`encoded` (a scalar tf.string), once its header is known to declare at most
    `max_pixels` pixels; else an `InvalidArgumentError` that names the limit and
    `--max-image-pixels`. Graph-safe (tf.data, tf.function, `tf.map_fn`); decodes nothing.
    """
    import tensorflow as tf

    width, height = declared_size(encoded)
    check = tf.debugging.assert_less_equal(
        tf.multiply(width, height, name="declared_pixels"),
        tf.constant(max_pixels, tf.int64, name="max_image_pixels"),
        message=(f"The image declares more than {max_pixels} pixels (width x height), over "
                 f"{image_header.FLAG} {max_pixels}: resize it, or raise the limit."),
    )
    with tf.control_dependencies([check]):
        return tf.identity(encoded)


# The first bytes of each format, as `tf.io.decode_image` recognises them.
_PNG, _GIF, _BMP = image_header.PNG_SIGNATURE, b"GIF8", b"BM"
_HEAD = 32  # the bytes `declared_size` reads: every size field but a JPEG's lies within


def declared_size(encoded):
    """The `(width, height)` (int64 scalars) the header of scalar tf.string `encoded`
    declares: the in-graph `image_header.image_size`, for PNG, JPEG, GIF, BMP and WebP.
    (0, 0) for anything else; a JPEG's comes from `tf.image.extract_jpeg_shape`, which reads
    its markers without decoding."""
    import tensorflow as tf

    head = tf.io.decode_raw(tf.strings.substr(encoded, 0, _HEAD), tf.uint8, fixed_length=_HEAD)
    b = tf.cast(head, tf.int64)

    def starts_with(offset, magic):
        return tf.reduce_all(tf.equal(head[offset:offset + len(magic)], list(magic)))

    def uint(offset, size, big_endian=False):
        order = range(size) if big_endian else reversed(range(size))
        value = tf.constant(0, tf.int64)
        for i in order:
            value = value * 256 + b[offset + i]
        return value

    def int32_abs(offset):
        value = uint(offset, 4)
        return tf.abs(tf.where(value >= 2**31, value - 2**32, value))

    def other_size():
        # The first format that matches wins; (0, 0) when none does.
        bmp_core = tf.equal(uint(14, 4), 12)  # BITMAPCOREHEADER: 16-bit fields
        webp_chunk = {name: starts_with(12, name) for name in (b"VP8X", b"VP8L", b"VP8 ")}
        vp8l = uint(21, 4)
        formats = [
            (starts_with(0, _PNG), uint(16, 4, True), uint(20, 4, True)),
            (starts_with(0, _GIF), uint(6, 2), uint(8, 2)),
            (starts_with(0, _BMP) & bmp_core, uint(18, 2), uint(20, 2)),
            (starts_with(0, _BMP), int32_abs(18), int32_abs(22)),
            (starts_with(8, b"WEBP") & webp_chunk[b"VP8X"], uint(24, 3) + 1, uint(27, 3) + 1),
            (starts_with(8, b"WEBP") & webp_chunk[b"VP8L"], vp8l % 2**14 + 1, vp8l // 2**14 % 2**14 + 1),
            (starts_with(8, b"WEBP") & webp_chunk[b"VP8 "], uint(26, 2) % 2**14, uint(28, 2) % 2**14),
        ]
        width = height = tf.constant(0, tf.int64)
        for matches, w, h in reversed(formats):
            width, height = tf.where(matches, w, width), tf.where(matches, h, height)
        return width, height

    def jpeg_size():
        shape = tf.image.extract_jpeg_shape(encoded, output_type=tf.int64)  # (height, width, channels)
        return shape[1], shape[0]

    width, height = tf.cond(starts_with(0, b"\xff\xd8\xff"), jpeg_size, other_size)
    # Each side at most 2**31 (PNG's own limit is 2**31 - 1), so width * height fits in an int64.
    return tf.minimum(width, 2**31), tf.minimum(height, 2**31)


def resize_image(image, image_size):
    """Resizes a uint8 [H, W, 3] image (bilinear) and rounds it back to uint8."""
    import tensorflow as tf

    image = tf.image.resize(image, image_size, method="bilinear")
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def make_dataset(
    files,
    labels,
    *,
    image_size,
    batch_size,
    shuffle=False,
    seed=None,
    augmentation=None,
    cache=True,
):
    """A batched `tf.data` pipeline of (float32 images in [0, 255], int32 labels).

    Args:
        files, labels: image paths and their integer labels.
        image_size: (height, width) the images are resized to.
        batch_size: batch size.
        shuffle: reshuffle every epoch (seeded by `seed`).
        augmentation: a callable `augmentation(images, training=True)` applied to each
            batch (e.g. `tf_finetune.augmentation.ImageAugmentation`), or None.
        cache: keep decoded images in memory after the first epoch.
    """
    base = _decoded(files, labels, image_size, shuffle_names=shuffle and not cache, seed=seed,
                    reshuffle=True)
    return batch_images(base, batch_size=batch_size, shuffle=shuffle and cache, seed=seed,
                        augmentation=augmentation, cache=cache, buffer_size=len(files))


def training_batches(files, labels, *, image_size, augmentation=None, cache=True):
    """`batches(seed, batch_size)`: one epoch's shuffled, augmented training batches.

    The order and the augmentation are a function of `seed` (iterating the dataset twice
    gives the same batches), which is how the trainer makes each epoch a function of the
    run's seed, the stage and the epoch. The decoded images are cached once for every epoch.
    """
    base = _decoded(files, labels, image_size).cache() if cache else None

    def batches(seed, batch_size):
        if cache:
            return batch_images(base, batch_size=batch_size, shuffle=True, seed=seed, augmentation=augmentation,
                                cache=False, buffer_size=len(files), reshuffle=False)
        names = _decoded(files, labels, image_size, shuffle_names=True, seed=seed, reshuffle=False)
        return batch_images(names, batch_size=batch_size, seed=seed, augmentation=augmentation, cache=False,
                            reshuffle=False)

    return batches


def _decoded(files, labels, image_size, *, shuffle_names=False, seed=None, reshuffle=True):
    """(uint8 image, int32 label) pairs decoded from `files`; `shuffle_names` shuffles the
    cheap file names before decoding. Cached images are the caller's choice (`batch_images`)."""
    import tensorflow as tf

    image_size = tuple(int(s) for s in image_size)
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant(list(files), tf.string), tf.constant(list(labels), tf.int32))
    )
    if shuffle_names:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=reshuffle)

    def load(path, label):
        return decode_image(tf.io.read_file(path), image_size), label

    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    return ds


def batch_images(ds, *, batch_size, shuffle=False, seed=None, augmentation=None, cache=True,
                 buffer_size=2048, reshuffle=True):
    """The shared tail of every image pipeline: cache, shuffle, batch, float32, augment.

    Args:
        ds: a dataset of (uint8 [H, W, 3] image, int label) pairs, all the same size.
        seed: seeds the shuffle and, for an `ImageAugmentation`, each batch's augmentation.
        buffer_size: shuffle buffer (the whole dataset when it fits).
        reshuffle: draw a new order and new augmentation seeds on every pass (False: every
            pass is the same, a function of `seed`).
    """
    import tensorflow as tf

    autotune = tf.data.AUTOTUNE
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(buffer_size, seed=seed, reshuffle_each_iteration=reshuffle)
    ds = ds.batch(batch_size)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), tf.cast(y, tf.int32)), num_parallel_calls=autotune)
    if augmentation is not None and seed is not None and _takes_seed(augmentation):
        from tf_finetune.augmentation.seeds import int32_seed

        # One seed per batch, from a seeded stream: each batch's augmentation is then the same
        # in every run, whichever thread of the parallel map computes it (see "Randomness" in
        # docs/augmentation.md).
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=reshuffle).batch(2)
        ds = tf.data.Dataset.zip(ds, seeds).map(
            lambda batch, pair: (augmentation(batch[0], training=True, seed=int32_seed(pair)), batch[1]),
            num_parallel_calls=autotune,
        )
    elif augmentation is not None:
        ds = ds.map(
            lambda x, y: (augmentation(x, training=True), y), num_parallel_calls=autotune
        )
    return ds.prefetch(autotune)


def _takes_seed(augmentation):
    """Whether `augmentation` takes a per-call seed (tf_finetune's augmentation layers do)."""
    from tf_finetune.augmentation import ImageAugmentation
    from tf_finetune.augmentation import TextAugmentation

    return isinstance(augmentation, (ImageAugmentation, TextAugmentation))
