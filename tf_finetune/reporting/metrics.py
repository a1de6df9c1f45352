"""Classification report and its text table (the numbers in `metrics.json`).

`classification_report` turns labels and predictions into a plain, JSON-serialisable dict:
accuracy, per-class precision / recall / F1 / support, macro and weighted averages and the
confusion matrix (from `tf.math.confusion_matrix`). `format_report` renders that dict as a
fixed-width table like scikit-learn's text report.

Zero division: a ratio whose denominator is zero is reported as 0.0, never NaN. So a class
that is never predicted has precision 0.0, a class with no examples has recall 0.0, and
either gives F1 0.0. Macro averages include every class in `class_names`, also those with
no examples (as scikit-learn does with `labels=` and `zero_division=0`).
"""

import numpy as np


def classification_report(y_true, y_pred, class_names):
    """Compute accuracy, per-class and averaged precision / recall / F1, and the confusion matrix.

    Args:
        y_true: integer class ids, shape `[N]` (list, NumPy array or tensor).
        y_pred: either integer class ids, shape `[N]`, or per-class scores (probabilities or
            logits), shape `[N, C]`, in which case the argmax over the last axis is used.
        class_names: the `C` class names, in class-id order.

    Returns:
        A dict of plain Python values (safe for `json.dump`)::

            {"num_examples": N, "accuracy": a,
             "macro_precision": p, "macro_recall": r, "macro_f1": f, "weighted_f1": w,
             "per_class": {name: {"precision": p, "recall": r, "f1": f, "support": n}},
             "class_names": [...],
             "confusion_matrix": [[...]]}   # rows = true class, columns = predicted class

        `weighted_f1` weights each class's F1 by its support. Ratios with a zero
        denominator are 0.0 (see the module docstring).

    Raises:
        ValueError: empty or duplicate `class_names`, shapes that don't match, non-integer
            labels, or class ids outside `[0, C)`.
    """
    import tensorflow as tf  # Imported here so `format_report` stays light.

    class_names = _check_class_names(class_names)
    num_classes = len(class_names)
    y_true = _to_class_ids(y_true, "y_true")
    y_pred = np.asarray(y_pred)
    if y_pred.ndim == 2:
        if y_pred.shape[1] != num_classes:
            raise ValueError(
                "`y_pred` scores must have one column per class in `class_names` "
                f"({num_classes}). Received: y_pred.shape={y_pred.shape}"
            )
        if not np.issubdtype(y_pred.dtype, np.number):
            raise ValueError(f"`y_pred` scores must be numeric. Received: y_pred.dtype={y_pred.dtype}")
        y_pred = np.argmax(y_pred, axis=-1)
    y_pred = _to_class_ids(y_pred, "y_pred")

    if y_true.shape[0] != y_pred.shape[0]:
        raise ValueError(
            "`y_true` and `y_pred` must have the same number of examples. "
            f"Received: y_true.shape={y_true.shape}, y_pred.shape={y_pred.shape}"
        )
    if y_true.shape[0] == 0:
        raise ValueError("`y_true` and `y_pred` must not be empty. Received: y_true.shape=(0,)")
    for name, ids in (("y_true", y_true), ("y_pred", y_pred)):
        bad = ids[(ids < 0) | (ids >= num_classes)]
        if bad.size:
            raise ValueError(
                f"`{name}` has class ids outside [0, {num_classes}) for the {num_classes} "
                f"class names. Received: {name} values {sorted(set(bad.tolist()))[:10]}"
            )

    matrix = tf.math.confusion_matrix(y_true, y_pred, num_classes=num_classes).numpy()
    matrix = matrix.astype(np.int64)
    true_positives = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)  # Examples per true class.
    predicted = matrix.sum(axis=0)  # Predictions per class.

    precision = _safe_divide(true_positives, predicted)
    recall = _safe_divide(true_positives, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    num_examples = int(support.sum())

    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    }
    return {
        "num_examples": num_examples,
        "accuracy": float(true_positives.sum() / num_examples),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "weighted_f1": float((f1 * support).sum() / num_examples),
        "per_class": per_class,
        "class_names": list(class_names),
        "confusion_matrix": matrix.tolist(),
    }


