"""Training: the one `Trainer`, and what it is made of.

- `trainer`: `Trainer`, a plan of stages run epoch by epoch, with backups and exact resume.
- `stages`: `Stage`, the plan's vocabulary (what trains, optimizer, rate, batch size) and
  its shorthands (gradual and adaptive unfreezing, optimizer switch, batch ramp).
- `backup`: the state saved after every epoch, checksummed, with the previous one kept.
- `epoch_log`: `history.csv` and TensorBoard, a row per epoch.
- `plateau`: reduce-on-plateau that multiplies any schedule.
- `lr_finder`: the learning-rate range test.
- `prefix_cache`: `PrefixCache`, a frozen prefix's outputs computed once.
- `schedules`, `optimizers`: learning-rate schedules with warmup; optimizers by name with
  layer-wise learning-rate decay.
- `strategy`, `distributed`: choosing a `tf.distribute` strategy; multi-worker `fit`.
"""

from tf_finetune._lazy import exports

__getattr__, __dir__, __all__ = exports(__name__, {
    "Trainer": "trainer",
    "epoch_seed": "trainer",
    "Stage": "stages",
    "Backup": "backup",
    "EpochLog": "epoch_log",
    "ScaledSchedule": "plateau",
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
