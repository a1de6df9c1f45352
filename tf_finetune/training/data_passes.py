"""Which pass over the training data each epoch reads, so that a resumed run replays them.

A shuffle (and the per-batch augmentation seeds of `image_folder.batch_images`) draws new
randomness each time an iterator over the dataset starts. Keras 3.15's `fit` starts two
iterators per epoch and reads one (measured), so which randomness epoch k gets would depend
on Keras internals. Behind `one_pass_per_epoch` an iterator only reaches the dataset once it
is read, so epoch k of any run reads the same pass, and `start_passes` replays the passes of
the epochs a resumed run skips.

Before its first epoch, a fit makes one pass that no epoch trains on: Keras's `fit` reads one
to build a model that was created under a `tf.distribute` strategy, and without a strategy
the trainer starts one itself (`fit_reads_a_pass_first`), so one worker or many see the same
batches in every epoch.
"""


def cardinality(ds):
    """The number of batches of `ds`, which must be known and finite."""
    import tensorflow as tf

    n = int(ds.cardinality())
    if n == tf.data.INFINITE_CARDINALITY or n < 0:
        raise ValueError(
            "The training dataset needs a known, finite number of batches. Received: "
            f"cardinality={n}"
        )
    return max(n, 1)


def one_pass_per_epoch(ds):
    """`ds` behind a one-element `flat_map`: its randomness moves on only with passes that read it."""
    import tensorflow as tf

    cardinality(ds)  # known and finite

    @tf.autograph.experimental.do_not_convert
    def the_dataset(_):
        return ds

    return tf.data.Dataset.from_tensors(0).flat_map(the_dataset).apply(
        tf.data.experimental.assert_cardinality(ds.cardinality()))


def fit_reads_a_pass_first(model):
    """Whether Keras's `fit` starts a pass over the data to build `model` before its epochs.

    Keras 3.15 `TensorFlowTrainer._maybe_symbolic_build` does, when the model was built
    under a `tf.distribute` strategy (its `_distribute_strategy`; None for the default one).
    """
    return getattr(model, "_distribute_strategy", None) is not None


def start_passes(ds, n):
    """Starts `n` passes over `ds` and drops them, as the skipped epochs would have."""
    for _ in range(max(0, n)):
        next(iter(ds), None)
