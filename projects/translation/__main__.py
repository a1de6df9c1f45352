import sys

from tf_finetune.cli import main
from projects.translation.project import PROJECT

sys.exit(main(PROJECT))
