"""Tasks: what the CLI does around training for one kind of model output.

- `task`: `Task`, the protocol (the methods the CLI calls).
- `classification`: `ClassificationTask`, for models that output class probabilities.
"""

from tf_finetune.tasks.classification import ClassificationTask
from tf_finetune.tasks.task import Task

__all__ = ["ClassificationTask", "Task"]
