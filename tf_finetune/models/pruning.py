"""Magnitude pruning (Zhu & Gupta 2017) of any Keras 3 model: masks applied every step, stripped at export.

Keras 3 has no pruning tool (tensorflow-model-optimization works only with `tf_keras`), so this
is tfmot's method rebuilt on Keras 3:

- each pruned kernel gets a mask: a non-trainable float32 `keras.Variable`, ones at first;
- every `frequency` steps of a pruning stage the masks are remade: a fraction `s_t` of the
  kernels' weights is zeroed, where `s_t` follows Zhu & Gupta's polynomial schedule from
  `initial` at `begin_step` to `target` at `end_step`:

      s_t = target + (initial - target) * (1 - (t - begin) / (end - begin)) ** 3

  which prunes fast at first, while many weights are redundant, and slowly near the target.
  How `s_t` is shared among the kernels is the `allocation` (a stage's `prune_allocation`):
  "uniform" zeroes each kernel's smallest-|w| fraction `s_t` (tfmot's per-layer pruning);
  "erk" gives each kernel its own sparsity, denser for small and narrow kernels, by the
  Erdős–Rényi-Kernel rule (Evci et al. 2020, RigL; `erk_sparsities`); "global" zeroes the
  smallest-|w| fraction `s_t` of all the kernels' weights together (one threshold, so a
  kernel of small weights loses more);
- after every optimizer step each kernel is multiplied by its mask inside the train step's
  graph: the mask is the kernel variable's `constraint` (`MaskConstraint`), which Keras 3's
  optimizer applies right after each gradient update (`BaseOptimizer.apply`). The traced step
  reads the mask variable, so a mask remade later is seen without tracing again, and no Python
  runs per batch between mask updates;
- at the end of training the constraints are removed (`strip`, `Pruner.detach`), so
  `model.save` writes an ordinary model whose pruned weights are plain zeros. The SavedModel,
  LiteRT (int8 too: zero quantizes to zero) and ONNX exports need nothing special; the zeros
  show in their gzip size, which `export.json` records.

What is pruned (`prunable_kernels`): the kernels of Dense, EinsumDense and convolution layers
(Conv1D/2D/3D and their transposes, DepthwiseConv1D/2D, and SeparableConv's depthwise and
pointwise kernels), the table of an Embedding, and the input and recurrent kernels of LSTM, GRU
and SimpleRNN layers (tfmot's registry prunes the same), at any depth of nested models, with at
least `min_params` parameters (default 1,000). A text model keeps most of its weights in its
embedding and recurrent kernels (sentiment_lstm's configs/imdb.toml: 1,345,536 of its
1,346,306 weights, 1,280,000 in the embedding). Never biases, normalisation,
the layers of a `FrozenPrefix` (the trainer computes those once and trains the rest on the cached
outputs, which pruning them would make stale) or LoRA-adapted layers (their exported kernel is
the frozen kernel plus a dense low-rank product). A chosen kernel is pruned whether or not its
layer trains in the stage: a frozen kernel is pruned in place and cannot recover by training,
so a pruning stage should usually train what it prunes (e.g. `trainable = "all"`).

Masks only grow: a weight pruned once stays zero for the rest of the run, in later stages too.
"""

import dataclasses
import logging
import math

import keras
import numpy as np

from tf_finetune.errors import UserError
from tf_finetune.models.frozen_prefix import FrozenPrefix

logger = logging.getLogger(__name__)

# Smaller kernels are left alone by default: they hold a negligible share of a model's
# parameters (so of its size) and an outsized share of its accuracy: a CNN's stem sees the raw
# pixels, a 3x3 depthwise kernel has 9 weights per channel. A model whose larger kernels are
# such too (MobileNetV2's later depthwise kernels) wants a higher `min_params`: see
# projects/plant_cnn/configs/plantvillage_prune.toml.
MIN_PARAMS = 1000

