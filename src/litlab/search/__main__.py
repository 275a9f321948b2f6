"""A search worker: `python -m litlab.search SLOT WORDS...` trains one trial and exits."""

import sys

import optuna

from litlab.search.worker import work

optuna.logging.set_verbosity(optuna.logging.INFO)
sys.exit(work(sys.argv[2:], int(sys.argv[1])))
