"""Reports of a trained model: `metrics.json`, its text table, and PNG plots.

- `metrics`: `classification_report` (accuracy, per-class precision/recall/F1, confusion
  matrix) and `format_report`.
- `plots`: training curves with phase boundaries, confusion matrix, image grids.
- `evaluation`: `write_report` (predict, score, plot), and the augmentation previews.
"""

from tf_finetune._lazy import exports

__getattr__, __dir__, __all__ = exports(__name__, {
    "classification_report": "metrics",
    "format_report": "metrics",
    "plot_training_curves": "plots",
    "plot_confusion_matrix": "plots",
    "plot_image_grid": "plots",
    "write_report": "evaluation",
    "predict_dataset": "evaluation",
    "write_augmentation_preview": "evaluation",
    "write_text_augmentation_preview": "evaluation",
})