# Layer types and the attributes holding their kernel variables (Dense, EinsumDense and
# Embedding keep theirs in `_kernel` / `_embeddings`: `kernel` and `embeddings` are properties
# that add LoRA's product; a recurrent layer's are its cell's).
_KERNELS = (
    ((keras.layers.Embedding,), ("_embeddings",)),
    ((keras.layers.LSTM, keras.layers.GRU, keras.layers.SimpleRNN), ("cell.kernel", "cell.recurrent_kernel")),
    ((keras.layers.Dense, keras.layers.EinsumDense), ("_kernel",)),
    ((keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D, keras.layers.Conv1DTranspose,
      keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose, keras.layers.DepthwiseConv1D,
      keras.layers.DepthwiseConv2D), ("kernel",)),
    ((keras.layers.SeparableConv1D, keras.layers.SeparableConv2D), ("depthwise_kernel", "pointwise_kernel")),
)
KINDS = "Dense, EinsumDense, convolution, Embedding or recurrent"


# --- The schedule ---


def polynomial_sparsity(step, *, initial, target, begin_step, end_step, power=3):
    """Zhu & Gupta's sparsity at `step`: `initial` up to `begin_step`, `target` from `end_step`
    on, and `target + (initial - target) * (1 - progress) ** power` between."""
    if end_step <= begin_step:
        return target if step >= begin_step else initial
    progress = min(max((step - begin_step) / (end_step - begin_step), 0.0), 1.0)
    return target + (initial - target) * (1.0 - progress) ** power


def should_update(step, begin_step, end_step, frequency):
    """Whether the masks are remade at `step`: at `begin_step`, every `frequency` steps after
    it, and at `end_step` itself (so the target is reached exactly); never outside them."""
    if step < begin_step or step > end_step:
        return False
    return (step - begin_step) % frequency == 0 or step == end_step


@dataclasses.dataclass(frozen=True)
class Schedule:
    """One stage's schedule, its steps counted from the stage's first."""

    initial: float
    target: float
    begin_step: int
    end_step: int
    frequency: int

    def sparsity(self, step):
        return polynomial_sparsity(step, initial=self.initial, target=self.target, begin_step=self.begin_step,
                                   end_step=self.end_step)

    def updates_at(self, step):
        return should_update(step, self.begin_step, self.end_step, self.frequency)

    @classmethod
    def for_stage(cls, stage, total_steps, initial, where="the stage"):
        """`stage`'s schedule over its `total_steps`: `prune_end_step = -1` is its last step, and
        steps past it are clipped to it with one log line (a `--smoke` run still prunes)."""
        last = max(total_steps - 1, 0)
        end = last if stage.prune_end_step == -1 else stage.prune_end_step
        begin = stage.prune_begin_step
        if end > last or begin > last:
            logger.info("%s has %d steps: its pruning schedule (steps %d to %d) is clipped to steps %d to %d.",
                        where, total_steps, begin, end, min(begin, last), min(end, last))
            end, begin = min(end, last), min(begin, last)
        return cls(initial, stage.prune_sparsity, begin, end, stage.prune_frequency)


# --- What is pruned ---


@dataclasses.dataclass(frozen=True, eq=False)
class Kernel:
    """A prunable kernel: its `name` in reports (the layer's, with the attribute for a layer
    with two kernels), its layer and its variable."""

    name: str
    layer: object
    variable: object
    wrapper: str = ""  # the enclosing Bidirectional's name: `prune_layers` may name either

    @property
    def size(self):
        return math.prod(self.variable.shape)


