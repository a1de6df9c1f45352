"""Thin per-project packages built on tf_finetune: config, data function, model factory."""
