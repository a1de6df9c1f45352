"""SavedModel export that serves raw inputs, in TF Serving's layout.

`export_classifier` writes `EXPORT_DIR/<version>/` whose `serving_default` signature takes a
1-D `tf.string` tensor of raw inputs (encoded image bytes, or UTF-8 text) and returns

- `probabilities`: float32 [batch, num_classes]
- `labels`: string [batch], the most likely class name

Pre-processing (decoding, resizing, tokenising) lives in the graph, supplied by the project
as a `preprocess(strings) -> model inputs` function. The class names are also written to
`assets/labels.txt`.

The export is written to a temporary folder beside the target, reloaded with plain
`tf.saved_model.load`, and its outputs are compared with the Keras model's on real inputs
(max abs difference <= `tolerance`). Only then is it renamed to its version number, so a
failed export never leaves a half-written version behind. `export_serving` is that path for
any other serving function (e.g. translation's, which returns strings).

A model trained with pruning (its run's plan prunes) also gets `pruning.json` beside the
SavedModel, written before the version is published: the pruned kernels' sparsity
(`tf_finetune.models.pruning.export_summary`) and the SavedModel's raw and gzip sizes.
"""

import gzip
import io
import logging
import os
import tarfile

import numpy as np

from tf_finetune import files

logger = logging.getLogger(__name__)

SIGNATURE = "serving_default"
# What a SavedModel folder is made of (an export folder may hold other formats beside it).
FILES = ("saved_model.pb", "fingerprint.pb", "variables", "assets")


def check_export_dir(export_dir):
    """Fails early, with one line, when `export_dir` cannot hold exports."""
    return files.check_writable_folder(export_dir, "--export-dir", "the versions")


def export_classifier(model, *, preprocess, class_names, export_dir, examples, tolerance=1e-5, plan=None):
    """Exports `model` as a raw-input classifier SavedModel; returns the version's path.

    Args:
        model: a Keras model mapping `preprocess(strings)` to class probabilities.
        preprocess: a TF function from a 1-D `tf.string` tensor to the model's inputs.
        class_names: the class names, in label order.
        export_dir: the folder holding numbered versions (created if needed).
        examples: a list of raw inputs (bytes or str) used to verify the export.
        tolerance: the largest allowed abs difference between Keras and SavedModel outputs.
        plan: the run's stages (run.json's `plan`): when they prune, `pruning.json` is written.
    """
    return export_serving(
        model, classifier_serving(model, preprocess, class_names), export_dir=export_dir,
        verify=lambda path: verify(path, model, preprocess, examples, tolerance),
        assets={"labels.txt": "".join(f"{name}\n" for name in class_names)}, plan=plan,
    )


def classifier_serving(model, preprocess, class_names):
    """The serving function of a classifier: 1-D `tf.string` -> `probabilities`, `labels`."""
    import tensorflow as tf

    names = tf.constant(list(class_names))

    def serve(inputs):
        probabilities = tf.cast(model(preprocess(inputs), training=False), tf.float32)
        labels = tf.gather(names, tf.argmax(probabilities, axis=-1))
        return {"probabilities": probabilities, "labels": labels}

    return serve


def export_serving(model, serve, *, export_dir, verify, assets=None, plan=None):
    """Exports `serve` as the `serving_default` of a new numbered SavedModel version.

    The shared path of every SavedModel-only export: write into a reserved temporary folder
    beside the versions (`tf_finetune.serving.versions`), add the text `assets` ({file name:
    text}), run `verify(temp_path)` (which raises when the reloaded SavedModel disagrees with
    Keras, and returns the max difference it measured), and only then rename the folder to
    its version number.

    Args:
        model: the Keras model `serve` calls (its variables are saved).
        serve: a function from a 1-D `tf.string` tensor to a dict of output tensors.
        export_dir: the folder holding numbered versions (created if needed).
        verify: `(path) -> float`, called on the written, not yet renamed, SavedModel.
        assets: text files to write under `assets/`.
        plan: the run's stages (run.json's `plan`): when they prune, `pruning.json` records the
            sparsity and the sizes.
    """
    from tf_finetune.models import pruning
    from tf_finetune.serving import versions

    with versions.published(export_dir) as (version, tmp, final):
        write_saved_model(model, serve, tmp, assets)
        diff = verify(tmp)
        summary = pruning.export_summary(model, plan)
        if summary is not None:
            size = sizes(tmp)
            files.write_json({**summary, "formats": {"saved_model": size}}, os.path.join(tmp, "pruning.json"))
            logger.info("Pruned kernels: %.1f%% zeros; the SavedModel is %.2f MB, %.2f MB gzipped.",
                        100 * summary["sparsity"], size["bytes"] / 1e6, size["gzip_bytes"] / 1e6)
    logger.info("Exported version %d to %s (max |SavedModel - Keras| = %.2e).", version, final, diff)
    return final