def prunable_kernels(model, names=(), min_params=MIN_PARAMS, *, where="prune_layers"):
    """The kernels `model` prunes: those of layers called `names` (a Bidirectional's name: both
    directions'), or by default every kernel
    of the kinds above with at least `min_params` parameters, at any depth. The default
    `MIN_PARAMS` (1,000) leaves out kernels too small to matter for the size and too important
    for the accuracy (a CNN's stem, small depthwise kernels).

    A name that is not such a layer, or one that is left alone (inside a `FrozenPrefix`,
    LoRA-adapted), is a `UserError` that starts with `where` (the stage and field).
    """
    found = _candidates(model)
    if not names:
        return [kernel for kernel, reason in found if reason is None and kernel.size >= min_params]
    by_layer = {}
    for kernel, reason in found:
        for name in filter(None, (kernel.layer.name, kernel.wrapper)):
            by_layer.setdefault(name, []).append((kernel, reason))
    chosen = []
    for name in names:
        if name not in by_layer:
            shown = ", ".join(sorted({k.layer.name for k, reason in found if reason is None})[:8]) or "none"
            raise UserError(f"{where}: no {KINDS} layer named {name!r} in the model (e.g. {shown}): pass names of "
                            "such layers, or leave prune_layers out for the default kernels.")
        for kernel, reason in by_layer[name]:
            if reason is not None:
                raise UserError(f"{where}: layer {name!r} is {reason}, which is never pruned: leave it out.")
            chosen.append(kernel)
    return chosen


def _candidates(model):
    """`(Kernel, reason it is left alone or None)` for every kernel of the kinds above, in the
    order of the model's weights."""
    layers = list(model._flatten_layers(include_self=False, recursive=True))
    in_prefix, wrapper = set(), {}
    for layer in layers:
        if isinstance(layer, FrozenPrefix):
            in_prefix.update(id(inner) for inner in layer._flatten_layers(include_self=True, recursive=True))
        elif isinstance(layer, keras.layers.Bidirectional):
            wrapper[id(layer.forward_layer)] = wrapper[id(layer.backward_layer)] = layer.name
    found = []
    for layer in layers:
        attributes = next((names for types, names in _KERNELS if isinstance(layer, types)), ())
        for attribute in attributes:
            variable = layer
            for part in attribute.split("."):
                variable = getattr(variable, part, None)
            if variable is None or "float" not in str(variable.dtype):  # unbuilt, or quantized
                continue
            name = layer.name if len(attributes) == 1 else f"{layer.name}/{attribute.split('.')[-1]}"
            reason = ("inside the model's FrozenPrefix (computed once and cached)" if id(layer) in in_prefix
                      else "LoRA-adapted" if getattr(layer, "lora_enabled", False) else None)
            found.append((Kernel(name, layer, variable, wrapper.get(id(layer), "")), reason))
    position = {id(weight): i for i, weight in enumerate(model.weights)}
    found.sort(key=lambda pair: position.get(id(pair[0].variable), len(position)))
    names = [kernel.name for kernel, _ in found]
    # Layers of different nested models may share a name: then their variables' paths tell them apart.
    return [(dataclasses.replace(kernel, name=kernel.variable.path) if names.count(kernel.name) > 1 else kernel,
             reason) for kernel, reason in found]


# --- Masks ---


class MaskConstraint:
    """`w * mask` (after the variable's own constraint, if it had one): what a pruned kernel
    variable's `constraint` is while it trains."""

    def __init__(self, mask, inner=None):
        self.mask = mask
        self.inner = inner

    def __call__(self, w):
        if self.inner is not None:
            w = self.inner(w)
        return keras.ops.multiply(w, self.mask)


def pruned_count(sparsity, size):
    """How many of `size` weights a mask at `sparsity` zeroes: the nearest whole number."""
    return int(math.floor(sparsity * size + 0.5))


def erk_sparsities(shapes, sparsity):
    """Each kernel's sparsity (a list, in the order of `shapes`) so that the kernels together
    have `sparsity`, by the Erdős–Rényi-Kernel rule of RigL (Evci et al. 2020): kernel k keeps
    a density proportional to `sum(shape_k) / prod(shape_k)`, so a 96x96 1x1 convolution keeps
    8 times the share of a 768x768 one, and a kernel whose share would pass 1 stays dense (the
    others' shares are raised to make up for it, as in RigL).

    The densities fall as `sparsity` rises, so along a schedule no kernel's sparsity ever drops.
    """
    sizes = [math.prod(shape) for shape in shapes]
    scores = [sum(shape) / size for shape, size in zip(shapes, sizes)]
    keep = (1.0 - sparsity) * sum(sizes)
    dense = set()
    while True:
        sparse = [k for k in range(len(shapes)) if k not in dense]
        if not sparse:
            return [0.0] * len(shapes)
        scale = (keep - sum(sizes[k] for k in dense)) / sum(scores[k] * sizes[k] for k in sparse)
        over = [k for k in sparse if scale * scores[k] > 1.0]
        if not over:
            break
        dense.update(over)
    return [0.0 if k in dense else max(1.0 - scale * scores[k], 0.0) for k in range(len(shapes))]


