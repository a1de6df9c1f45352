"""Settings of the bert_classifier project: the shared text-data settings plus the preset,
what is frozen, and BERT's optimizer recipe (AdamW, linear warmup then linear decay)."""

import dataclasses
import typing

from tf_finetune.config import LR_SCHEDULES
from tf_finetune.config import OPTIMIZERS
from tf_finetune.config import option
from tf_finetune.errors import UserError
from tf_finetune.data.text_data import TextDataConfig


@dataclasses.dataclass(frozen=True)
class BertConfig(TextDataConfig):
    dataset: str = option(
        "sst2",
        "Dataset name: the folder under $TF_FINETUNE_DATA, and the TFDS fallback online "
        "(sst2 -> glue/sst2, imdb -> imdb_reviews).",
    )
    # === Model ===
    preset: str = option(
        "hf://sentence-transformers/all-MiniLM-L6-v2",
        "Pretrained BERT: a keras-hub preset folder, a Hugging Face BERT folder (config.json, "
        "model.safetensors, vocab.txt), or a keras-hub handle; a handle's name is looked up "
        "under $TF_FINETUNE_DATA/weights/ first.",
    )
    max_length: int = option(128, "Tokens kept per text, including [CLS] and [SEP].")
    freeze_embeddings: bool = option(True, "Keep the token, position and segment embeddings frozen.")
    freeze_layers: int = option(
        0,
        "Also keep the first N transformer layers frozen (-1: all of them, so only BERT's "
        "pooler and the classifier learn). Needs --freeze-embeddings.",
    )
    pooling: str = option(
        "cls",
        "How the classifier sees a text: cls (BERT's tanh pooler on [CLS], the last layer run "
        "at [CLS] only) or mean (the average of the last layer over the text's tokens, as "
        "sentence-transformers checkpoints such as all-MiniLM-L6-v2 were trained).",
        ("cls", "mean"),
    )
    dropout: float = option(0.1, "Dropout before the classifier.")

    epochs: int = option(
        3,
        "Training epochs (SST-2 dev, 2 CPU cores: 3 epochs gave 90.37%, 89.68% and 90.02% over "
        "three seeds in 27-48 min, as this VM's speed varied; 2 gave 89.91% in 34.1 min).",
    )
    batch_size: int = option(
        32,
        "Global batch size (split across replicas). On SST-2, 64 with --learning-rate 7e-5 was no "
        "faster than 32 on 2 CPU cores and gave 90.14% and 88.88% over two seeds.",
    )
    optimizer: str = option("adamw", "Optimizer.", OPTIMIZERS)
    learning_rate: float = option(5e-5, "Peak learning rate.")
    weight_decay: float = option(0.01, "AdamW weight decay (not on biases and LayerNorm).")
    lr_schedule: str = option(
        "linear", "Learning-rate schedule (linear: decay to 0, as for BERT).",
        LR_SCHEDULES,
    )
    warmup_epochs: float = option(0.1, "Linear warmup from 0, in epochs.")
    label_smoothing: float = option(
        0.1, "Label smoothing for the cross-entropy loss (SST-2 dev, 2 epochs: 89.91% with 0.1, 89.68% with 0)."
    )
    fine_tune_epochs: int = option(
        0, "Unused: BERT trains in one phase; --freeze-layers chooses what learns."
    )

    # About a minute on 2 cores, mostly start-up: 128 texts per class cut at 32 tokens, the
    # first 4 layers frozen (and cached), 4 epochs (0.78 on 256 SST-2 dev sentences).
    SMOKE: typing.ClassVar[dict] = {
        **TextDataConfig.SMOKE,
        "max_examples_per_class": 128,
        "epochs": 4,
        "fine_tune_epochs": 0,
        "batch_size": 16,
        "max_length": 32,
        "freeze_layers": 4,
        "learning_rate": 2e-4,
    }

    def __post_init__(self):
        super().__post_init__()
        if self.fine_tune_epochs:
            raise UserError(
                "--fine-tune-epochs: bert_classifier trains in one phase; choose what learns "
                f"with --freeze-layers. Received: fine_tune_epochs={self.fine_tune_epochs}"
            )
        if self.max_length < 3:
            raise UserError(f"--max-length must be at least 3 ([CLS], a token, [SEP]). Received: max_length={self.max_length}")
        if self.freeze_layers < -1:
            raise UserError(f"--freeze-layers must be -1 (all) or at least 0. Received: freeze_layers={self.freeze_layers}")
        if self.freeze_layers and not self.freeze_embeddings:
            raise UserError(
                "--freeze-layers needs --freeze-embeddings: frozen layers sit on the embeddings. "
                f"Received: freeze_layers={self.freeze_layers}, freeze_embeddings=False"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"--dropout must be in [0, 1). Received: dropout={self.dropout}")
        if (self.word_deletion or self.word_swap) and self.freeze_embeddings and self.cache_frozen_prefix:
            raise UserError(
                "--word-deletion/--word-swap change the texts every epoch, so the frozen layers' "
                "outputs cannot be cached: also pass --no-cache-frozen-prefix (slower), or drop them."
            )
