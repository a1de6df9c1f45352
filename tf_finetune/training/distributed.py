"""Make Keras 3 `model.fit` work under `tf.distribute.MultiWorkerMirroredStrategy`.

With more than one worker, Keras 3.15 + TensorFlow 2.21 `fit` and `evaluate` fail
(keras-team/keras#20585) for two reasons, both in keras/src/backend/tensorflow/trainer.py:

1. `TensorFlowTrainer._maybe_symbolic_build` (called by `fit` and `evaluate`) takes the
   first distributed batch and calls `strategy.reduce("MEAN", batch, axis=None)` on the
   whole `(x, y, ...)` structure, even when the model is already built.
   `MirroredStrategy._reduce_to` maps over nested structures; MultiWorkerMirroredStrategy's
   (`CollectiveAllReduceExtended._reduce_to`) doesn't, so the tuple reaches
   `ops.convert_to_tensor`, which fails with "Attempt to convert a value (PerReplica ...)
   with an unsupported type".
2. Once past that, every train/test step fails: `reduce_per_replica(..., "auto")` uses
   `strategy.reduce("MEAN", v, axis=0)` under multi-worker MWMS, and the step's outputs
   (the logs: scalar metric results) have no axis 0.

`prepare_for_multi_worker(model, strategy)` works around both on one model instance, so
`fit` itself still runs, with its callbacks, metrics, validation, History and
`initial_epoch`:

1. `model._maybe_symbolic_build` is replaced for this one model. The replacement passes
   the first replica's part of the batch to Keras's own method. The symbolic build only
   needs shapes and dtypes, so nothing has to be reduced.
2. `model.train_step` and `model.test_step` are wrapped so each output gets a leading axis
   of length 1. Keras's `reduce("MEAN", v, axis=0)` then averages over all replicas and
   drops that axis. This gives the same logs as MirroredStrategy, where Keras takes
   `tf.reduce_mean` of the per-replica results.

`predict` needs neither: it concatenates across workers through a code path that works.

Under any other strategy (default, MirroredStrategy, TPU, or MWMS with a single worker),
`prepare_for_multi_worker` does nothing. Call it on a model created inside
`strategy.scope()`, before `fit`. It survives `compile()`, and calling it twice is safe.
Remove it once Keras fixes keras#20585: `tests/test_distributed.py` shows whether that
has happened.

Also note: every worker must run the same `fit`/`evaluate` calls (same epochs, steps and
callbacks). Only the chief (see `is_chief`) should write checkpoints, logs and exports to
shared paths; `model.save` on the chief alone is fine. Reading a metric's `result()`
outside `fit` is different: metric variables sync on read, so it runs a collective that
every worker must join.
"""

import tensorflow as tf
from keras import tree

# Marks a model that `prepare_for_multi_worker` already patched.
_PATCHED = "_tf_finetune_multi_worker_fix"


def is_multi_worker(strategy):
    """Whether `strategy` is a MultiWorkerMirroredStrategy over more than one worker."""
    # The same test Keras uses to pick its multi-worker reduction
    # (`_collective_all_reduce_multi_worker` in keras/src/backend/tensorflow/trainer.py).
    return isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy
    ) and strategy.extended._in_multi_worker_mode()


def prepare_for_multi_worker(model, strategy):
    """Let `model.fit`/`evaluate` run under a multi-worker MultiWorkerMirroredStrategy.

    Works around keras-team/keras#20585 (see the module docstring). The change applies
    only to this model and is made only when `strategy` is a MultiWorkerMirroredStrategy
    with more than one worker. Otherwise the model is returned unchanged.

    Args:
        model: a `keras.Model` (functional, Sequential or subclassed) created inside
            `strategy.scope()`.
        strategy: the `tf.distribute.Strategy` the model was created under.

    Returns:
        `model`, so the call can be chained.

    Raises:
        TypeError: `strategy` is not a `tf.distribute.Strategy`.
        ValueError: the model was not created inside `strategy.scope()`.
    """
    if not isinstance(strategy, tf.distribute.Strategy):
        raise TypeError(
            f"Expected a tf.distribute.Strategy. Received: strategy={strategy!r}"
        )
    if not is_multi_worker(strategy) or getattr(model, _PATCHED, False):
        return model
    # The strategy the model was created under (TensorFlowTrainer.__init__); the public
    # `model.distribute_strategy` falls back to the current scope's strategy.
    created_under = getattr(model, "_distribute_strategy", None)
    if created_under is not strategy:
        raise ValueError(
            "Create the model inside `strategy.scope()`; otherwise each worker trains on "
            f"its own. Received: model.distribute_strategy={created_under!r}, "
            f"strategy={strategy!r}"
        )

    # keras#20585 (1): this replaces a private Keras method on this one model.
    keras_symbolic_build = model._maybe_symbolic_build

    def maybe_symbolic_build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:  # the first batch, as Keras does
                data_batch = tree.map_structure(_first_local_value(strategy), next(batches))
                break
        return keras_symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = maybe_symbolic_build
    # keras#20585 (2): Keras reduces step outputs with reduce("MEAN", v, axis=0).
    model.train_step = _with_replica_axis(model.train_step)
    model.test_step = _with_replica_axis(model.test_step)
    setattr(model, _PATCHED, True)
    return model


def _first_local_value(strategy):
    def first(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    return first


def _with_replica_axis(step):
    def step_with_replica_axis(data):
        return tree.map_structure(
            lambda v: None if v is None else tf.expand_dims(v, 0), step(data)
        )

    return step_with_replica_axis


def is_chief(strategy):
    """Whether this process is the chief of `strategy`'s cluster.

    The chief is the task of type "chief". If the cluster has no chief, it is "worker" 0.
    A strategy without a cluster (default, MirroredStrategy, or MWMS without TF_CONFIG)
    has a single process, which is the chief. Under MultiWorkerMirroredStrategy the
    cluster comes from its cluster resolver, which reads TF_CONFIG by default.

    Args:
        strategy: a `tf.distribute.Strategy` (anything with a `cluster_resolver`).

    Returns:
        True for the chief, False for the other workers (and evaluator or ps tasks).

    Raises:
        TypeError: `strategy` has no `cluster_resolver`.
    """
    if not hasattr(strategy, "cluster_resolver"):
        raise TypeError(
            f"Expected a tf.distribute.Strategy. Received: strategy={strategy!r}"
        )
    resolver = strategy.cluster_resolver
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = bool(resolver.cluster_spec().as_dict().get("chief"))
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief
