"""DDP on CPU processes (gloo): one run folder, rank-0 writes only, exact metrics."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from conftest import descendants, free_port, kill_all

from litlab.callbacks import DivergenceCheck, RandomState, first_bad
from litlab.check import check
from litlab.config import ConfigError
from litlab.data import CirclesDataModule, DiabetesDataModule
from litlab.data.batches import TensorBatches
from litlab.model import MLP
from litlab.module import ClassifierModule, RegressorModule
from litlab.predict import evaluate_checkpoint
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


class Placement(L.Callback):
    """Where the module and the batches are while training: Lightning's teardown moves
    the module back to the CPU when fit ends, so asking after fit says nothing."""

    def __init__(self):
        self.seen: set[tuple[str, str]] = set()

    def on_train_batch_end(self, _trainer, pl_module, _outputs, batch, *_) -> None:
        self.seen.add((pl_module.device.type, batch[0].device.type))


class HostSyncs(L.Callback):
    """Counts the steps during which torch saw a host sync: CUDA's sync debug mode
    warns on each one, from a step's start to its end (our callbacks' work included)."""

    def __init__(self):
        self.synced_steps: list[int] = []
        self.catcher = None

    def on_train_batch_start(self, *_) -> None:
        self.catcher = warnings.catch_warnings(record=True)
        self.caught = self.catcher.__enter__()
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")

    def on_train_batch_end(self, trainer, *_) -> None:
        torch.cuda.set_sync_debug_mode("default")
        self.catcher.__exit__(None, None, None)
        if any("synchroniz" in str(w.message) for w in self.caught):
            self.synced_steps.append(trainer.global_step)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed", "16-mixed"])
def test_gpu_run_in_each_precision(make_config, precision):
    run = prepare(make_config("trainer=gpu", f"trainer.precision={precision}", *SHORT))
    placement = Placement()
    run.trainer.callbacks.append(placement)
    run.trainer.fit(run.module, datamodule=run.datamodule)
    assert placement.seen == {("cuda", "cuda")}
    assert run.datamodule.train[0].device.type == "cpu"  # the GPU gets a copy, once per fit
    assert torch.isfinite(run.trainer.callback_metrics["val/loss"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_steps_wait_for_the_gpu_only_at_the_checking_cadence(make_config):
    """Mini-batches (an index per batch) at 32-true: the only steps that read a number
    back from the GPU are those that log and check (every log_every_n_steps)."""
    words = ("trainer=gpu", "data.batch_size=32", "trainer.max_steps=60")
    run = prepare(
        make_config(*words, "trainer.log_every_n_steps=20", "callbacks.progress_bar=null")
    )
    syncs = HostSyncs()
    run.trainer.callbacks.append(syncs)
    run.trainer.fit(run.module, datamodule=run.datamodule)
    assert syncs.synced_steps and set(syncs.synced_steps) <= {20, 40, 60}, syncs.synced_steps


PATCHED = [sys.executable, str(ROOT / "tests" / "ddp_patched.py")]
DDP = ["trainer=ddp_cpu", "trainer.devices=2"]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.mark.slow
def test_a_loss_not_finite_on_one_rank_stops_every_rank_as_diverged(tmp_path):
    """Rank 1 alone sees a NaN loss at step 13: no rank raises while the others wait
    in the gradient all-reduce; all agree at the next check (the validation after step
    20, where a checkpoint is due) and the run ends as a single process's does."""
    process = litlab("nan_on_rank_1:13", *DDP, *SHORT, cwd=tmp_path, command=PATCHED)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 3, err[-3000:]
    assert "litlab: training diverged at step 13: the loss is nan" in err
    assert "Traceback" not in err
    run_dir = only_run(tmp_path / "runs")
    metrics = read_json(run_dir / "metrics.json")
    assert metrics["status"] == "diverged" and "at step 13: the loss is nan" in metrics["error"]
    assert metrics["last_good_checkpoint"] == "checkpoints/last.ckpt"
    saved = sorted((run_dir / "checkpoints").iterdir())
    assert run_dir / metrics["last_good_checkpoint"] in saved
    for path in saved:
        checkpoint = torch.load(path, weights_only=True)
        assert checkpoint["global_step"] == 10  # the validation before the bad step
        assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values())


def test_an_evaluation_shard_without_rows_is_one_empty_batch():
    """3 ranks, 1 row: rank 0 evaluates it; ranks 1 and 2 take one empty batch each, so
    they still join the gathering of metrics at the end."""
    x, y = torch.arange(4.0).reshape(1, 4), torch.ones(1, 1)
    shards = [list(TensorBatches((x, y), None, rank=r, world_size=3)) for r in range(3)]
    assert [len(TensorBatches((x, y), None, rank=r, world_size=3)) for r in range(3)] == [1] * 3
    assert torch.equal(shards[0][0][0], x)
    for shard in shards[1:]:
        ((xb, yb),) = shard
        assert xb.shape == (0, 4) and yb.shape == (0, 1)