def global_masks(weights, masks, sparsity):
    """New masks for the kernels `weights` (a list of arrays) that zero the smallest-|w|
    `pruned_count(sparsity)` of all their entries together: one magnitude threshold for every
    kernel. As `magnitude_mask`: entries already masked count as the smallest, ties go to the
    earlier kernel and position."""
    flats = [np.abs(np.asarray(w, np.float64)).ravel() for w in weights]
    befores = [np.asarray(m).ravel() == 0 for m in masks]
    flat = np.concatenate([np.where(before, -1.0, f) for f, before in zip(flats, befores)])
    count = max(pruned_count(sparsity, flat.size), int(sum(before.sum() for before in befores)))
    new = np.ones(flat.size, np.float32)
    new[np.argsort(flat, kind="stable")[:count]] = 0.0
    bounds = np.cumsum([0] + [f.size for f in flats])
    return [new[a:b].reshape(np.shape(w)) for a, b, w in zip(bounds[:-1], bounds[1:], weights)]


def magnitude_mask(weights, mask, sparsity):
    """A new mask for `weights` zeroing the `pruned_count(sparsity)` entries of smallest |w|.

    Entries `mask` zeroes already count as the smallest, so masks only grow (and never fewer
    are zeroed than before); ties go to the lower position (a stable sort), so the new mask is
    a function of the weights and the old mask, the same in every run.
    """
    flat = np.abs(np.asarray(weights, np.float64)).ravel()
    before = np.asarray(mask).ravel() == 0
    count = max(pruned_count(sparsity, flat.size), int(before.sum()))
    order = np.argsort(np.where(before, -1.0, flat), kind="stable")
    new = np.ones(flat.size, np.float32)
    new[order[:count]] = 0.0
    return new.reshape(np.shape(weights))


