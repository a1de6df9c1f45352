"""Search and cross-validation over the shared trainer: `tune` (KerasTuner as the engine,
each trial a full run) and k-fold cross-validation (`train --folds K`)."""