def format_report(report, *, digits=4):
    """Render a `classification_report` dict as a fixed-width text table.

    One row per class (precision, recall, F1, support), then accuracy, macro average and
    support-weighted average rows, like scikit-learn's text report. Class names are
    left-aligned in a column as wide as the longest name, so long names keep the number
    columns aligned. Works on a report read back from JSON too.

    Args:
        report: the dict returned by `classification_report`.
        digits: decimal places for the ratios.

    Returns:
        The table as one string (lines joined with `\\n`, no trailing newline).
    """
    names = list(report["class_names"])
    per_class = report["per_class"]
    total = report["num_examples"]
    # Weighted precision / recall are not stored in the report; derive them for the table.
    weighted = {
        key: sum(per_class[n][key] * per_class[n]["support"] for n in names) / total if total else 0.0
        for key in ("precision", "recall")
    }

    labels = names + ["accuracy", "macro avg", "weighted avg"]
    name_width = max(len(str(label)) for label in labels)
    number_width = max(len("precision"), digits + 2)
    support_width = max(len("support"), len(str(total)))

    def row(label, precision="", recall="", f1="", support=""):
        cells = [
            f"{_fmt(value, digits):>{number_width}}" for value in (precision, recall, f1)
        ]
        return f"{label:<{name_width}}  " + "  ".join(cells) + f"  {support!s:>{support_width}}"

    lines = [
        f"{'':<{name_width}}  "
        + "  ".join(f"{h:>{number_width}}" for h in ("precision", "recall", "f1-score"))
        + f"  {'support':>{support_width}}",
        "",
    ]
    for name in names:
        stats = per_class[name]
        lines.append(row(name, stats["precision"], stats["recall"], stats["f1"], stats["support"]))
    lines.append("")
    lines.append(row("accuracy", f1=report["accuracy"], support=total))
    lines.append(
        row("macro avg", report["macro_precision"], report["macro_recall"], report["macro_f1"], total)
    )
    lines.append(
        row("weighted avg", weighted["precision"], weighted["recall"], report["weighted_f1"], total)
    )
    return "\n".join(line.rstrip() for line in lines)


def _check_class_names(class_names):
    """Return `class_names` as a list of str, or raise ValueError."""
    if isinstance(class_names, str):
        raise ValueError(
            f"`class_names` must be a list of names, not a string. Received: class_names={class_names!r}"
        )
    names = [str(name) for name in class_names]
    if not names:
        raise ValueError(f"`class_names` must not be empty. Received: class_names={class_names!r}")
    if len(set(names)) != len(names):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"`class_names` must be unique. Received duplicates: {duplicates}")
    return names


def _to_class_ids(values, name):
    """Return `values` as a 1-D int64 array of class ids, or raise ValueError."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(
            f"`{name}` must be class ids of shape [N]"
            + (" or scores of shape [N, C]" if name == "y_pred" else "")
            + f". Received: {name}.shape={array.shape}"
        )
    if array.size == 0:
        return array.astype(np.int64)
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"`{name}` must hold integer class ids. Received: {name}.dtype={array.dtype}")
    if not np.issubdtype(array.dtype, np.integer):
        # Floats are fine if they are whole numbers (e.g. labels stored as float32).
        not_whole = ~np.isfinite(array) | (array != np.round(array))
        if np.any(not_whole):
            raise ValueError(
                f"`{name}` must hold integer class ids. "
                f"Received: {name} with values such as {array[not_whole][:5].tolist()}"
            )
    return array.astype(np.int64)


def _safe_divide(numerator, denominator):
    """Element-wise `numerator / denominator`, with 0.0 where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator != 0)


def _fmt(value, digits):
    """Format a ratio with `digits` decimals; blank cells stay blank."""
    return "" if value == "" else f"{value:.{digits}f}"
