import sys

from tf_finetune.cli import main
from projects.sentiment_lstm.project import PROJECT

sys.exit(main(PROJECT))