class Pruner:
    """Masks for a model's pruned kernels: one float32 `keras.Variable` per kernel.

    Create it (and `add` kernels) inside the distribution strategy's scope, as the model.

    ```python
    pruner = Pruner(prunable_kernels(model))
    pruner.attach()                 # every optimizer step then keeps the masked weights at zero
    pruner.update(0.5)              # half of each kernel's weights, the smallest, zeroed
    model.fit(...)
    pruner.detach()                 # an ordinary model again, zeros in place
    ```
    """

    def __init__(self, kernels=()):
        self._kernels = {}
        self._masks = {}
        self._attached = False
        self.add(kernels)

    def add(self, kernels):
        """Masks (all ones) for `kernels` that have none yet; attached if the others are."""
        for kernel in kernels:
            if kernel.name in self._kernels:
                continue
            self._kernels[kernel.name] = kernel
            self._masks[kernel.name] = keras.Variable(
                np.ones(kernel.variable.shape, np.float32), dtype="float32", trainable=False,
                name=f"prune_mask_{len(self._masks)}")
            if self._attached:
                self._attach(kernel)
        return self

    @property
    def kernels(self):
        return list(self._kernels.values())

    @property
    def names(self):
        return list(self._kernels)

    def update(self, sparsity, names=None, allocation="uniform"):
        """Remakes the masks of `names` (default all) so that together they zero `sparsity` of
        the kernels' weights, shared as `allocation` says ("uniform", "erk" or "global"), and
        applies them."""
        names = names or self.names
        weights = [keras.ops.convert_to_numpy(self._kernels[name].variable) for name in names]
        masks = [keras.ops.convert_to_numpy(self._masks[name]) for name in names]
        if allocation == "global":
            new = global_masks(weights, masks, sparsity)
        else:
            shares = (erk_sparsities([w.shape for w in weights], sparsity) if allocation == "erk"
                      else [sparsity] * len(names))
            new = [magnitude_mask(w, m, share) for w, m, share in zip(weights, masks, shares)]
        for name, mask in zip(names, new):
            self._masks[name].assign(mask)
        self.apply(names)

    def apply(self, names=None):
        """Multiplies the kernels of `names` (default all) by their masks."""
        for name in names or self.names:
            variable = self._kernels[name].variable
            variable.assign(keras.ops.multiply(variable, self._masks[name]))

    def mask_averages(self, averages):
        """Multiplies moving averages of the kernels by their masks: `averages` is `{id(kernel
        variable): its average}` (an optimizer's `use_ema`), which the optimizer updates before
        the constraint and so would let pruned weights back into the validated average."""
        for name, kernel in self._kernels.items():
            average = averages.get(id(kernel.variable))
            if average is not None:
                average.assign(keras.ops.multiply(average, self._masks[name]))

    def attach(self):
        """Sets each kernel variable's `constraint` to its mask (only the variable's: the
        layer's `kernel_constraint` config, which `model.save` writes, is left alone)."""
        for kernel in self.kernels:
            self._attach(kernel)
        self._attached = True

    def _attach(self, kernel):
        constraint = kernel.variable.constraint
        if not isinstance(constraint, MaskConstraint):
            kernel.variable.constraint = MaskConstraint(self._masks[kernel.name], constraint)

    def detach(self):
        """Removes the constraints `attach` set, checking every pruned weight is zero."""
        _unmask([kernel.variable for kernel in self.kernels])
        self._attached = False

    def size(self, names=None):
        """Weights in the kernels `names` (default all)."""
        return sum(self._kernels[name].size for name in names or self.names)

    def mask_sparsity(self, names=None, allocation="uniform"):
        """Where a stage that prunes the kernels `names` (default all) starts its schedule: the
        smallest fraction of masked entries among them ("uniform" allocation), or the masked
        share of all their entries together (the others, whose kernels differ by design)."""
        masks = [keras.ops.convert_to_numpy(self._masks[name]) for name in names or self.names]
        if allocation != "uniform":
            size = sum(mask.size for mask in masks)
            return float(sum(np.count_nonzero(mask == 0) for mask in masks)) / size if size else 0.0
        return min((1.0 - float(np.mean(mask)) for mask in masks), default=0.0)

    def sparsity(self):
        """`sparsity_report` of the kernels, counted from their zero weights."""
        return sparsity_report(self)

    @property
    def masks(self):
        """`{kernel name: mask}` as NumPy arrays (for backups)."""
        return {name: keras.ops.convert_to_numpy(mask) for name, mask in self._masks.items()}

    def load(self, arrays):
        """Puts back masks that `masks` gave (`{kernel name: array}`)."""
        unknown = sorted(set(arrays) - set(self._masks))
        if unknown:
            raise ValueError(f"Masks for kernels this pruner does not have: {unknown}")
        for name, array in arrays.items():
            self._masks[name].assign(np.asarray(array, np.float32))


def strip(model):
    """`model` without pruning constraints, ready to save: an ordinary model whose pruned
    weights are zeros. Raises `ValueError` if a masked weight is not zero."""
    _unmask([kernel.variable for kernel, _ in _candidates(model)])
    return model


def _unmask(variables):
    for variable in variables:
        constraint = variable.constraint
        if not isinstance(constraint, MaskConstraint):
            continue
        weights = keras.ops.convert_to_numpy(variable)
        stray = int(np.count_nonzero(weights[keras.ops.convert_to_numpy(constraint.mask) == 0]))
        if stray:
            raise ValueError(f"{variable.path} has {stray} non-zero weights where its pruning mask is zero.")
        variable.constraint = constraint.inner


