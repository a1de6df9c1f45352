"""Configs are frozen dataclasses: one per project, built on `TrainConfig`.

Every field is also a command-line flag (`learning_rate` -> `--learning-rate`) whose help
text comes from the field, so `--help` documents every setting. A run's config is resolved
in this order, later wins:

1. the dataclass defaults,
2. `--config FILE` (JSON or TOML, keys are field names; unknown keys are rejected),
3. `--smoke` (the class's `SMOKE` overrides, which shrink any run to seconds),
4. flags given explicitly on the command line.

The resolved config is written to `RUN/config.json` and read back by `evaluate`/`export`.
"""

import argparse
import dataclasses
import json
import os
import typing

from tf_finetune.errors import UserError


# The names the training code takes, kept here (the one list of each) so that configs and
# `--help` load without TensorFlow: `tf_finetune.training.schedules.build_schedule`,
# `optimizers.make_optimizer`, `strategy.choose_strategy`.
LR_SCHEDULES = ("constant", "linear", "exponential", "cosine", "cosine_restarts")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")
# Flat fields that only the two-phase plan reads (a config with stages sets them per stage).
PHASE_TWO_FIELDS = ("fine_tune_epochs", "unfreeze_top", "fine_tune_learning_rate")


def option(default, help, choices=None, cli=True):
    """A config field with its `--help` text (and allowed values); `cli=False` keeps it out of
    the flags (config files only)."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "cli": cli})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Settings every project shares: the run, the optimiser, the two fine-tuning phases."""

    # Run.
    seed: int = option(42, "Random seed for splits, shuffling, initialisation and augmentation.")
    deterministic: bool = option(
        False, "Use deterministic TF ops (slower) so the same seed gives identical metrics."
    )
    strategy: str = option(
        "auto",
        "tf.distribute strategy: auto picks TPU when configured, multi_worker when TF_CONFIG "
        "is set, mirrored with more than one GPU, else default.",
        STRATEGIES,
    )
    mixed_precision: bool = option(
        False, "Compute in mixed_float16 (GPU) with float32 variables and outputs."
    )
    jit_compile: bool = option(False, "Compile the train step with XLA.")
    cache_frozen_prefix: bool = option(
        True,
        "For a model with a frozen bottom (a FrozenPrefix layer, e.g. BERT's frozen embeddings "
        "and first layers): compute its outputs once and train only the layers above on them. "
        "Same results, faster epochs. In a search (tune), also a head-only first stage over a frozen "
        "backbone and unaugmented data: the backbone's outputs are computed once for all trials.",
    )
    validation_split: float = option(
        0.2, "Fraction of each class held out for validation when the data has no split."
    )
    test_split: float = option(
        0.0,
        "Fraction of each class held out as a test set before anything else: never trained on, "
        "never used to choose a checkpoint or a setting; scored once at the end, on its own in "
        "metrics.json (0 = none).",
    )
    folds: int = option(
        0,
        "k-fold cross-validation: the training data is cut into this many stratified folds (grouped "
        "with --group-column); `train --folds K` trains one run per fold and summarises them "
        "(0 = one ordinary train/validation split).",
    )
    fold: int = option(
        0,
        "With --folds: the fold this run validates on, 1 to folds (train --folds sets it in each "
        "fold's run directory; 0 = the refit on all the data).",
    )
    max_examples_per_class: int = option(
        0, "Use at most this many examples per class (0 = all); --smoke sets it small."
    )
    # Phase 1: the head, with the pretrained backbone frozen.
    epochs: int = option(10, "Epochs of phase 1 (the head, backbone frozen).")
    batch_size: int = option(32, "Global batch size (split across replicas).")
    optimizer: str = option("adam", "Optimizer.", OPTIMIZERS)
    learning_rate: float = option(1e-3, "Peak learning rate of phase 1.")
    weight_decay: float = option(0.0, "Decoupled weight decay (adamw, sgd).")
    layer_decay: float = option(
        1.0,
        "Layer-wise learning-rate decay: the model's top trainable layer learns at the "
        "schedule's rate, each one below at decay times the one above (a nested model such "
        "as a backbone counts as one layer). 1 = one rate for all.",
    )
    lr_schedule: str = option(
        "cosine",
        "Learning-rate schedule of each phase (linear: decay to 0, as for BERT).",
        LR_SCHEDULES,
    )
    warmup_epochs: float = option(0.0, "Linear warmup at the start of each phase, in epochs.")
    decay_rate: float = option(0.9, "exponential: multiply the LR by this every decay_epochs.")
    decay_epochs: float = option(1.0, "exponential: epochs per decay_rate step.")
    restart_epochs: float = option(0.0, "cosine_restarts: length of the first cycle (0 = phase/4).")
    min_lr_fraction: float = option(0.0, "cosine schedules: final LR as a fraction of the peak.")
    label_smoothing: float = option(0.0, "Label smoothing for the cross-entropy loss.")
    class_weight: str = option(
        "none",
        "Weight each training example's loss by its class, for imbalanced data (Keras's "
        "class_weight): balanced (n / (classes * n_class) from the training split's counts, so "
        "every class weighs the same in all), NAME=WEIGHT pairs separated by commas (the other "
        "classes weigh 1), or none. Validation is not weighted.",
    )
    ema_momentum: float = option(
        0.0,
        "Keep an exponential moving average of the trainable weights with this momentum "
        "(Keras's use_ema; e.g. 0.999 averages over about the last 1000 steps): validation, "
        "the best checkpoint and exports use the average. 0 = off.",
    )
    # Phase 2: fine-tuning the top of the backbone.
    fine_tune_epochs: int = option(
        0, "Epochs of phase 2, after unfreezing the top of the backbone (0 = no phase 2)."
    )
    unfreeze_top: int = option(
        -1, "Phase 2 unfreezes this many top backbone layers (-1 = all); BatchNorm stays frozen."
    )
    fine_tune_learning_rate: float = option(1e-4, "Peak learning rate of phase 2.")
    # A plan of stages (config files only), instead of the two phases above.
    stages: typing.Tuple[dict, ...] = option(
        (),
        "The run as a list of stages ([[stages]] tables in a TOML --config, a list in JSON), "
        "each with its epochs, what is trainable, optimizer, rate and batch size, or a "
        "shorthand (technique = gradual_unfreezing, adaptive_unfreezing, optimizer_switch, "
        "batch_ramp). Empty: the two phases the flags above describe. See docs/training.md.",
        cli=False,
    )
    epoch_budget: int = option(
        0,
        "Stop the plan after this many epochs in all (0 = the whole plan): its first epochs exactly "
        "as the whole plan runs them, schedules included. tune --tuner hyperband sets it per trial.",
    )
    # Callbacks.
    monitor: str = option("val_accuracy", "Metric for the best checkpoint and early stopping.")
    checkpoint: str = option(
        "best",
        "The weights a run keeps: best (the epoch with the best --monitor on the validation "
        "data) or last (no choice made on the validation data, so its score there is unbiased).",
        ("best", "last"),
    )
    early_stopping_patience: int = option(0, "Stop a phase after this many epochs without improvement (0 = off).")

    # Fields the `--smoke` switch overrides; projects extend this.
    SMOKE: typing.ClassVar[dict] = {
        "epochs": 1,
        "fine_tune_epochs": 1,
        "max_examples_per_class": 16,
        "batch_size": 16,
    }

    def __post_init__(self):
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices and value not in choices:
                raise UserError(
                    f"--{flag_name(f.name)} must be one of {', '.join(choices)}. "
                    f"Received: {f.name}={value!r}"
                )
        positive = ("epochs", "batch_size", "learning_rate", "fine_tune_learning_rate")
        for name in positive:
            value = getattr(self, name)
            if value <= 0 and not (name == "epochs" and self.fine_tune_epochs > 0):
                raise UserError(f"--{flag_name(name)} must be positive. Received: {name}={value}")
        if not 0.0 < self.layer_decay <= 1.0:
            raise UserError(f"--layer-decay must be in (0, 1]. Received: layer_decay={self.layer_decay}")
        if not 0.0 <= self.ema_momentum < 1.0:
            raise UserError(f"--ema-momentum must be in [0, 1) (0 = off). Received: ema_momentum={self.ema_momentum}")
        if self.fine_tune_epochs < 0 or self.max_examples_per_class < 0:
            raise UserError(
                "--fine-tune-epochs and --max-examples-per-class must be >= 0. Received: "
                f"fine_tune_epochs={self.fine_tune_epochs}, "
                f"max_examples_per_class={self.max_examples_per_class}"
            )
        if not 0.0 < self.validation_split < 1.0:
            raise UserError(
                "--validation-split must be between 0 and 1. Received: "
                f"validation_split={self.validation_split}"
            )
        if not 0.0 <= self.test_split < 1.0 or self.validation_split + self.test_split >= 1.0:
            raise UserError(
                "--test-split must be in [0, 1), and with --validation-split leave some data for "
                f"training. Received: test_split={self.test_split}, validation_split={self.validation_split}"
            )
        if self.epoch_budget < 0:
            raise UserError(f"--epoch-budget must be 0 (the whole plan) or more. Received: epoch_budget={self.epoch_budget}")
        if self.folds == 1 or self.folds < 0:
            raise UserError(f"--folds must be 0 (no cross-validation) or at least 2. Received: folds={self.folds}")
        if not 0 <= self.fold <= self.folds:
            raise UserError(f"--fold must be in 1..--folds (0 = all the data). Received: fold={self.fold}, "
                            f"folds={self.folds}")
        from tf_finetune.training import class_weights

        class_weights.parse(self.class_weight)
        if self.stages:
            from tf_finetune.training import stages

            object.__setattr__(self, "stages", tuple(stages.check_specs(self.stages, self)))
            flat = [f.name for f in dataclasses.fields(self) if f.name in PHASE_TWO_FIELDS
                    and getattr(self, f.name) != f.default]
            if flat:
                raise UserError(
                    f"--{flag_name(flat[0])} describes the two-phase plan, but this config has "
                    "stages: set it per stage in the [[stages]] tables instead."
                )

    def to_dict(self):
        return dataclasses.asdict(self)