@pytest.mark.slow
def test_more_ranks_than_evaluation_rows_gives_exact_metrics(tmp_path):
    """Two validation rows and two test rows on three ranks: rank 2 evaluates nothing,
    and the metrics equal one process's on the same checkpoint."""
    rows = ["data.n_samples=40", "data.val_fraction=0.05", "data.test_fraction=0.05"]
    finish(litlab("trainer=ddp_cpu", "trainer.devices=3", *rows, *SHORT, cwd=tmp_path))
    run_dir = only_run(tmp_path / "runs")
    metrics = assert_written_once(run_dir)
    reference = evaluate_checkpoint(run_dir / "checkpoints" / "best.ckpt")
    assert {key: metrics[key] for key in reference} == pytest.approx(reference, abs=1e-6)


class FakeCuda:
    """torch.cuda's generator functions over fake devices, each state a small tensor;
    a device that is not there raises IndexError, as torch's do."""

    def __init__(self, monkeypatch, states: list[torch.Tensor]):
        self.states = states
        for name, value in {
            "is_available": lambda: True,
            "device_count": lambda: len(self.states),
            "get_rng_state": lambda device=0: self.states[device],
            "get_rng_state_all": lambda: list(self.states),
            "set_rng_state": self.set,
            "set_rng_state_all": lambda states: [self.set(s, i) for i, s in enumerate(states)],
        }.items():
            monkeypatch.setattr(torch.cuda, name, value)

    def set(self, state: torch.Tensor, device: int = 0) -> None:
        if device >= len(self.states):
            raise IndexError(f"cuda:{device}: no such device")
        self.states[device] = state


def test_resuming_on_fewer_gpus_restores_those_there_are_and_says_so(monkeypatch):
    cuda = FakeCuda(monkeypatch, [torch.tensor([1]), torch.tensor([2])])
    saved = RandomState().state_dict()
    cuda.states = [torch.tensor([0])]  # resumed on a machine with one GPU
    with pytest.warns(UserWarning) as record:
        RandomState().load_state_dict(saved)
    assert [str(w.message) for w in record] == [
        "random state: 2 CUDA generators were saved, this machine has 1: restored cuda:0; "
        "draws on the GPU (dropout) will differ from an uninterrupted run's"
    ]
    assert cuda.states == [torch.tensor([1])]


@pytest.mark.slow
def test_each_ddp_rank_resumes_its_own_random_state(tmp_path):
    """Each rank draws rank + 1 numbers a step (as dropout on its own shard would), so
    their generators differ; after a resume each must go on drawing what it would have
    in a run that never stopped."""
    draws = {run: tmp_path / run for run in ("straight", "stopped", "resumed")}
    for folder in draws.values():
        folder.mkdir()
    words = [*DDP, "trainer.check_val_every_n_epoch=1"]

    def train(run: str, *more: str) -> None:
        finish(litlab(f"draws:{draws[run]}", *more, cwd=tmp_path, command=PATCHED))

    train("straight", *words, "trainer.max_epochs=6")
    runs = tmp_path / "runs" / "circles"
    before = set(runs.iterdir())
    train("stopped", *words, "trainer.max_epochs=3")
    (stopped,) = set(runs.iterdir()) - before
    train("resumed", f"resume={stopped}", "trainer.max_epochs=6")
    straight, resumed = draws["straight"], draws["resumed"]
    for rank in (0, 1):
        after = read_json(resumed / f"draws_{rank}.json")
        assert sorted(after) == ["4", "5", "6"]
        assert after == {step: read_json(straight / f"draws_{rank}.json")[step] for step in after}


def test_the_first_bad_loss_is_kept_on_the_device_as_read_on_the_cpu():
    """first_bad (the GPU's way: no value read back) keeps what the CPU's way reads."""
    losses = [0.5, 0.4, math.nan, math.inf, 0.3]
    on_device, on_cpu = None, DivergenceCheck()
    for step, loss in enumerate(losses):
        on_device = first_bad(on_device, torch.tensor(loss), step, 0.1 * step)
        on_cpu._note(torch.tensor(loss), step, 0.1 * step)
    step, value, lr = on_device.tolist()
    assert step == 2 and math.isnan(value) and lr == pytest.approx(0.2)
    torch.testing.assert_close(on_device, on_cpu.bad, equal_nan=True)
    assert first_bad(None, torch.tensor(1.0), 0, 0.1).tolist() == [-1.0, -1.0, -1.0]


