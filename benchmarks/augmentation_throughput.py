"""Images/s of tf_keras's ImageDataGenerator vs ImageAugmentation in tf.data, side by side.

Same folder, same augmentation arguments (the seed's), same number of images for every row
(`--epochs` whole passes over the folder), each after one untimed warm-up pass; 150 px and
batch 32 unless told otherwise. Rows:

- `ImageDataGenerator(rescale=1./255, shear_range=0.2, zoom_range=0.2,
  horizontal_flip=True).flow_from_directory(dir, target_size, batch_size)`
- `ImageAugmentation` with the same arguments through
  `tf_finetune.data.image_folder.make_dataset(..., cache=False)`: decode + augment every epoch
- the same with `cache=True` (the training default): decoded images kept in memory after the
  warm-up pass

    python benchmarks/augmentation_throughput.py [--data-dir DIR] [--epochs 1] [--no-write]

Prints a markdown table and the machine (cores, load average, TF/Keras versions). Other
processes running at the same time make the numbers noisy: check the load average line.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import runs  # noqa: E402

# The ImageDataGenerator arguments being compared; ImageAugmentation takes the same ones.
AUGMENTATION = dict(rescale=1.0 / 255, shear_range=0.2, zoom_range=0.2, horizontal_flip=True)


def default_data_dir():
    base = os.environ.get("TF_FINETUNE_DATA")
    if base:
        return os.path.join(base, "plantvillage")
    return os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "data", "plantvillage"))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir",
        default=default_data_dir(),
        help="folder with one subfolder of images per class "
        "(default: $TF_FINETUNE_DATA/plantvillage, else ../shared/data/plantvillage "
        "next to the repository)",
    )
    parser.add_argument(
        "--epochs", type=int, default=1, help="timed passes over the folder per row"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=150, help="square side in pixels")
    runs.add_no_write(parser)
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or args.image_size < 1:
        parser.error(
            "--epochs, --batch-size and --image-size must be >= 1. Received: "
            f"--epochs={args.epochs} --batch-size={args.batch_size} "
            f"--image-size={args.image_size}"
        )
    if not os.path.isdir(args.data_dir):
        parser.error(
            f"--data-dir {args.data_dir} is not a folder: pass a folder with one subfolder "
            "of images per class, or set TF_FINETUNE_DATA."
        )
    return args


def time_passes(one_pass, epochs):
    """Runs one untimed warm-up pass, then `epochs` timed ones: (images, seconds)."""
    one_pass()
    images = 0
    start = time.perf_counter()
    for _ in range(epochs):
        images += one_pass()
    return images, time.perf_counter() - start


def bench_image_data_generator(data_dir, size, batch_size, epochs):
    from tf_keras.preprocessing.image import ImageDataGenerator

    generator = ImageDataGenerator(**AUGMENTATION).flow_from_directory(
        data_dir, target_size=(size, size), batch_size=batch_size, seed=0
    )

    def one_pass():
        count = 0
        for _ in range(len(generator)):
            x, _ = next(generator)
            count += x.shape[0]
        return count

    return time_passes(one_pass, epochs)


def bench_make_dataset(folder, size, batch_size, epochs, cache):
    from tf_finetune.data import image_folder
    from tf_finetune.augmentation import ImageAugmentation

    augmentation = ImageAugmentation(**AUGMENTATION, seed=0)
    dataset = image_folder.make_dataset(
        folder.files,
        folder.labels,
        image_size=(size, size),
        batch_size=batch_size,
        shuffle=True,
        seed=0,
        augmentation=augmentation,
        cache=cache,
    )

    def one_pass():
        count = 0
        for x, _ in dataset:
            count += int(x.shape[0])
        return count

    return time_passes(one_pass, epochs)


def main(argv=None):
    measured = runs.stamp()  # Before measuring: the code the rows run.
    args = parse_args(argv)
    import keras
    import tensorflow as tf

    from tf_finetune.data import image_folder

    load_before = os.getloadavg()
    folder = image_folder.scan(args.data_dir, validate=False)
    print(
        f"{len(folder)} images in {len(folder.class_names)} classes from {args.data_dir}; "
        f"{args.epochs} timed pass(es) per row after one warm-up pass; batch "
        f"{args.batch_size}, {args.image_size}x{args.image_size}; augmentation "
        + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in AUGMENTATION.items()),
        file=sys.stderr,
    )
    rows = []
    print("timing ImageDataGenerator ...", file=sys.stderr)
    rows.append(
        (
            "tf_keras ImageDataGenerator.flow_from_directory",
            *bench_image_data_generator(
                args.data_dir, args.image_size, args.batch_size, args.epochs
            ),
        )
    )
    for cache in (False, True):
        print(f"timing make_dataset(cache={cache}) ...", file=sys.stderr)
        rows.append(
            (
                f"ImageAugmentation + image_folder.make_dataset(cache={cache})",
                *bench_make_dataset(
                    folder, args.image_size, args.batch_size, args.epochs, cache
                ),
            )
        )
    load_after = os.getloadavg()

    baseline = rows[0][1] / rows[0][2]
    lines = ["| pipeline | images | seconds | images/s | speed-up vs ImageDataGenerator |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name, images, seconds in rows:
        rate = images / seconds
        lines.append(f"| {name} | {images} | {seconds:.2f} | {rate:.0f} | {rate / baseline:.1f}x |")
    table = "\n".join(lines)
    print(table)
    print()
    print(
        f"Machine: {os.cpu_count()} CPU cores, TensorFlow {tf.__version__}, Keras "
        f"{keras.__version__}; load average (1 min) {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after."
    )
    runs.save_speed(args, "augmentation_throughput", "Augmentation throughput vs ImageDataGenerator", __doc__,
                    table, measured)


if __name__ == "__main__":
    main()
