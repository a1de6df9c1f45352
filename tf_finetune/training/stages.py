"""A run as a plan of stages: what trains, with which optimizer, rate and batch size, how long.

A stage is one `Stage`. A plan is a list of them, given in a config file:

```toml
[[stages]]                      # train the new head on frozen features
name = "head"
epochs = 3
trainable = "head"
learning_rate = 3e-3

[[stages]]                      # then one more backbone block every epoch (ULMFiT)
technique = "gradual_unfreezing"
blocks = 3
epochs_per_block = 1
learning_rate = 3e-4
```

or built from the flat flags (`--epochs`, `--fine-tune-epochs`, `--unfreeze-top`,
`--fine-tune-learning-rate`, ...), which give today's two stages: the model as built, then
its backbone's top layers unfrozen. Every field a stage leaves out comes from the config.

What trains (`trainable`) is one vocabulary for every project; "blocks" are what the project
says its pretrained part is made of (MobileNet's inverted-residual blocks, BERT's transformer
layers, the LSTM encoder's layers), counted from the top:

| trainable | what trains |
|---|---|
| `as_built` | what the project's model factory left trainable (its own `--freeze...` flags) |
| `head` | everything but the pretrained blocks |
| `top:N` | the head and the top N blocks |
| `from:LAYER` | the head and every block from the one holding the layer named LAYER up |
| `top_layers:N` | the head and the last N entries of the backbone's `layers` (-1: all); what `--unfreeze-top` counts |
| `all` | everything |
| `lora:R` | the head and rank-R low-rank adapters on `lora_targets` (default the attention's query and value projections); nothing else |

`also_train` names layers inside the blocks (at any depth) that train in full as well,
whatever `trainable` says: PEFT's `modules_to_save`. With `lora:R`, e.g.
`also_train = ["self_attention_layer_norm", "feedforward_layer_norm"]` trains BERT's
LayerNorms beside the adapters.

BatchNormalization layers stay frozen (inference mode, their pretrained statistics) in every
form unless the stage says `batchnorm = "train"`: then those inside what the stage trains
train too and re-estimate their moving statistics on this data, at `batchnorm_momentum` (0:
as built). A `FrozenPrefix` (a frozen bottom the trainer computes once) stays frozen.

Shorthands (`technique = ...`) expand into stages, recorded in full in `run.json`:

- `gradual_unfreezing` (`blocks`, `epochs_per_block`): the head for `epochs_per_block`
  epochs, then `top:1`, `top:2`, ... `top:blocks`, each as long ("all" blocks allowed).
- `adaptive_unfreezing` (`max_blocks`, `patience`, `epochs_per_block`): the same ladder, but a
  step ends, and the next block is unfrozen, once the monitored metric has not improved for
  `patience` epochs (or after `epochs_per_block`); the last step also ends on a stall.
- `optimizer_switch` (`epochs = [E1, E2]`, `first`, `then`): E1 epochs with `first` (AdamW),
  then E2 with `then` (SGD with momentum) at a rate derived from the first optimizer's state
  when it ends (`derive_learning_rate`, see `tf_finetune.training.optimizers.sgd_rate_from_adam`).
- `batch_ramp` (`start`, `factor`, `every`, `max`, `epochs`): the batch size starts at `start`
  and is multiplied by `factor` every `every` epochs up to `max`, at a constant learning rate
  and with one optimizer throughout (Smith et al. 2018: grow the batch instead of decaying
  the rate).

Any stage can also prune (`tf_finetune.models.pruning`): `prune_sparsity = 0.8` zeroes the
smallest-magnitude 80% of each chosen kernel by the stage's `prune_end_step`, following Zhu &
Gupta's cubic schedule from `prune_begin_step` and remaking the masks every
`prune_frequency` steps (steps count from the stage's first); masks stay for the rest of the
run, and a later pruning stage starts from the sparsity reached:

```toml
[[stages]]                      # after the stages that fit the model
name = "prune"
epochs = 5
trainable = "all"
learning_rate = 1e-4
prune_sparsity = 0.8
prune_end_step = 200            # default -1: the stage's last step
prune_frequency = 8
```

No TensorFlow here: plans are checked when the config is read, and against the model (its
blocks, layer names, LoRA targets, prunable layers) before anything is written.
"""

import dataclasses
import math
import re
import typing

from tf_finetune.errors import UserError

