"""A search worker: `python -m litlab.search SLOT WORDS...` trains one trial and exits."""

import gc
import sys

import optuna

from litlab.search.worker import work

optuna.logging.set_verbosity(optuna.logging.INFO)
status = work(sys.argv[2:], int(sys.argv[1]))
gc.freeze()  # as `litlab` does: exit without collecting torch's and Lightning's objects
sys.exit(status)