def flag_name(field_name):
    return field_name.replace("_", "-")


def _field_types(cls):
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(cls, name, value, source):
    """Checks/coerces one value to the field's type; `source` names where it came from."""
    expected = _field_types(cls)[name]
    origin = typing.get_origin(expected)
    try:
        if expected is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            raise TypeError
        if expected is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if expected is float:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if expected is str:
            if not isinstance(value, str):
                raise TypeError
            return value
        if origin is tuple:
            if isinstance(value, str):  # A config file's "a,b" for a list of names.
                value = [v.strip() for v in value.split(",") if v.strip()]
            item = typing.get_args(expected)[0] if typing.get_args(expected) else None
            return tuple(item(v) if item in (int, float, str) else v for v in value)
        if origin is typing.Union:  # Optional[...] fields: None or the inner type.
            return value
        return value
    except (TypeError, ValueError):
        type_name = getattr(expected, "__name__", str(expected))
        raise UserError(
            f"{source}: {name} must be a {type_name}. Received: {name}={value!r}"
        ) from None


def read_table_file(path, flag, holds):
    """The dict in a TOML (`.toml`) or JSON file; `flag` and `holds` name it in the errors
    ("--config", "settings")."""
    if not os.path.isfile(path):
        raise UserError(f"{flag} {path} does not exist: pass a JSON or TOML file of {holds}.")
    try:
        if path.endswith(".toml"):
            import tomllib

            with open(path, "rb") as f:
                data = tomllib.load(f)
        else:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{flag} {path} is not valid JSON/TOML: {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"{flag} {path} must hold an object of {holds}. Received: {type(data).__name__}")
    return data


