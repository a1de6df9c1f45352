"""Turns a trained classifier and its validation data into a run report.

Writes `metrics.json` (accuracy, per-class and macro precision/recall/F1, confusion matrix),
`confusion_matrix.png` and `training_curves.png` into the run (or evaluation) directory and
returns the report dict. For image data it also draws `misclassified.png` (the validation
images the model got wrong, with the true and predicted class). The previews show what
training is fed: `augmentation.png` (images beside augmented versions) and `augmentation.txt`
(texts beside augmented versions).
"""

import logging
import os

import numpy as np

from tf_finetune import files
from tf_finetune.reporting import metrics
from tf_finetune.reporting import plots
from tf_finetune.training import distributed

logger = logging.getLogger(__name__)

MAX_MISCLASSIFIED = 16


def predict_dataset(model, dataset, keep_wrong=0):
    """(y_true, probabilities, wrong) over a dataset of (inputs, labels) batches.

    `wrong` is a list of up to `keep_wrong` `(input, true label, probabilities)` of
    misclassified examples, kept only for image inputs (rank-4 arrays).

    Uses the model's compiled predict step (`predict_on_batch`): an eager call would run a
    recurrent layer's time loop op by op. Under a multi-worker strategy Keras's predict step
    gathers every worker's outputs (a local batch would come back once per worker), so there
    it is a compiled call of the model on this worker alone.
    """
    predict = model.predict_on_batch
    if distributed.is_multi_worker(model.distribute_strategy):
        import tensorflow as tf

        predict = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    y_true, y_prob, wrong = [], [], []
    for inputs, labels in dataset:
        probs = np.asarray(predict(inputs), dtype=np.float32)
        labels = np.asarray(labels)
        labels = labels.argmax(-1) if labels.ndim > 1 else labels
        y_prob.append(probs)
        y_true.append(labels)
        if len(wrong) < keep_wrong and getattr(inputs, "ndim", 0) == 4:
            for i in np.flatnonzero(probs.argmax(-1) != labels)[: keep_wrong - len(wrong)]:
                wrong.append((np.asarray(inputs[i]), int(labels[i]), probs[i]))
    return np.concatenate(y_true), np.concatenate(y_prob), wrong


def wrong_inputs(dataset, y_true, y_prob, keep_wrong):
    """Up to `keep_wrong` `(input, true label, probabilities)` of the examples `y_prob` gets
    wrong, read from `dataset` in order (image inputs only, as `predict_dataset` keeps them)."""
    wrong_at = np.flatnonzero(y_prob.argmax(-1) != y_true)[:keep_wrong]
    wrong, start = [], 0
    for inputs, _ in dataset:
        if len(wrong) == len(wrong_at) or getattr(inputs, "ndim", 0) != 4:
            break
        end = start + len(inputs)
        wrong += [(np.asarray(inputs[i - start]), int(y_true[i]), y_prob[i]) for i in wrong_at if start <= i < end]
        start = end
    return wrong


def write_report(model, dataset, class_names, out_dir, *, history=None, stage_boundaries=(), extra=None,
                 test=None, predictions=None):
    """Evaluates `model` on `dataset` and writes metrics.json and plots to `out_dir`.

    With a held-out `test` dataset, its report goes under `"test"` in metrics.json (and its
    confusion matrix to `test_confusion_matrix.png`): the figure no choice was made on.
    `predictions`, `{"val": (labels, probabilities), "test": ...}` in the datasets' order,
    stands for running `model` (e.g. `Trainer.cached_predictions`).
    """
    os.makedirs(out_dir, exist_ok=True)
    if predictions is None:
        y_true, y_prob, wrong = predict_dataset(model, dataset, keep_wrong=MAX_MISCLASSIFIED)
    else:
        y_true, y_prob = predictions["val"]
        wrong = wrong_inputs(dataset, y_true, y_prob, MAX_MISCLASSIFIED)
    report = metrics.classification_report(y_true, y_prob, list(class_names))
    if test is not None:
        test_true, test_prob = predictions["test"] if predictions else predict_dataset(model, test)[:2]
        report["test"] = metrics.classification_report(test_true, test_prob, list(class_names))
        plots.plot_confusion_matrix(np.asarray(report["test"]["confusion_matrix"]), list(class_names),
                                    os.path.join(out_dir, "test_confusion_matrix.png"), title="Test set")
    if extra:
        report.update(extra)
    files.write_json(report, os.path.join(out_dir, "metrics.json"))
    plots.plot_confusion_matrix(
        np.asarray(report["confusion_matrix"]), list(class_names),
        os.path.join(out_dir, "confusion_matrix.png"),
    )
    if wrong:
        plots.plot_image_grid(
            np.stack([image for image, _, _ in wrong]), os.path.join(out_dir, "misclassified.png"),
            titles=[f"true: {class_names[t]}\npred: {class_names[int(p.argmax())]} ({p.max():.2f})"
                    for _, t, p in wrong],
            title=f"Misclassified validation images (first {len(wrong)})",
        )
    if history:
        plots.plot_training_curves(
            history, os.path.join(out_dir, "training_curves.png"), stage_boundaries=stage_boundaries
        )
    return report


def write_augmentation_preview(augmentation, dataset, path, *, images=4, versions=7):
    """Draws `images` inputs of `dataset`'s first batch, each followed by `versions`
    augmented copies (`augmentation(..., training=True)`), one row per input."""
    inputs = np.asarray(next(iter(dataset))[0])[:images]
    rows = [np.concatenate([x[None], np.asarray(augmentation(np.repeat(x[None], versions, 0), training=True))])
            for x in inputs]
    return plots.plot_image_grid(np.concatenate(rows), path, ncols=versions + 1,
                                 title="Augmentation: each row is an image, then augmented copies")


def write_text_augmentation_preview(augmentation, texts, path, *, count=4, versions=3):
    """Writes `count` of `texts`, each followed by `versions` augmented copies
    (`augmentation(..., training=True)`), as UTF-8 lines."""
    import tensorflow as tf

    lines = []
    for text in list(texts)[:count]:
        lines.append(f"original:  {text}")
        copies = augmentation(tf.constant([text] * versions), training=True).numpy()
        lines.extend(f"augmented: {copy.decode('utf-8', 'replace')}" for copy in copies)
        lines.append("")
    files.atomic_write_bytes("\n".join(lines).encode("utf-8"), path)
    return path
