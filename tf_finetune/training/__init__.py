"""Training: the one `Trainer`, and what it is made of.

- `trainer`: `Trainer`, the head and fine-tune phases with callbacks, backups and resume.
- `backup`: `EpochBackup`, the state saved after every epoch (exact resume).
- `data_passes`: which pass over the data each epoch reads, so a resumed run replays them.
- `prefix_cache`: `PrefixCache`, a frozen prefix's outputs computed once.
- `schedules`, `optimizers`: learning-rate schedules with warmup; optimizers by name with
  layer-wise learning-rate decay.
- `strategy`, `distributed`: choosing a `tf.distribute` strategy; multi-worker `fit`.
- `callbacks`: per-epoch learning rate, wall time, TensorBoard.
"""

from tf_finetune._lazy import exports

__getattr__, __dir__, __all__ = exports(__name__, {
    "Trainer": "trainer",
    "Phase": "trainer",
    "EpochBackup": "backup",
    "PrefixCache": "prefix_cache",
    "build_schedule": "schedules",
    "LinearWarmup": "schedules",
    "make_optimizer": "optimizers",
    "layer_decay_scales": "optimizers",
    "choose_strategy": "strategy",
    "describe_strategy": "strategy",
    "prepare_for_multi_worker": "distributed",
    "is_chief": "distributed",
})