def read_config_file(cls, path):
    """Reads a JSON or TOML config file into a dict of checked field values."""
    return check_keys(cls, read_table_file(path, "--config", "settings"), f"--config {path}")


def check_keys(cls, data, source):
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise UserError(
            f"{source}: unknown setting(s) {', '.join(unknown)}; valid settings are "
            f"{', '.join(names)}."
        )
    return {k: _coerce(cls, k, v, source) for k, v in data.items()}


def build_config(cls, *, file=None, smoke=False, overrides=None):
    """Resolves defaults < config file < smoke < explicit overrides into a `cls`.

    `--smoke` also cuts every stage of a plan to one epoch.
    """
    values = {}
    if file:
        values.update(read_config_file(cls, file))
    if smoke:
        values.update(cls.SMOKE)
        if values.get("stages"):
            from tf_finetune.training import stages

            defaults = {f.name: f.default for f in dataclasses.fields(cls)}
            values.update({name: defaults[name] for name in PHASE_TWO_FIELDS},
                          stages=stages.shrink_for_smoke(values["stages"]))
    if overrides:
        values.update(check_keys(cls, overrides, "command line"))
    return cls(**values)


def load_run_config(cls, path):
    """Reads `RUN/config.json` written by `save_config`."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return cls(**check_keys(cls, data, path))


def add_config_flags(parser, cls, title="settings (also accepted as keys of --config FILE)"):
    """Adds one flag per config field, under `title`. Unset flags are absent from the parsed
    namespace."""
    group = parser.add_argument_group(title)
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True):
            continue
        flag = f"--{flag_name(f.name)}"
        # argparse %-formats help texts: a literal "%" (e.g. "89.91%") must be doubled.
        help_text = f"{f.metadata.get('help', '')} (default: {f.default!r})".replace("%", "%%")
        kwargs = dict(dest=f.name, default=argparse.SUPPRESS, help=help_text)
        field_type = _field_types(cls)[f.name]
        if field_type is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if f.metadata.get("choices"):
            kwargs["choices"] = f.metadata["choices"]
        if field_type in (int, float, str):
            kwargs["type"] = field_type
        elif typing.get_origin(field_type) is tuple:
            if typing.get_args(field_type)[:1] == (str,):  # a list of names
                kwargs.update(nargs="+", type=str, metavar="NAME")
            else:  # ranges: two numbers
                kwargs.update(nargs=2, type=float, metavar=("LOW", "HIGH"))
        group.add_argument(flag, **kwargs)


def overrides_from_args(cls, args):
    """The config fields given explicitly on the command line."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names}