def sparsity_report(source, names=(), min_params=0):
    """`{"layers": {name: {"params", "zeros", "sparsity"}}, "params", "zeros", "sparsity"}`,
    counted from the actual zero weights: of a `Pruner`'s kernels, or of a model's
    `prunable_kernels(model, names, min_params)`."""
    kernels = source.kernels if isinstance(source, Pruner) else prunable_kernels(source, names, min_params)
    return _report(kernels)


def _report(kernels):
    layers = {}
    for kernel in kernels:
        zeros = int(np.count_nonzero(keras.ops.convert_to_numpy(kernel.variable) == 0))
        layers[kernel.name] = {"params": kernel.size, "zeros": zeros, "sparsity": zeros / kernel.size}
    params = sum(entry["params"] for entry in layers.values())
    zeros = sum(entry["zeros"] for entry in layers.values())
    return {"layers": layers, "params": params, "zeros": zeros, "sparsity": zeros / params if params else 0.0}


def export_summary(model, plan):
    """The `pruning` record of an export (export.json, or pruning.json beside a SavedModel) of
    `model` trained by `plan` (run.json's stage dicts): the pruned kernels' `sparsity_report`
    and the plan's target; None when the plan does not prune."""
    stages = [stage for stage in plan or () if stage.get("prune_sparsity", 0) > 0]
    if not stages:
        return None
    kernels = {}
    for stage in stages:
        for kernel in prunable_kernels(model, stage.get("prune_layers", ()), stage.get("prune_min_params", MIN_PARAMS)):
            kernels.setdefault(kernel.name, kernel)
    return {"target_sparsity": max(stage["prune_sparsity"] for stage in stages), **_report(kernels.values())}


# --- In a run ---


class PruningCallback(keras.callbacks.Callback):
    """Remakes the masks when the schedule says so, at the start of a batch (the batch then
    trains with them); the step is `first_step` + the batch's index in the epoch. Also masks
    the weights' moving average before each validation when the optimizer keeps one.

    `schedule` None: only the averages (a stage after a pruning one, whose masks remain).
    """

    def __init__(self, pruner, schedule=None, names=None, first_step=0, allocation="uniform"):
        super().__init__()
        self.pruner = pruner
        self.schedule = schedule
        self.names = names
        self.first_step = first_step
        self.allocation = allocation

    def on_train_batch_begin(self, batch, logs=None):
        step = self.first_step + batch
        if self.schedule is not None and self.schedule.updates_at(step):
            self.pruner.update(self.schedule.sparsity(step), self.names, self.allocation)

    def on_test_begin(self, logs=None):
        # Before keras.callbacks.SwapEMAWeights puts the average into the model.
        optimizer = getattr(self.model, "optimizer", None)
        if getattr(optimizer, "use_ema", False):
            from tf_finetune.training.backup import moving_averages

            self.pruner.mask_averages(moving_averages(optimizer))


def check_plan(plan, model):
    """Checks each pruning stage's `prune_layers` and `prune_min_params` against `model`:
    one line naming the stage and field when a name is not a prunable layer or nothing is
    left to prune."""
    for index, stage in enumerate(plan):
        if stage.prune_sparsity > 0:
            _stage_kernels(model, index, stage)


def _stage_kernels(model, index, stage):
    where = f"stage {index + 1} ({stage.name!r})"
    kernels = prunable_kernels(model, stage.prune_layers, stage.prune_min_params, where=f"{where}, field prune_layers")
    if not kernels:
        largest = max((kernel.size for kernel, reason in _candidates(model) if reason is None), default=0)
        raise UserError(f"{where}, field prune_min_params: no {KINDS} kernel of the model has "
                        f"{stage.prune_min_params:,} parameters or more (the largest has {largest:,}): lower "
                        f"prune_min_params or name layers in prune_layers. Received: "
                        f"prune_min_params={stage.prune_min_params}")
    return kernels


