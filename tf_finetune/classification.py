"""The classification task: what the CLI does with a classifier around training.

A `Project` names its task; every project so far classifies (images or texts). A task
supplies the parts of `train`, `evaluate`, `export` and `predict` that depend on what the
model outputs: the loss and metrics, the run report, the SavedModel's serving function and
how predictions are printed. (`projects/translation` has the other task, `TranslationTask`.)
"""

import json
import os


class ClassificationTask:
    """Class probabilities out: accuracy/F1 reports, `probabilities` + `labels` exports."""

    def compile_args(self, config):
        """Extra `Trainer.fit` arguments (loss, metrics); the trainer's defaults classify."""
        return {}

    def write_previews(self, data, run_dir):
        """Before training: `augmentation.png` when the data has an image augmentation."""
        shape = getattr(data.val.element_spec[0], "shape", None)  # images: (batch, H, W, C)
        if data.augmentation is not None and shape is not None and shape.rank == 4:
            from tf_finetune import evaluation

            evaluation.write_augmentation_preview(data.augmentation, data.val,
                                                  os.path.join(run_dir, "augmentation.png"))

    def write_report(self, model, data, out_dir, *, history=None, phase_boundaries=(), extra=None):
        """Evaluates on `data.val`; writes metrics.json and the plots (for images also the
        misclassified ones); returns the report."""
        from tf_finetune import evaluation

        return evaluation.write_report(model, data.val, data.class_names, out_dir, history=history,
                                       phase_boundaries=phase_boundaries, extra=extra)

    def format_report(self, report):
        from tf_finetune import metrics

        return metrics.format_report(report)

    def serving_fn(self, model, preprocess, record):
        """`fn(1-D tf.string) -> {"probabilities", "labels"}`, as exported."""
        from tf_finetune import export

        return export.classifier_serving(model, preprocess, record["class_names"])

    def export(self, model, *, preprocess, record, export_dir, examples):
        from tf_finetune import export

        return export.export_classifier(model, preprocess=preprocess, class_names=record["class_names"],
                                        export_dir=export_dir, examples=examples)

    def format_predictions(self, names, outputs, as_json=False):
        """One line per input: `label<TAB>probability<TAB>input`, or a JSON object."""
        lines = []
        for name, probs, label in zip(names, outputs["probabilities"], outputs["labels"]):
            label = label.decode("utf-8") if isinstance(label, bytes) else str(label)
            p = float(max(probs))
            if as_json:
                lines.append(json.dumps({"input": name, "label": label, "probability": round(p, 6),
                                         "probabilities": [round(float(x), 6) for x in probs]}))
            else:
                lines.append(f"{label}\t{p:.4f}\t{name}")
        return lines