def write_saved_model(model, serve, path, assets=None):
    """Writes `serve` (1-D `tf.string` -> dict of tensors) as the `serving_default` of a
    SavedModel in the existing, empty folder `path`, with text `assets` under `assets/`."""
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name=SIGNATURE, fn=serve, input_signature=[tf.TensorSpec([None], tf.string)])
    staging = os.path.join(path, ".saved_model")  # ExportArchive wants to create its folder
    archive.write_out(staging, verbose=False)
    for name in os.listdir(staging):
        os.rename(os.path.join(staging, name), os.path.join(path, name))
    os.rmdir(staging)
    os.makedirs(os.path.join(path, "assets"), exist_ok=True)
    for name, text in (assets or {}).items():
        with open(os.path.join(path, "assets", name), "w", encoding="utf-8") as f:
            f.write(text)


def sizes(folder):
    """`{"bytes", "gzip_bytes"}` of the SavedModel in `folder`: its files, and a tar of them
    gzipped (how a folder ships; a pruned model's zeros show there)."""
    paths = [os.path.join(folder, name) for name in FILES if os.path.exists(os.path.join(folder, name))]
    total = 0
    for path in paths:
        if os.path.isfile(path):
            total += os.path.getsize(path)
        for root, _, names in os.walk(path):
            total += sum(os.path.getsize(os.path.join(root, name)) for name in names)
    return {"bytes": total, "gzip_bytes": gzip_bytes(paths)}


def gzip_bytes(paths):
    """Bytes of `paths` compressed as the `gzip` command does (level 6): one file as it is, else
    a tar of them (folders with their contents, in sorted order). Level 9 saves 10% more on a
    pruned model and takes 15 times as long (100 s for a 100 MB SavedModel on 2 cores)."""
    counter = _Counter()
    with gzip.GzipFile(fileobj=counter, mode="wb", compresslevel=6, mtime=0) as compressed:
        if isinstance(paths, str):
            with open(paths, "rb") as f:
                while chunk := f.read(1 << 20):
                    compressed.write(chunk)
        else:
            with tarfile.open(fileobj=compressed, mode="w|") as tar:
                for path in sorted(paths):
                    tar.add(path, arcname=os.path.basename(path))
    return counter.count


class _Counter(io.RawIOBase):
    """A writable stream that only counts the bytes written to it."""

    def __init__(self):
        self.count = 0

    def writable(self):
        return True

    def write(self, data):
        self.count += len(data)
        return len(data)


def verify(path, model, preprocess, examples, tolerance):
    """Reloads the SavedModel and checks it matches the Keras model on `examples`."""
    import tensorflow as tf

    if not examples:
        raise ValueError("Export verification needs at least one example input. Received: examples=[]")
    inputs = tf.constant(list(examples))
    served = load_saved_model(path).signatures[SIGNATURE](inputs)
    expected = np.asarray(model(preprocess(inputs), training=False), dtype=np.float32)
    got = served["probabilities"].numpy()
    diff = float(np.max(np.abs(got - expected)))
    if got.shape != expected.shape or not diff <= tolerance:
        raise RuntimeError(
            f"Exported SavedModel does not match the Keras model: max abs difference {diff:.3g} "
            f"> {tolerance:g} (shapes {got.shape} vs {expected.shape})."
        )
    return diff


def load_saved_model(path):
    """`tf.saved_model.load`, with the tensorflow-text ops registered first.

    SavedModels that tokenize in the graph (bert_classifier's WordPiece) use custom ops from
    tensorflow-text; TensorFlow only knows them once `tensorflow_text` is imported.
    """
    import tensorflow as tf

    try:
        import tensorflow_text  # noqa: F401  (registers the ops)
    except ImportError:
        pass
    return tf.saved_model.load(path)


def find_saved_model(path):
    """`path` itself if it is a SavedModel, else its highest numbered version, else None."""
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    if os.path.isdir(path):
        versions = sorted((int(n) for n in os.listdir(path) if n.isdigit()), reverse=True)
        for v in versions:
            candidate = os.path.join(path, str(v))
            if os.path.isfile(os.path.join(candidate, "saved_model.pb")):
                return candidate
    return None


def serve_saved_model(path, inputs):
    """Runs `serving_default` of the SavedModel at `path` on raw inputs; returns numpy dict."""
    import tensorflow as tf

    loaded = load_saved_model(path)
    outputs = loaded.signatures[SIGNATURE](tf.constant(list(inputs)))
    return {k: v.numpy() for k, v in outputs.items()}
