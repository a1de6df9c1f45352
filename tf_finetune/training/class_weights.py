"""Class weights: each training example's loss scaled by a weight of its class, for data whose
classes are unevenly represented (Keras's `model.fit(class_weight=...)`).

```
class_weight = "balanced"             # n / (k * n_c): every class carries the same total weight
class_weight = "healthy=2,scab=1.5"   # the named classes; the others weigh 1
class_weight = "none"                 # the default
```

"balanced" is scikit-learn's `compute_class_weight("balanced")` on the training split's
counts: with n examples in k classes, a class of n_c examples weighs n / (k * n_c), so the
weights average 1 over the examples and the learning rate means what it meant. Only the
training loss is weighted; validation metrics and `val_loss` are not, as in Keras. With
MixUp or CutMix a mixed example weighs as the class with the larger share (Keras takes the
arg-max of a label row).

No TensorFlow here: configs check the text when they are built.
"""

from tf_finetune.errors import UserError

NONE = "none"
BALANCED = "balanced"


def parse(spec):
    """`None` (no weights), `"balanced"`, or `{class name: weight}` from a `--class-weight`
    value; a malformed one is a `UserError` naming the flag."""
    text = str(spec).strip()
    if text.lower() in ("", NONE):
        return None
    if text.lower() == BALANCED:
        return BALANCED
    weights = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        name = name.strip()
        try:
            weight = float(value)
        except ValueError:
            weight = None
        if not sep or not name or weight is None:
            raise UserError(f"--class-weight {spec!r}: expected none, balanced, or NAME=WEIGHT pairs separated "
                            f"by commas (e.g. healthy=2,scab=1.5); {item.strip()!r} is not a NAME=WEIGHT pair.")
        if not weight > 0 or weight == float("inf"):
            raise UserError(f"--class-weight {spec!r}: the weight of {name!r} must be a positive number. "
                            f"Received: {value.strip()}")
        if name in weights:
            raise UserError(f"--class-weight {spec!r}: {name!r} is given twice; give each class once.")
        weights[name] = weight
    return weights


def resolve(spec, class_names, train_counts=None):
    """`{class index: weight}` for `model.fit(class_weight=...)`, or None for no weights.

    Args:
        spec: the `--class-weight` value.
        class_names: the data's class names, in label order.
        train_counts: `{class name: examples}` of the training split; "balanced" needs it.
    """
    parsed = parse(spec)
    if parsed is None:
        return None
    if not class_names:
        raise UserError(f"--class-weight {spec}: this project's model has no classes to weight; "
                        "leave --class-weight at none.")
    if parsed == BALANCED:
        if not train_counts:
            raise UserError("--class-weight balanced: this data source does not give its training split's class "
                            "counts (TFDS); pass --data-dir with a local copy, or give NAME=WEIGHT pairs.")
        counts = [int(train_counts.get(name, 0)) for name in class_names]
        total, present = sum(counts), sum(1 for n in counts if n)
        return {i: total / (present * n) if n else 1.0 for i, n in enumerate(counts)}
    unknown = [name for name in parsed if name not in class_names]
    if unknown:
        raise UserError(f"--class-weight {spec}: no class named {unknown[0]!r}; the classes are "
                        f"{', '.join(class_names)}.")
    return {i: parsed.get(name, 1.0) for i, name in enumerate(class_names)}


def for_data(config, data, loss=None):
    """`resolve` for a run: `config.class_weight` over a project's `Data` (its class names and
    `info["train_counts"]`). `loss`: the command's own loss (a distillation's, a sequence
    loss), if any, which class weights do not apply to: a `UserError` when weights are asked."""
    weights = resolve(config.class_weight, data.class_names, data.info.get("train_counts"))
    if weights is not None and loss is not None:
        raise UserError(f"--class-weight {config.class_weight}: weights the classification loss by each label's "
                        "class, and this command trains with a loss of its own (distillation targets, a sequence "
                        "loss): leave --class-weight at none.")
    return weights


def describe(weights, class_names):
    """`"a 0.5, b 2"`: the weights by class name, for the log and `run.json`."""
    return ", ".join(f"{name} {weights[i]:.3g}" for i, name in enumerate(class_names))
