import sys

from tf_finetune.cli import main  # first: it quiets TensorFlow's C++ logging before TF loads
from projects.sentiment_lstm.project import PROJECT

sys.exit(main(PROJECT))
