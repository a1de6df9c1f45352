import sys

from tf_finetune.cli import main
from projects.plant_cnn.project import PROJECT

sys.exit(main(PROJECT))
