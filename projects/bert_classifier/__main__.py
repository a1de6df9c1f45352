import sys

from tf_finetune.cli import main
from projects.bert_classifier.project import PROJECT

sys.exit(main(PROJECT))