class PlanPruning:
    """What a plan's pruning stages ask of one run, for the trainer: the masks, made stage by
    stage and kept to the end; each pruning stage's schedule and callback; which epochs may be
    kept as the best; what the backup holds.

    Args:
        plan: the run's `Stage`s.
        model: the model (kernels shared with any sub-model the trainer fits).
    """

    def __init__(self, plan, model):
        self.plan = plan
        self.model = model
        pruning = [index for index, stage in enumerate(plan) if stage.prune_sparsity > 0]
        self.last = pruning[-1] if pruning else None
        self.pruner = Pruner() if pruning else None
        self.schedule = None
        self.names = None
        self.allocation = "uniform"
        self.steps_per_epoch = None

    @property
    def active(self):
        """Whether the plan prunes at all."""
        return self.pruner is not None

    def add_stage(self, index):
        """Makes the masks (all ones) of stage `index`'s kernels, when it prunes; call it for
        every stage reached, finished ones included, before loading a backup."""
        if self.plan[index].prune_sparsity > 0:
            self.pruner.add(_stage_kernels(self.model, index, self.plan[index]))

    def start_stage(self, index, steps_per_epoch, initial=None):
        """Begins stage `index` (its masks made and any backup loaded): attaches the masks and,
        for a pruning stage, sets its schedule from `initial` (by default the sparsity its
        kernels' masks have now; a resumed stage passes what its backup recorded)."""
        stage = self.plan[index]
        self.pruner.attach()
        self.schedule, self.steps_per_epoch = None, steps_per_epoch
        if stage.prune_sparsity <= 0:
            return
        self.names = [kernel.name for kernel in _stage_kernels(self.model, index, stage)]
        self.allocation = stage.prune_allocation
        if initial is None:
            initial = self.pruner.mask_sparsity(self.names, stage.prune_allocation)
        where = f"Stage {index + 1} ({stage.name})"
        self.schedule = Schedule.for_stage(stage, stage.epochs * steps_per_epoch, initial, where)
        s = self.schedule
        logger.info("%s prunes %d kernels (%s weights) from %.1f%% to %.1f%% sparsity (%s), steps %d to %d of "
                    "%d, every %d steps.", where, len(self.names), f"{self.pruner.size(self.names):,}", 100 * s.initial,
                    100 * s.target, stage.prune_allocation, s.begin_step, s.end_step, stage.epochs * steps_per_epoch,
                    s.frequency)

    def callbacks(self, epoch_in_stage):
        """The callbacks of an epoch of the current stage: `[PruningCallback]`, or none for a
        plan without pruning."""
        if not self.active:
            return []
        first = epoch_in_stage * (self.steps_per_epoch or 0)
        return [PruningCallback(self.pruner, self.schedule, self.names, first_step=first, allocation=self.allocation)]

    def logs(self):
        """`{"sparsity": the pruned kernels' zeros / weights}` for the epoch's logs ({} without pruning)."""
        return {"sparsity": self.pruner.sparsity()["sparsity"]} if self.active else {}

    def counts_as_best(self, index, epochs_done):
        """Whether the epoch after which stage `index` has run `epochs_done` epochs may be kept
        as the best: only once the plan's last pruning stage has reached its target (else the
        best model could be a denser one)."""
        if not self.active or index != self.last:
            return not self.active or index > self.last
        return self.schedule.end_step < epochs_done * self.steps_per_epoch

    def state(self):
        """What the latest backup keeps (in its meta): the masks (`{kernel name: array}`) and
        the current pruning stage's schedule start; nothing for a plan without pruning."""
        if not self.active:
            return {}
        start = {"prune_initial": self.schedule.initial} if self.schedule is not None else {}
        return {"masks": self.pruner.masks, **start}

    def load(self, masks):
        """Puts back the masks a backup held (None or {} for one without)."""
        if masks:
            self.pruner.load(masks)

    def finish(self):
        """Removes the masks' constraints: the model saves as an ordinary one."""
        if self.active:
            self.pruner.detach()
