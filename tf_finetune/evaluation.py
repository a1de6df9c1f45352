"""Turns a trained classifier and its validation data into a run report.

Writes `metrics.json` (accuracy, per-class and macro precision/recall/F1, confusion matrix),
`confusion_matrix.png` and `training_curves.png` into the run (or evaluation) directory and
returns the report dict.
"""

import logging
import os

import numpy as np

from tf_finetune import metrics
from tf_finetune import plots

logger = logging.getLogger(__name__)


def predict_dataset(model, dataset):
    """(y_true, probabilities) over a dataset of (inputs, labels) batches.

    Uses the model's compiled predict step (`predict_on_batch`): an eager call would run a
    recurrent layer's time loop op by op.
    """
    y_true, y_prob = [], []
    for inputs, labels in dataset:
        y_prob.append(np.asarray(model.predict_on_batch(inputs), dtype=np.float32))
        labels = np.asarray(labels)
        y_true.append(labels.argmax(-1) if labels.ndim > 1 else labels)
    return np.concatenate(y_true), np.concatenate(y_prob)


def write_report(model, dataset, class_names, out_dir, *, history=None, phase_boundaries=(), extra=None):
    """Evaluates `model` on `dataset` and writes metrics.json and plots to `out_dir`."""
    os.makedirs(out_dir, exist_ok=True)
    y_true, y_prob = predict_dataset(model, dataset)
    report = metrics.classification_report(y_true, y_prob, list(class_names))
    if extra:
        report.update(extra)
    metrics.write_json(report, os.path.join(out_dir, "metrics.json"))
    plots.plot_confusion_matrix(
        np.asarray(report["confusion_matrix"]), list(class_names),
        os.path.join(out_dir, "confusion_matrix.png"),
    )
    if history:
        plots.plot_training_curves(
            history, os.path.join(out_dir, "training_curves.png"), phase_boundaries=phase_boundaries
        )
    return report
