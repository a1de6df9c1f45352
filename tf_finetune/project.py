"""What a project supplies to the shared CLI: a config, a data function, a model factory.

A project package (`projects/<name>/`) builds one `Project` and runs
`tf_finetune.cli.main(PROJECT)`; it never writes its own training loop, checkpointing or
export code. Its functions may be given as `lazy("package.module:function")`, so that
`--help` and bad flags are answered without importing TensorFlow.
"""

import dataclasses
import importlib
import typing

from tf_finetune.tasks import ClassificationTask
from tf_finetune.tasks import Task


@dataclasses.dataclass
class Data:
    """What a project's data function returns.

    Attributes:
        train, val: batched `tf.data.Dataset`s of (model inputs, integer labels); `train`
            reshuffles (and re-augments) on every pass.
        train_batches: `(seed, batch_size) -> tf.data.Dataset`: one epoch of training batches
            whose order and augmentation `seed` fixes; the trainer asks for one per epoch, so
            each epoch is a function of (seed, stage, epoch) and stages may change the batch
            size. None when the data cannot do that (then `train` is used every epoch).
        test: a batched dataset held out of everything (`--test-split`): scored once, after
            training, on its own; None when there is none.
        class_names: class names in label order.
        source: where the data came from (a path or `tfds:<name>`), for the run record.
        examples: a few raw validation inputs as the CLI's `predict` takes them (image paths,
            or text), used to verify exports against the Keras model.
        info: counts and anything else worth recording in `run.json`.
        augmentation: the training augmentation (a layer taking a batch of inputs), for the
            run report's preview; None when there is none.
        calibration: a batched dataset of (model inputs, labels) from the training split
            without augmentation, which calibrates int8 exports; None: `train` is used.
        mixing: a `tf_finetune.augmentation.BatchMixing` (MixUp, CutMix) the trainer applies
            to each training batch after making its labels one-hot; None for none.
        adapt: raw training inputs (a `tf.data.Dataset`, unaugmented, unbatched) for layers
            that learn from the data before training, e.g. `TextVectorization.adapt`; None
            when the model needs none.
    """

    train: typing.Any
    val: typing.Any
    class_names: tuple
    source: str
    examples: list
    info: dict = dataclasses.field(default_factory=dict)
    adapt: typing.Any = None
    augmentation: typing.Any = None
    train_batches: typing.Callable = None
    test: typing.Any = None
    calibration: typing.Any = None
    mixing: typing.Any = None


def no_backbone(model):
    """`Project.backbone` of a project whose models have no pretrained part."""
    return None


@dataclasses.dataclass(frozen=True)
class Project:
    """A project's contract with the shared CLI and trainer.

    Attributes:
        name: the package name, e.g. "plant_cnn" (also the export folder name).
        description: one line for `--help`.
        config_class: a frozen dataclass extending `tf_finetune.config.TrainConfig`.
        load_data: `(config, data_dir or None) -> Data`.
        build_model: `(config, data) -> keras.Model`, called inside the strategy scope with
            the `Data` (its `class_names`, and `adapt` for vocabularies).
        preprocess: `(config) -> fn`, where `fn(1-D tf.string) -> model inputs`: the
            in-graph pre-processing shared by `predict` and the exported SavedModel.
        read_inputs: `(list of CLI inputs, max_pixels=...) -> list of raw values` for
            `preprocess` (e.g. file paths -> encoded bytes); `max_pixels` is predict's
            `--max-image-pixels`, which only image projects use.
        synthetic_inputs: `(config) -> list of raw values` used to verify an export when the
            recorded examples are no longer on disk.
        backbone: `(model) -> keras layer or None`: the pretrained part of a model that
            `build_model` made, as one layer (`--unfreeze-top` and `top_layers:N` count its
            layers). None when the model has no pretrained part: the two-phase plan then
            trains in one phase.
        blocks: `(model) -> list of lists of layers`: the pretrained part as blocks, bottom
            to top, which stages unfreeze (`top:N`, `from:LAYER`, gradual unfreezing); by
            default one block per layer with weights of `backbone`.
        task: what the model outputs, and so how the CLI compiles, reports, exports and
            prints predictions (a `tf_finetune.tasks.Task`); `ClassificationTask()` by
            default.
        tensor_model: `(model, config) -> tf_finetune.serving.tensor_model.TensorModel`: the
            model as tensors in, probabilities out, with its documented pre-processing, for
            the LiteRT and ONNX exports; None when the model cannot be split so (those
            formats are then refused).
        from_tables: text projects: `(config, train, val, source, info, transfer=None) ->
            Data`, the data function's second half, from the `TextTable`s that
            `tf_finetune.data.text_data.load_tables` read (see `text_data.make_data` for
            `transfer`). `distill` needs it; None for other projects.
    """

    name: str
    description: str
    config_class: type
    load_data: typing.Callable
    build_model: typing.Callable
    preprocess: typing.Callable
    read_inputs: typing.Callable
    synthetic_inputs: typing.Callable
    backbone: typing.Callable = no_backbone
    blocks: typing.Callable = None
    task: Task = dataclasses.field(default_factory=ClassificationTask)
    tensor_model: typing.Callable = None
    from_tables: typing.Callable = None

    def import_model_code(self):
        """Imports the module of a `lazy` model factory, which registers the project's custom
        layers with Keras: needed before loading a saved model of this project."""
        if isinstance(self.build_model, lazy):
            importlib.import_module(self.build_model.module)

    def parts(self, model):
        """The model's pretrained `tf_finetune.models.trainable.Parts` (backbone and blocks)."""
        from tf_finetune.models import trainable

        backbone = self.backbone(model)
        blocks = self.blocks(model) if self.blocks is not None else trainable.layer_blocks(backbone)
        return trainable.Parts(backbone, blocks)


class lazy:  # noqa: N801 (used like a function)
    """A function named `"package.module:function"`, imported when first called.

    Project packages use it for everything that needs TensorFlow, so that importing a
    project (for `--help`, or to reject a bad flag) stays fast.
    """

    def __init__(self, target):
        module, _, name = target.partition(":")
        if not module or not name:
            raise ValueError(f"Expected 'package.module:function'. Received: {target!r}")
        self.target = target
        self.module, self._name, self._function = module, name, None

    def __call__(self, *args, **kwargs):
        if self._function is None:
            self._function = getattr(importlib.import_module(self.module), self._name)
        return self._function(*args, **kwargs)

    def __repr__(self):
        return f"lazy({self.target!r})"


def pick_examples(inputs, labels, n):
    """Up to `n` of `inputs`, taking classes in turn, so every class is represented.

    For `Data.examples`: the raw validation inputs that `predict` and export checks use.
    """
    by_class = {}
    for item, label in zip(inputs, labels):
        by_class.setdefault(label, []).append(item)
    picked = []
    while len(picked) < n and any(by_class.values()):
        for label in sorted(by_class):
            if by_class[label] and len(picked) < n:
                picked.append(by_class[label].pop(0))
    return picked
