"""Knowledge distillation: a student learns from a finished teacher's outputs.

- `settings`: `DistillSettings`, the `distill` command's flags (no TensorFlow).
- `transfer_set`: the texts the teacher labels (training texts and augmented copies).
- `teacher`: a teacher run or SavedModel, and its cached logits.
- `loss`: the student's loss (distillation at temperature T, mixed with the hard labels).

The command is `tf_finetune.cli.distill`; docs/distillation.md explains the method.
"""