# Stage fields a config's flat settings fill in when a stage leaves them out.
FROM_CONFIG = ("optimizer", "learning_rate", "lr_schedule", "warmup_epochs", "weight_decay",
               "layer_decay", "batch_size")
BATCHNORM = ("frozen", "train")
# How a pruning stage shares its sparsity among its kernels (tf_finetune.models.pruning).
PRUNE_ALLOCATIONS = ("uniform", "erk", "global")
TRAINABLE_FORMS = ("as_built", "head", "all", "top:N", "from:LAYER", "top_layers:N", "lora:R")
_TRAINABLE = re.compile(r"^(as_built|head|all)$|^(top|top_layers|from|lora):(.+)$")


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of a plan (see the module docstring for `trainable`).

    Attributes:
        name: shown in logs, `history.csv` and the training-curve plot.
        epochs: epochs of the stage (at most, for a stage that ends on a stall).
        trainable: what trains, in the vocabulary of the module docstring.
        optimizer, learning_rate, lr_schedule, warmup_epochs, weight_decay, layer_decay:
            a fresh optimizer and schedule spanning the stage (as the flat flags).
        batch_size: the global batch size of the stage's training batches.
        lora_alpha: LoRA's scale numerator (`alpha / rank` multiplies the adapters); 0 = the rank.
        lora_targets: names of the Dense/EinsumDense layers that get adapters.
        lora_init: how the adapters start: "default" (Keras's: `A` random, `B` zeros) or
            "pissa" (Meng et al. 2024: from the kernel's top singular directions, the kernel
            keeping the rest; `tf_finetune.models.lora`), for the layers that get them here.
        also_train: names of layers inside the blocks (any depth) whose weights train in
            full too, whatever `trainable` says (PEFT's `modules_to_save`); not a LoRA target.
        loraplus_lr_ratio: LoRA+ (Hayou et al. 2024): the adapters' B matrices train at this
            multiple of the stage's rate, their A matrices at the rate itself (PEFT's
            `loraplus_lr_ratio`; the paper suggests 16 with a rate about half plain LoRA's);
            1 = plain LoRA.
        reduce_on_plateau: when > 0, multiply the learning rate by this factor once the
            monitored metric has not improved for `plateau_patience` epochs (it multiplies
            whatever schedule runs).
        plateau_patience: epochs without improvement before a reduction.
        advance_patience: when > 0, the stage ends once the monitored metric has not improved
            for this many epochs (adaptive unfreezing).
        derive_learning_rate: take the rate from the previous stage's Adam state instead of
            `learning_rate` (the optimizer switch; SGD only).
        continue_optimizer: keep the previous stage's optimizer, its state and its rate,
            instead of a fresh one (the batch ramp); the trainable part must be the same.
        prune_sparsity: when > 0, the sparsity the stage prunes its kernels to, in [0, 1)
            (`tf_finetune.models.pruning`); masks made stay for the rest of the run.
        prune_begin_step, prune_end_step: the steps of the stage (from its first, 0) where the
            schedule starts from the kernels' current sparsity and reaches `prune_sparsity`;
            -1 = the stage's last step. Steps past the stage's are clipped to it.
        prune_frequency: steps between mask updates (also made at the begin and end steps).
        prune_layers: names of the layers to prune; by default every Dense, EinsumDense and
            convolution kernel with at least `prune_min_params` parameters.
        prune_min_params: the smallest kernel pruned by default (1,000).
        prune_allocation: how `prune_sparsity` is shared among the kernels: "uniform" (each
            kernel to it), "erk" (Erdős–Rényi-Kernel: small and narrow kernels denser, large
            ones sparser) or "global" (one magnitude threshold over all the kernels).
        distill_alpha: when > 0, the stage also learns from a frozen copy of the model as the
            stage begins (`tf_finetune.training.stage_teacher`): this weight on its soft
            targets, 1 - alpha on the labels' loss; in (0, 1].
        distill_temperature: the temperature of those soft targets (> 0).
        batchnorm: "frozen" (every BatchNormalization layer in inference mode, with its
            pretrained statistics) or "train": those inside what the stage trains train as
            well, and their moving statistics follow this data (what a pruning stage needs,
            whose zeros change the statistics under every pruned kernel).
        batchnorm_momentum: with `batchnorm = "train"`, the momentum of the moving statistics;
            0 = as built (MobileNet's 0.99; MobileNetV2's 0.999 takes thousands of steps).
    """

    name: str
    epochs: int
    trainable: str = "as_built"
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"
    warmup_epochs: float = 0.0
    weight_decay: float = 0.0
    layer_decay: float = 1.0
    batch_size: int = 32
    lora_alpha: float = 0.0
    lora_targets: typing.Tuple[str, ...] = ("query", "value")
    lora_init: str = "default"
    also_train: typing.Tuple[str, ...] = ()
    loraplus_lr_ratio: float = 1.0
    reduce_on_plateau: float = 0.0
    plateau_patience: int = 2
    advance_patience: int = 0
    derive_learning_rate: bool = False
    continue_optimizer: bool = False
    prune_sparsity: float = 0.0
    prune_begin_step: int = 0
    prune_end_step: int = -1
    prune_frequency: int = 100
    prune_layers: typing.Tuple[str, ...] = ()
    prune_min_params: int = 1000
    prune_allocation: str = "uniform"
    distill_alpha: float = 0.0
    distill_temperature: float = 2.0
    batchnorm: str = "frozen"
    batchnorm_momentum: float = 0.0

    def to_dict(self):
        return dataclasses.asdict(self)

    @property
    def trainable_kind(self):
        """`trainable` without its argument: "top", "lora", "head", ..."""
        return self.trainable.split(":", 1)[0]

    @property
    def trainable_argument(self):
        """The part after the colon (`top:3` -> "3"), or None."""
        return self.trainable.split(":", 1)[1] if ":" in self.trainable else None


# Shorthand name -> its fields and their defaults (`None`: required).
TECHNIQUES = {
    "gradual_unfreezing": {"blocks": "all", "epochs_per_block": 1},
    "adaptive_unfreezing": {"max_blocks": "all", "patience": 1, "epochs_per_block": 3},
    "optimizer_switch": {"epochs": None, "first": "adamw", "then": "sgd"},
    "batch_ramp": {"start": None, "factor": 2, "every": None, "max": None, "epochs": None},
}
STAGE_FIELDS = tuple(f.name for f in dataclasses.fields(Stage))


def legacy_plan(config):
    """The two stages the flat flags describe: the model as built, then fine-tuning.

    `--fine-tune-epochs 0` leaves the first alone; `--epochs 0` the second alone.
    """
    shared = {name: getattr(config, name) for name in FROM_CONFIG if name != "learning_rate"}
    stages = []
    if config.epochs > 0:
        stages.append(Stage("head", config.epochs, "as_built", learning_rate=config.learning_rate, **shared))
    if config.fine_tune_epochs > 0:
        stages.append(Stage("fine-tune", config.fine_tune_epochs, f"top_layers:{config.unfreeze_top}",
                            learning_rate=config.fine_tune_learning_rate, **shared))
    return stages


def check_specs(specs, config):
    """Checks a config's `stages` entries without a model; returns them as dicts.

    Raises a `UserError` naming the stage and field for anything that cannot be right for any
    model: unknown fields or techniques, malformed `trainable`, values out of range.
    """
    if not isinstance(specs, (list, tuple)):
        raise UserError(f"stages must be a list of tables ([[stages]] in TOML). Received: {type(specs).__name__}")
    checked = []
    previous = "as_built"  # what trains after the stages so far, as `expand` inherits it
    for index, spec in enumerate(specs):
        where = _where(index, spec)
        if not isinstance(spec, dict):
            raise UserError(f"{where}: must be a table of stage fields. Received: {spec!r}")
        spec = dict(spec)
        technique = spec.pop("technique", None)
        if technique is not None:
            _check_technique(where, technique, spec)
            # An unfreezing ladder ends on top:N; "all" stands in for it (the checks that
            # depend on `trainable` only tell as_built and lora:R from the rest).
            unfreezing = technique in ("gradual_unfreezing", "adaptive_unfreezing")
            previous = "all" if unfreezing else spec.get("trainable", previous)
        else:
            stage = _stage(where, {**_defaults(config, index), "trainable": previous, **spec})  # raises on a bad field
            previous = stage.trainable
        checked.append({"technique": technique, **spec} if technique else spec)
    if not checked:
        raise UserError("stages is empty: give at least one [[stages]] table, or leave it out.")
    return checked


def expand(config, num_blocks=None):
    """The plan of `config` as `Stage`s: its `stages` entries with shorthands expanded, or
    the flat flags' two stages. `num_blocks` (the model's) resolves `"all"` blocks."""
    if not config.stages:
        return legacy_plan(config)
    plan = []
    for index, spec in enumerate(config.stages):
        spec = dict(spec)
        technique = spec.pop("technique", None)
        where = _where(index, spec)
        # What trains stays as the previous stage left it unless the stage says otherwise.
        if technique not in ("gradual_unfreezing", "adaptive_unfreezing"):
            spec.setdefault("trainable", plan[-1].trainable if plan else "as_built")
        base = {**_defaults(config, index), **{k: v for k, v in spec.items() if k in STAGE_FIELDS}}
        if technique is None:
            plan.append(_stage(where, base))
        else:
            plan.extend(_expand_technique(where, technique, spec, base, num_blocks))
    for index, stage in enumerate(plan):
        if stage.derive_learning_rate and (index == 0 or plan[index - 1].optimizer not in ("adam", "adamw")):
            raise UserError(f"stage {index + 1} ({stage.name!r}), field derive_learning_rate: the rate is derived "
                            "from the stage before's Adam state, so that stage must use adam or adamw.")
    pruning = next((index for index, stage in enumerate(plan) if stage.prune_sparsity > 0), None)
    if pruning is not None and any(stage.trainable_kind == "lora" for stage in plan):
        raise UserError(f"stage {pruning + 1} ({plan[pruning].name!r}), field prune_sparsity: pruning and LoRA "
                        "do not combine in one plan (an adapted layer exports its kernel plus a dense low-rank "
                        "product, which undoes the zeros): prune in a plan without lora:R stages.")
    names = [stage.name for stage in plan]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UserError(f"stages: names must differ; {', '.join(map(repr, repeated))} repeats. "
                        "Give each [[stages]] table its own name.")
    return plan


def spec_value(config, index, field):
    """What `config.stages[index]` takes for `field` as `expand` fills it in: its own value, else
    (for `trainable`) the stage before's, else the config's flat setting (`FROM_CONFIG`), else
    `Stage`'s default. None when the plan has no such stage or the field has no default (epochs)."""
    if index >= len(config.stages):
        return None
    spec = config.stages[index]
    if field in spec:
        return spec[field]
    if field == "trainable" and "technique" not in spec:
        return spec_value(config, index - 1, field) if index else "as_built"
    base = _defaults(config, index)
    if field in base:
        return base[field]
    default = next((f.default for f in dataclasses.fields(Stage) if f.name == field), None)
    return None if default is dataclasses.MISSING else default


def check_against_model(plan, *, num_blocks, layer_names, lora_targets, has_backbone, train_examples):
    """Checks a plan against the model and data it will train: one line naming the stage and
    field for a block count past the model's, an unknown layer, a LoRA target the model does
    not have, a batch size past the data."""
    for index, stage in enumerate(plan):
        where = f"stage {index + 1} ({stage.name!r})"
        kind, argument = stage.trainable_kind, stage.trainable_argument
        if kind in ("head", "top", "from", "lora") and not num_blocks:
            raise UserError(f"{where} trainable={stage.trainable!r}: this model has no pretrained blocks "
                            "(it trains from scratch): use 'all' or 'as_built'.")
        if kind == "top_layers" and not has_backbone:
            raise UserError(f"{where} trainable={stage.trainable!r}: this model has no pretrained backbone "
                            "whose layers could be unfrozen: use 'all' or 'as_built'.")
        if kind == "top" and int(argument) > num_blocks:
            raise UserError(f"{where} trainable={stage.trainable!r}: the model has {num_blocks} blocks: "
                            f"pass top:0 to top:{num_blocks}, or 'all'.")
        if kind == "from" and argument not in layer_names:
            shown = ", ".join(sorted(layer_names)[:8])
            raise UserError(f"{where} trainable={stage.trainable!r}: no layer named {argument!r} in the "
                            f"pretrained blocks (e.g. {shown}, ...): pass one of their layer names.")
        if kind == "lora":
            missing = [t for t in stage.lora_targets if t not in lora_targets]
            if missing:
                found = ", ".join(sorted(lora_targets)[:8]) or "none"
                raise UserError(f"{where} lora_targets={list(stage.lora_targets)!r}: no Dense or EinsumDense "
                                f"layer named {missing[0]!r} in the pretrained blocks (names found: {found}): "
                                "pass names of such layers.")
        missing = [name for name in stage.also_train if name not in layer_names]
        if missing:
            shown = ", ".join(sorted(layer_names)[:8]) or "none"
            raise UserError(f"{where} also_train={list(stage.also_train)!r}: no layer named {missing[0]!r} in the "
                            f"pretrained blocks (e.g. {shown}, ...): pass names of their layers.")
        if train_examples is not None and stage.batch_size > train_examples:
            raise UserError(f"{where} batch_size={stage.batch_size}: the training data has only "
                            f"{train_examples} examples: lower the batch size (or its ramp's max).")


# --- Helpers ---

def shrink_for_smoke(specs):
    """`stages` entries cut to seconds for `--smoke`: one epoch per stage (two for a ramp)."""
    shrunk = []
    for spec in specs:
        spec = dict(spec)
        technique = spec.get("technique")
        if technique is None:
            spec["epochs"] = 1
        elif technique in ("gradual_unfreezing", "adaptive_unfreezing"):
            spec["epochs_per_block"] = 1
        elif technique == "optimizer_switch":
            spec["epochs"] = [1, 1]
        elif technique == "batch_ramp":
            spec.update(every=1, epochs=2)
        shrunk.append(spec)
    return tuple(shrunk)


def _where(index, spec):
    name = spec.get("name") if isinstance(spec, dict) else None
    return f"stage {index + 1}" + (f" ({name!r})" if name else "")


def _defaults(config, index):
    return {"name": f"stage{index + 1}", **{name: getattr(config, name) for name in FROM_CONFIG}}


def _stage(where, fields):
    """A checked `Stage` from a dict of fields."""
    unknown = sorted(set(fields) - set(STAGE_FIELDS))
    if unknown:
        raise UserError(f"{where}: unknown field(s) {', '.join(unknown)}; stage fields are "
                        f"{', '.join(STAGE_FIELDS)} (or technique = {' | '.join(TECHNIQUES)}).")
    if "epochs" not in fields:
        raise UserError(f"{where}: epochs is missing: give the stage's number of epochs.")
    fields = {k: _coerce(where, k, v) for k, v in fields.items()}
    stage = Stage(**fields)
    _check_values(where, stage)
    return stage


def _coerce(where, name, value):
    expected = {f.name: f.type for f in dataclasses.fields(Stage)}[name]
    try:
        if expected in (int, "int"):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if expected in (float, "float"):
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if expected in (bool, "bool"):
            if not isinstance(value, bool):
                raise TypeError
            return value
        if expected in (str, "str"):
            if not isinstance(value, str):
                raise TypeError
            return value
        if isinstance(value, str):  # a tuple of names given as one string
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise TypeError
        return tuple(value)
    except (TypeError, ValueError):
        kind = expected.__name__ if isinstance(expected, type) else "list of names"
        raise UserError(f"{where}, field {name}: must be a {kind}. Received: {name}={value!r}") from None


def _check_values(where, stage):
    from tf_finetune.config import LR_SCHEDULES
    from tf_finetune.config import OPTIMIZERS

    def bad(field, rule):
        raise UserError(f"{where}, field {field}: {rule}. Received: {field}={getattr(stage, field)!r}")

    if stage.epochs < 1:
        bad("epochs", "must be at least 1")
    if not _TRAINABLE.match(stage.trainable):
        bad("trainable", f"must be one of {', '.join(TRAINABLE_FORMS)}")
    kind, argument = stage.trainable_kind, stage.trainable_argument
    if kind in ("top", "lora") and not (argument.isdigit() and (kind == "top" or int(argument) > 0)):
        bad("trainable", f"{kind}: takes a whole number" + (" >= 1 (the rank)" if kind == "lora" else ""))
    if kind == "top_layers" and not re.fullmatch(r"-1|\d+", argument):
        bad("trainable", "top_layers: takes a whole number, or -1 for all")
    if stage.optimizer not in OPTIMIZERS:
        bad("optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
    if stage.lr_schedule not in LR_SCHEDULES:
        bad("lr_schedule", f"must be one of {', '.join(LR_SCHEDULES)}")
    if not stage.learning_rate > 0 or not math.isfinite(stage.learning_rate):
        bad("learning_rate", "must be positive")
    if stage.batch_size < 1:
        bad("batch_size", "must be at least 1")
    if stage.warmup_epochs < 0:
        bad("warmup_epochs", "must be >= 0")
    if stage.weight_decay < 0:
        bad("weight_decay", "must be >= 0")
    if not 0.0 < stage.layer_decay <= 1.0:
        bad("layer_decay", "must be in (0, 1]")
    if not 0.0 <= stage.reduce_on_plateau < 1.0:
        bad("reduce_on_plateau", "must be in [0, 1) (a factor; 0 = off)")
    if stage.plateau_patience < 1:
        bad("plateau_patience", "must be at least 1")
    if stage.advance_patience < 0:
        bad("advance_patience", "must be >= 0 (0 = run all epochs)")
    if stage.lora_alpha < 0:
        bad("lora_alpha", "must be >= 0 (0 = the rank)")
    if stage.lora_init not in ("default", "pissa"):
        bad("lora_init", "must be \"default\" (Keras's: A random, B zeros) or \"pissa\" (the kernel's principal "
                         "directions)")
    if stage.lora_init != "default" and kind != "lora":
        bad("lora_init", "sets how LoRA adapters start: set trainable = \"lora:R\" too, or leave it out")
    if not stage.loraplus_lr_ratio >= 1.0 or not math.isfinite(stage.loraplus_lr_ratio):
        bad("loraplus_lr_ratio", "must be >= 1 (the B matrices' rate over the A matrices'; 1 = plain LoRA)")
    adapted = sorted(set(stage.also_train) & set(stage.lora_targets)) if kind == "lora" else []
    if adapted:
        bad("also_train", f"{adapted[0]!r} is a LoRA target too, whose kernel stays frozen under its adapters: "
                          "name it in one of also_train and lora_targets")
    if stage.loraplus_lr_ratio != 1.0 and kind != "lora":
        bad("loraplus_lr_ratio", "sets the rate of LoRA adapters: set trainable = \"lora:R\" too, or leave it out")
    if stage.derive_learning_rate and stage.optimizer != "sgd":
        bad("derive_learning_rate", "derives an SGD rate: set optimizer = \"sgd\" too")
    if not 0.0 <= stage.prune_sparsity < 1.0:
        bad("prune_sparsity", "must be in [0, 1)")
    if stage.prune_begin_step < 0:
        bad("prune_begin_step", "must be >= 0 (a step of the stage, counted from its first)")
    if stage.prune_end_step != -1 and stage.prune_end_step <= stage.prune_begin_step:
        bad("prune_end_step", f"an end step before the begin step: must be after prune_begin_step "
                              f"({stage.prune_begin_step}), or -1 for the stage's last step")
    if stage.prune_frequency < 1:
        bad("prune_frequency", "must be at least 1 (steps between mask updates)")
    if stage.prune_min_params < 0:
        bad("prune_min_params", "must be >= 0")
    if stage.prune_allocation not in PRUNE_ALLOCATIONS:
        bad("prune_allocation", f"must be one of {', '.join(PRUNE_ALLOCATIONS)}")
    if not 0.0 <= stage.distill_alpha <= 1.0:
        bad("distill_alpha", "must be in [0, 1] (the soft targets' weight; 0 = no teacher)")
    if not stage.distill_temperature > 0 or not math.isfinite(stage.distill_temperature):
        bad("distill_temperature", "must be positive")
    if stage.batchnorm not in BATCHNORM:
        bad("batchnorm", f"must be one of {', '.join(BATCHNORM)}")
    if stage.batchnorm == "train" and kind == "as_built":
        bad("batchnorm", "\"train\" applies to what the stage trains: name it with trainable "
                         "(head, top:N, from:LAYER, top_layers:N or all) instead of as_built")
    if not 0.0 <= stage.batchnorm_momentum < 1.0:
        bad("batchnorm_momentum", "must be in [0, 1) (0 = as built)")
    if stage.batchnorm_momentum and stage.batchnorm != "train":
        bad("batchnorm_momentum", "sets the momentum of BatchNorm statistics that train: set "
                                  "batchnorm = \"train\" too, or leave it out")


def _check_technique(where, technique, spec):
    if technique not in TECHNIQUES:
        raise UserError(f"{where}, field technique: must be one of {', '.join(TECHNIQUES)}. "
                        f"Received: technique={technique!r}")
    own = TECHNIQUES[technique]
    unfreezing = technique in ("gradual_unfreezing", "adaptive_unfreezing")
    allowed = set(own) | (set(STAGE_FIELDS) - {"epochs", *(("trainable",) if unfreezing else ())})
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise UserError(f"{where} ({technique}): unknown field(s) {', '.join(unknown)}; it takes "
                        f"{', '.join(own)} and the stage fields {', '.join(sorted(allowed - set(own)))}.")
    missing = [k for k, v in own.items() if v is None and k not in spec]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise UserError(f"{where} ({technique}): {', '.join(missing)} {verb} missing.")
    values = {**own, **spec}

    def count(field, minimum=1, allow_all=False):
        value = values[field]
        if allow_all and value == "all":
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            extra = ' or "all"' if allow_all else ""
            raise UserError(f"{where} ({technique}), field {field}: must be a whole number >= {minimum}{extra}. "
                            f"Received: {field}={value!r}")

    if technique == "gradual_unfreezing":
        count("blocks", allow_all=True)
        count("epochs_per_block")
    elif technique == "adaptive_unfreezing":
        count("max_blocks", allow_all=True)
        count("patience")
        count("epochs_per_block")
    elif technique == "optimizer_switch":
        epochs = values["epochs"]
        if (not isinstance(epochs, (list, tuple)) or len(epochs) != 2
                or not all(isinstance(e, int) and not isinstance(e, bool) and e >= 1 for e in epochs)):
            raise UserError(f"{where} (optimizer_switch), field epochs: must be [E1, E2], the epochs of "
                            f"each optimizer. Received: epochs={epochs!r}")
        for field in ("first", "then"):
            from tf_finetune.config import OPTIMIZERS

            if values[field] not in OPTIMIZERS:
                raise UserError(f"{where} (optimizer_switch), field {field}: must be one of "
                                f"{', '.join(OPTIMIZERS)}. Received: {field}={values[field]!r}")
    elif technique == "batch_ramp":
        for field in ("start", "every", "max", "epochs"):
            count(field)
        if not (isinstance(values["factor"], int) and values["factor"] >= 2):
            raise UserError(f"{where} (batch_ramp), field factor: must be a whole number >= 2. "
                            f"Received: factor={values['factor']!r}")
        if values["max"] < values["start"]:
            raise UserError(f"{where} (batch_ramp), field max: must be >= start ({values['start']}). "
                            f"Received: max={values['max']!r}")


def _expand_technique(where, technique, spec, base, num_blocks):
    _check_technique(where, technique, spec)
    values = {**TECHNIQUES[technique], **spec}
    name = spec.get("name", technique)
    base = {k: v for k, v in base.items() if k not in ("name", "epochs", "trainable")}
    spec = dict(spec)

    def blocks(field):
        value = values[field]
        if value == "all":
            if num_blocks is None:
                raise UserError(f"{where} ({technique}): {field} = \"all\" needs the model's blocks.")
            return num_blocks
        return value

    if technique == "gradual_unfreezing":
        k = values["epochs_per_block"]
        return [_stage(where, {**base, "name": f"{name}-{n}", "epochs": k,
                               "trainable": "head" if n == 0 else f"top:{n}"})
                for n in range(blocks("blocks") + 1)]
    if technique == "adaptive_unfreezing":
        k, patience = values["epochs_per_block"], values["patience"]
        return [_stage(where, {**base, "name": f"{name}-{n}", "epochs": k, "advance_patience": patience,
                               "trainable": "head" if n == 0 else f"top:{n}"})
                for n in range(blocks("max_blocks") + 1)]
    if technique == "optimizer_switch":
        first, then = values["epochs"]
        trainable = spec["trainable"]
        return [
            _stage(where, {**base, "name": f"{name}-{values['first']}", "epochs": first,
                           "trainable": trainable, "optimizer": values["first"]}),
            _stage(where, {**base, "name": f"{name}-{values['then']}", "epochs": then, "trainable": trainable,
                           "optimizer": values["then"], "derive_learning_rate": values["then"] == "sgd",
                           "warmup_epochs": 0.0}),
        ]
    # batch_ramp: constant rate, one optimizer; the last step takes the remaining epochs.
    stages, size, left, step = [], values["start"], values["epochs"], 0
    trainable = spec["trainable"]
    while left > 0:
        epochs = left if size >= values["max"] else min(values["every"], left)
        stages.append(_stage(where, {**base, "name": f"{name}-{size}", "epochs": epochs, "trainable": trainable,
                                     "batch_size": size, "lr_schedule": "constant",
                                     "warmup_epochs": base["warmup_epochs"] if step == 0 else 0.0,
                                     "continue_optimizer": step > 0}))
        left, step = left - epochs, step + 1
        size = min(size * values["factor"], values["max"])
    return stages
