"""A search worker: `python -m litlab.search FOLDER SLOT` trains one trial and exits."""

import sys
from pathlib import Path

import optuna

from litlab.search.worker import work

optuna.logging.set_verbosity(optuna.logging.INFO)
sys.exit(work(Path(sys.argv[1]), int(sys.argv[2])))
