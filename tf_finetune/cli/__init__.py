"""The command line every project shares: `python -m projects.<name> train|evaluate|export|predict`.

`app` holds the parser and `main`; `commands` the four commands; `tensorflow_logs` loads
TensorFlow quietly when a command needs it. Nothing here imports TensorFlow at import time.
"""

from tf_finetune.cli.app import build_parser
from tf_finetune.cli.app import main

__all__ = ["build_parser", "main"]