def test_clipping_a_fused_optimiser_at_16_mixed_is_refused(make_config, monkeypatch):
    """Lightning cannot clip a fused optimiser under float16 scaling: refused
    in one line before training, naming the keys (the GPU is faked: only bookkeeping)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    words = ("trainer.precision=16-mixed", "trainer.gradient_clip_val=1.0")
    with pytest.raises(ConfigError) as info:
        check(make_config(*words))
    (error,) = info.value.errors
    assert error.startswith("trainer.gradient_clip_val=1.0 (the command line) with ")
    assert "optimizer.fused=true (configs/optimizer/adam.yaml)" in error
    assert "add optimizer.fused=false" in error
    check(make_config(*words, "optimizer.fused=false"))
    check(make_config("trainer.precision=bf16-mixed", "trainer.gradient_clip_val=1.0"))


def two_nodes(
    *words: str, homes: list[Path], script: list[str] | None = None, wait_for: int = 2
) -> list[str]:
    """`litlab train` (or `script`) on two torchrun 'machines', one process each, meeting
    on loopback; each starts in its own folder of `homes` (the same folder twice: a
    shared file system). Their outputs, once the first `wait_for` nodes have ended (a
    deadline only keeps a broken run from hanging the suite); no process of theirs is
    left afterwards."""
    torchrun = [
        *[sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1"],
        *["--master-addr=127.0.0.1", f"--master-port={free_port()}"],
    ]
    logs = [home.parent / f"{home.name}_{rank}.log" for rank, home in enumerate(homes)]
    nodes = []
    try:
        for rank, (home, log) in enumerate(zip(homes, logs, strict=True)):
            command = [*torchrun, f"--node-rank={rank}", *(script or ["-m", "litlab", "train"])]
            with log.open("w") as out:
                nodes.append(subprocess.Popen([*command, *words], cwd=home, stdout=out, stderr=out))
        deadline = time.monotonic() + 600
        awaited = nodes[:wait_for]
        while any(node.poll() is None for node in awaited) and time.monotonic() < deadline:
            time.sleep(0.1)
        if any(node.poll() is None for node in awaited):
            pytest.fail(f"a node still runs after 600 s: {logs[0].read_text()[-3000:]}")
    finally:
        for node in nodes:
            kill_all([*descendants(node.pid), node.pid])
    return [log.read_text() for log in logs]


TWO_NODES = ["trainer=ddp_cpu", "trainer.devices=1", "trainer.num_nodes=2", "runs_dir=runs"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """epochs -> last.ckpt of a run that was never stopped: two processes on one machine,
    which two one-process machines must equal exactly."""
    found = {}

    def last(epochs: int) -> dict[str, Any]:
        if epochs not in found:
            home = tmp_path_factory.mktemp(f"straight_{epochs}")
            words = ["trainer=ddp_cpu", "trainer.devices=2", "trainer.log_every_n_steps=5"]
            finish(litlab(*words, f"trainer.max_epochs={epochs}", cwd=home))
            found[epochs] = torch.load(only_run(home / "runs") / "checkpoints" / "last.ckpt")
        return found[epochs]

    return last


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["one shared folder", "separate folders"])
def test_two_nodes_train_stop_resume_and_finish(tmp_path, layout, straight):
    """Two torchrun 'machines' on one runs folder (a cluster's shared disk), or each in
    its own folder (node 1 cannot see node 0's run): both stop after the same step when
    rank 0 gets SIGTERM, resume= goes on, and the run ends with the weights of one never
    stopped. Validated every epoch: last.ckpt is saved by every rank's checkpoint
    callback together, at every epoch, and replaced by the resumed run."""
    shared, epochs = layout == "one shared folder", 20
    homes = [tmp_path / "a"] * 2 if shared else [tmp_path / "a", tmp_path / "b"]
    for home in homes:
        home.mkdir(exist_ok=True)
    words = [*TWO_NODES, f"trainer.max_epochs={epochs}", "trainer.log_every_n_steps=5"]
    outputs = two_nodes(f"sigterm_at:{epochs // 2}", *words, homes=homes, script=PATCHED[1:])
    run_dir = only_run(homes[0] / "runs")
    stopped = torch.load(run_dir / "checkpoints" / "last.ckpt")["global_step"]
    assert 0 < stopped < epochs  # one full-batch step an epoch
    said = f"SIGTERM: training stopped after step {stopped}, saved in {run_dir.name}"
    for output in outputs:  # both machines stopped after that step, and name rank 0's run
        assert said.replace(run_dir.name, str(run_dir.relative_to(homes[0]))) in output
    assert read_json(run_dir / "metrics.json")["status"] == "interrupted"

    resumed = two_nodes(f"resume={run_dir.relative_to(homes[0])}", homes=homes)
    assert "run folder:" in resumed[0] and "run folder:" not in resumed[1]
    metrics = assert_written_once(run_dir)
    assert metrics["status"] == "finished" and metrics["epochs"] == epochs
    if not shared:
        assert sorted(p.name for p in homes[1].iterdir()) == []  # node 1 wrote nothing
    ours, theirs = torch.load(run_dir / "checkpoints" / "last.ckpt"), straight(epochs)
    assert ours["global_step"] == theirs["global_step"] == epochs
    for key, value in theirs["state_dict"].items():
        assert torch.equal(ours["state_dict"][key], value), key


@pytest.mark.slow
def test_a_peer_that_stops_answering_ends_the_run_within_the_timeout(tmp_path):
    """Node 1 freezes (SIGSTOP) in the middle of training, its connections open, as a
    machine that hangs: rank 0 waits in the gradient all-reduce for
    trainer.strategy.timeout, not torch's 30 minutes, then stops with one line."""
    homes = [tmp_path / "a"] * 2
    homes[0].mkdir()
    timeout = ["trainer.strategy.timeout.minutes=0", "trainer.strategy.timeout.seconds=10"]
    outputs = two_nodes(
        "stall_on_rank_1:5",
        *TWO_NODES,
        "trainer.max_epochs=40",
        *timeout,
        homes=homes,
        script=PATCHED[1:],
        wait_for=1,  # node 1 stays frozen until it is killed
    )
    line = "litlab: another process of this DDP job is gone or stopped answering ("
    assert line in outputs[0] and "Timed out waiting 10000ms" in outputs[0]
    assert "Traceback" not in outputs[0].partition(line)[0]  # litlab's own line, not a trace
    run_dir = only_run(homes[0] / "runs")
    metrics = read_json(run_dir / "metrics.json")
    assert metrics["status"] == "failed" and metrics["error"].startswith(line[8:])


EXCHANGE = """
import json, os, sys
import torch.distributed as dist
from litlab.errors import ConfigError
from litlab.distributed import from_rank_zero

def read():
    if os.environ.get("BROKEN"):
        raise ConfigError(["config.yaml: cannot be read"])
    return {"read in": os.getcwd()}

try:
    value = from_rank_zero(read)
except ConfigError as exc:
    sys.exit(f"error: {exc}")
rank = int(os.environ.get("NODE_RANK", os.environ.get("SLURM_NODEID", "0")))
dist.init_process_group("gloo", rank=rank, world_size=2)  # on the store rank 0 serves
dist.barrier()
print(json.dumps(value))
"""


@pytest.mark.parametrize(
    ("launcher", "broken"),
    [
        ("lightning", False),
        pytest.param("slurm", False, marks=pytest.mark.slow),
        pytest.param("slurm", True, marks=pytest.mark.slow),
    ],
)
def test_rank_zero_reads_for_the_other_machines(tmp_path, launcher, broken):
    """Without torchrun's agent there is no store yet: rank 0 serves one, at the address
    Lightning's process group then uses, and torch's process group shares it."""
    port, env = str(free_port()), {"MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1"}
    env |= {"BROKEN": "1"} if broken else {}
    processes = []
    for machine in (0, 1):
        if launcher == "lightning":
            ranks = {"NODE_RANK": str(machine), "MASTER_PORT": port}
        else:
            ranks = {"SLURM_NODEID": str(machine), "SLURM_PROCID": str(machine)}
            ranks |= {"SLURM_NNODES": "2", "SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "1"}
            ranks |= {"SLURM_TASKS_PER_NODE": "1(x2)"}
            ranks |= {"SLURM_LOCALID": "0"}
            ranks |= {"SLURM_JOB_ID": port[-4:], "SLURM_JOB_NAME": "test", "MASTER_PORT": port}
        home = tmp_path / str(machine)
        home.mkdir()
        processes.append(
            litlab(
                "-c",
                EXCHANGE,
                cwd=home,
                command=[sys.executable],
                env={**env, **ranks, "BROKEN": env["BROKEN"] if machine == 0 and broken else ""},
            )
        )
        if broken and machine == 0:  # machine 1 comes after the error is sent: rank 0, which
            sent(port, "litlab/0/0")  # serves the store, must wait for it to read it
    outputs = [p.communicate(timeout=600) for p in processes]
    if broken:  # rank 0's error, on every machine
        for process, (_, err) in zip(processes, outputs, strict=True):
            assert process.returncode == 1 and "config.yaml: cannot be read" in err, err
        return
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
        assert json.loads(out) == {"read in": str(tmp_path / "0")}


def sent(port: str, key: str) -> None:
    """Wait until `key` is in the store served at `port` (a client of it, as a machine is)."""
    from datetime import timedelta

    from torch.distributed import TCPStore

    client = TCPStore("127.0.0.1", int(port), is_master=False, timeout=timedelta(seconds=600))
    client.wait([key])
