"""`Task`: what the CLI does around training, for one kind of model output.

A `Project` names its task. Everything in `train`, `evaluate`, `export` and `predict` that
depends on what the model outputs goes through these methods: the loss and metrics, what is
written before training, the report, the SavedModel's serving function and how predictions
are printed. `ClassificationTask` (class probabilities) serves three projects;
`projects.translation.task.TranslationTask` (strings) the fourth.
"""

import typing


@typing.runtime_checkable
class Task(typing.Protocol):
    """The methods a task has; every one is called by the shared CLI.

    Attributes:
        objectives: what a search may optimise: a metric name -> "min" or "max". Names in
            `metrics.json` (scored on validation data) or, starting with `val_`, columns of
            `history.csv` (the best epoch's value counts). The first is `tune`'s default.
    """

    objectives: dict

    def compile_args(self, config) -> dict:
        """Extra `Trainer.fit` arguments: `loss`, `metrics`, `weighted_metrics` (or `{}` for
        the trainer's defaults: sparse cross-entropy and accuracy)."""

    def write_previews(self, data, run_dir) -> None:
        """Before training: files that show what the model will be fed (e.g. the training
        augmentation), written into `run_dir`."""

    def write_report(self, model, data, out_dir, *, history=None, stage_boundaries=(),
                     extra=None, predictions=None) -> dict:
        """Evaluates `model` on the held-out data of `data`; writes `metrics.json` and plots
        into `out_dir` (with the training curves when `history` is given, stages marked at
        `stage_boundaries`); `extra` is merged into the report. Returns the report.
        `predictions` (classification: `Trainer.cached_predictions`, or None) are the model's
        outputs computed another way; a task that cannot use them runs the model."""

    def format_report(self, report) -> str:
        """The report as text for the terminal."""

    def serving_fn(self, model, preprocess, record):
        """`fn(1-D tf.string raw inputs) -> dict of output tensors`: what the SavedModel's
        `serving_default` computes, also used by `predict --model RUN`."""

    def export(self, model, *, preprocess, record, export_dir, examples) -> str:
        """Exports a new verified SavedModel version under `export_dir`; returns its path."""

    def format_predictions(self, names, outputs, as_json=False) -> list:
        """One line per input (`names` name them) from `serving_fn`'s outputs."""
