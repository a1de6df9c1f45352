"""Pretrained parts and what trains: backbones, freezing, frozen prefixes.

- `applications`: `keras.applications` backbones by name, with offline ImageNet weights.
- `freezing`: freeze and unfreeze layers, BatchNorm kept in inference mode.
- `frozen_prefix`: `FrozenPrefix`, a model's frozen bottom that the trainer computes once.
- `pruning`: magnitude pruning (Zhu & Gupta), masks kept at zero every step, stripped for export.
"""

from tf_finetune._lazy import exports

__getattr__, __dir__, __all__ = exports(__name__, {
    "build_backbone": "applications",
    "ApplicationPreprocess": "applications",
    "freeze": "freezing",
    "unfreeze": "freezing",
    "freeze_first": "freezing",
    "unfreeze_top": "freezing",
    "frozen_params_in_top": "freezing",
    "trainable_summary": "freezing",
    "format_trainable_summary": "freezing",
    "FrozenPrefix": "frozen_prefix",
    "find_frozen_prefix": "frozen_prefix",
    "split_model": "frozen_prefix",
    "Pruner": "pruning",
    "prunable_kernels": "pruning",
    "sparsity_report": "pruning",
    "strip": "pruning",
})
