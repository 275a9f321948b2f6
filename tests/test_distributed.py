"""DDP on CPU processes (gloo): one run folder, rank-0 writes only, exact metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
from conftest import free_port

from litlab.config import ConfigError
from litlab.data import CirclesDataModule, DiabetesDataModule
from litlab.model import MLP
from litlab.module import ClassifierModule, RegressorModule
from litlab.train import prepare

ROOT = Path(__file__).resolve().parents[1]
SHORT = ["trainer.max_epochs=40", "trainer.check_val_every_n_epoch=10"]


def litlab(*words: str, cwd: Path, command: list[str] | None = None, env: dict | None = None):
    command = command or [sys.executable, "-m", "litlab", "train"]
    return subprocess.Popen(
        [*command, *words],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    return out


def only_run(runs: Path) -> Path:
    """The single run folder under runs/<name>/, checked to be the only one."""
    (name,) = list(runs.iterdir())
    (run_dir,) = list(name.iterdir())
    return run_dir


def single_process_test(run_dir: Path, task: str) -> dict[str, float]:
    """Test metrics of best.ckpt in this one process, on the same data."""
    if task == "binary":
        datamodule = CirclesDataModule()
        module = ClassifierModule(MLP(2, 1, [16, 16], "tanh"), partial(torch.optim.SGD, lr=0.1))
    else:
        datamodule = DiabetesDataModule()
        datamodule.setup()
        net = MLP(10, 1, [16], "tanh")
        module = RegressorModule(
            net, partial(torch.optim.SGD, lr=0.1), **datamodule.module_kwargs()
        )
    import lightning as L

    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    (results,) = trainer.test(
        module,
        datamodule=datamodule,
        ckpt_path=run_dir / "checkpoints" / "best.ckpt",
        verbose=False,
    )
    return results


def assert_written_once(run_dir: Path) -> dict:
    events = list(run_dir.glob("events.out.tfevents.*"))
    assert events and len({e.name.split(".")[4] for e in events}) == 1  # one process wrote them
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert (run_dir / "config.yaml").exists()
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("words", "task"), [([], "binary"), (["experiment=diabetes"], "regression")]
)
def test_two_cpu_processes_write_one_run_with_exact_metrics(tmp_path, words, task):
    out = finish(litlab("trainer=ddp_cpu", "trainer.devices=2", *words, *SHORT, cwd=tmp_path))
    run_dir = only_run(tmp_path / "runs")
    metrics = assert_written_once(run_dir)
    assert out.count("run folder:") == 1
    reference = single_process_test(run_dir, task)
    if task == "binary":
        assert metrics["test/acc"] == reference["test/acc"]  # the same count of right answers
        assert metrics["test/auroc"] == pytest.approx(reference["test/auroc"], abs=1e-6)
    else:
        assert metrics["test/mse"] == pytest.approx(reference["test/mse"], rel=1e-5)
        assert metrics["test/r2"] == pytest.approx(reference["test/r2"], abs=1e-5)
    assert metrics["test/loss"] == pytest.approx(reference["test/loss"], rel=1e-5)


@pytest.mark.slow
def test_two_nodes_through_torchrun(tmp_path):
    """Two torchrun 'machines' on this one, one process each, meeting on loopback."""
    port = str(free_port())
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=2",
        "--nproc-per-node=1",
        "--master-addr=127.0.0.1",
        f"--master-port={port}",
    ]
    nodes = [
        litlab(
            "trainer=ddp_cpu",
            "trainer.devices=1",
            "trainer.num_nodes=2",
            *SHORT,
            cwd=tmp_path,
            command=[*torchrun, f"--node-rank={rank}", "-m", "litlab", "train"],
        )
        for rank in (0, 1)
    ]
    outputs = [finish(node) for node in nodes]
    run_dir = only_run(tmp_path / "runs")
    metrics = assert_written_once(run_dir)
    assert "run folder:" in outputs[0] and "run folder:" not in outputs[1]
    assert metrics["test/acc"] == single_process_test(run_dir, "binary")["test/acc"]


def test_gpu_where_there_is_none_is_one_clear_line(make_config, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError) as info:
        prepare(make_config("trainer=gpu"))
    assert info.value.errors == [
        "trainer.accelerator=gpu (configs/trainer/gpu.yaml): this machine has no GPU that torch "
        "can use; use trainer=default (the CPU)"
    ]
    assert not (tmp_path / "runs").exists()


def test_half_precision_on_the_cpu_is_refused(make_config):
    with pytest.raises(
        ConfigError, match=r"trainer.precision=16-mixed .*needs a GPU; on the CPU use bf16-mixed"
    ):
        prepare(make_config("trainer=cpu", "trainer.precision=16-mixed"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed", "16-mixed"])
def test_gpu_run_in_each_precision(make_config, precision):
    run = prepare(make_config("trainer=gpu", f"trainer.precision={precision}", *SHORT))
    run.trainer.fit(run.module, datamodule=run.datamodule)
    assert run.module.device.type == "cuda" and run.datamodule.train[0].device.type == "cpu"
    assert torch.isfinite(run.trainer.callback_metrics["val/loss"])
