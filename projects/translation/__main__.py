import sys

from tf_finetune.cli import main  # first: it quiets TensorFlow's C++ logging before TF loads
from projects.translation.project import PROJECT

sys.exit(main(PROJECT))
