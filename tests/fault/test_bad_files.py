"""A damaged checkpoint stops resume= with one error naming the file."""

from __future__ import annotations

import pytest

from litlab.config import ConfigError
from litlab.rundirs import compose
from litlab.train import run


def test_resume_from_a_truncated_checkpoint_names_it(make_config):
    run_dir, _ = run(make_config("trainer.max_epochs=5", "trainer.check_val_every_n_epoch=5"))
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(ConfigError) as info:
        run(compose([f"resume={run_dir}", "trainer.max_epochs=10"]))
    (error,) = info.value.errors
    assert error.startswith(f"{last}: not a readable checkpoint")
