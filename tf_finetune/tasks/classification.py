"""`ClassificationTask`: the `Task` of models that output class probabilities.

Images or texts in, probabilities out: accuracy and F1 reports, SavedModels that return
`probabilities` and `labels`. Three of the four projects use it.
"""

import os


class ClassificationTask:
    """Class probabilities out: accuracy/F1 reports, `probabilities` + `labels` exports."""

    objectives = {"accuracy": "max", "macro_f1": "max", "weighted_f1": "max", "macro_precision": "max",
                  "macro_recall": "max", "val_loss": "min", "val_accuracy": "max"}

    def compile_args(self, config):
        """Extra `Trainer.fit` arguments (loss, metrics); the trainer's defaults classify."""
        return {}

    def write_previews(self, data, run_dir):
        """Before training, when the training data is augmented: validation inputs beside
        augmented copies, `augmentation.png` for images, `augmentation.txt` for texts."""
        if data.augmentation is None:
            return
        from tf_finetune.reporting import evaluation

        spec = data.val.element_spec[0]
        if spec.dtype.name == "string":
            evaluation.write_text_augmentation_preview(data.augmentation, data.examples,
                                                       os.path.join(run_dir, "augmentation.txt"))
        elif spec.shape.rank == 4:  # images: (batch, H, W, C)
            evaluation.write_augmentation_preview(data.augmentation, data.val,
                                                  os.path.join(run_dir, "augmentation.png"))

    def write_report(self, model, data, out_dir, *, history=None, stage_boundaries=(), extra=None,
                     predictions=None):
        """Evaluates on `data.val` (and a held-out `data.test`); writes metrics.json and the
        plots (for images also the misclassified ones); returns the report. `predictions`:
        see `evaluation.write_report`."""
        from tf_finetune.reporting import evaluation

        return evaluation.write_report(model, data.val, data.class_names, out_dir, history=history,
                                       stage_boundaries=stage_boundaries, extra=extra,
                                       test=getattr(data, "test", None), predictions=predictions)

    def format_report(self, report):
        from tf_finetune.reporting import metrics

        text = metrics.format_report(report)
        if "test" in report:
            test = report["test"]
            text += (f"\n\nHeld-out test set ({test['num_examples']} examples, no choice made on it): "
                     f"accuracy {test['accuracy']:.4f}, macro F1 {test['macro_f1']:.4f}")
        return text

    def serving_fn(self, model, preprocess, record):
        """`fn(1-D tf.string) -> {"probabilities", "labels"}`, as exported."""
        from tf_finetune.serving import saved_model

        return saved_model.classifier_serving(model, preprocess, record["class_names"])

    def export(self, model, *, preprocess, record, export_dir, examples):
        from tf_finetune.serving import saved_model

        return saved_model.export_classifier(model, preprocess=preprocess, class_names=record["class_names"],
                                        export_dir=export_dir, examples=examples, plan=record.get("plan"))

    def format_predictions(self, names, outputs, as_json=False):
        """One line per input: `label<TAB>probability<TAB>input`, or a JSON object (as the
        export folders' standalone client.py prints them)."""
        from tf_finetune.serving import client

        labels = [label.decode("utf-8") if isinstance(label, bytes) else str(label) for label in outputs["labels"]]
        predictions = [(label, float(max(probs)), probs) for label, probs in zip(labels, outputs["probabilities"])]
        return client.format_predictions(names, predictions, as_json=as_json)
