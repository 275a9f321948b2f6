"""Every logger option (tensorboard, csv, mlflow, wandb, none, and several at once)
trains a job, writes inside its run folder or to the tracking store it names, and gets
the pictures; what each logger wrote, read back, agrees with the others."""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port, scalars

from litlab.builders import log_interval
from litlab.cli import main
from litlab.rundirs import compose
from litlab.train import run, train

SKIP = {
    "mlflow": "mlflow is not installed: pip install -e '.[mlflow]' (.ci/run installs it)",
    "wandb": "wandb is not installed: pip install -e '.[wandb]' to run the W&B tests",
}
SHORT = [
    "trainer.max_epochs=10",
    "trainer.check_val_every_n_epoch=5",
    "callbacks.progress_bar=null",
]
JOBS = {"circles": [], "diabetes": ["experiment=diabetes"]}
FINAL = {"circles": "boundary", "diabetes": "predicted_vs_actual"}  # each job's own figure
PICTURES = {"circles": {"schedule", "data", "pictures", "final"}, "diabetes": {"schedule", "final"}}


def needs(package: str) -> None:
    if importlib.util.find_spec(package) is None:
        pytest.skip(SKIP[package])


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """One SQLite tracking store for the module's MLflow runs (making one takes seconds)."""
    return tmp_path_factory.mktemp("mlflow")


def store_words(store: Path) -> list[str]:
    return [
        f"logger.mlflow.tracking_uri=sqlite:///{store}/mlflow.db",
        f"logger.mlflow.artifact_location={store}/artifacts",
    ]


def mlflow_runs(store: Path, run_name: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{store}/mlflow.db")
    experiment = client.get_experiment_by_name("litlab")
    return client.search_runs([experiment.experiment_id], f"attributes.run_name = '{run_name}'")


@pytest.fixture
def offline_wandb(tmp_path_factory, monkeypatch):
    """W&B with no network and nothing written in the home folder; its run closed
    however the test ends."""
    needs("wandb")
    home = tmp_path_factory.mktemp("wandb-home")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(home))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    yield
    import wandb

    wandb.finish()


def run_name(run_dir: Path, tmp_path: Path) -> str:
    return str(run_dir.relative_to(tmp_path / "runs"))


@pytest.mark.slow
@pytest.mark.parametrize("job", JOBS)
@pytest.mark.parametrize("option", ["tensorboard", "csv", "mlflow", "wandb", "none"])
def test_each_option_trains_the_job_and_draws_its_plots(
    option, job, make_config, tmp_path, store, request, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # a logger that writes where it runs would show here
    words = [*SHORT, *JOBS[job], f"logger={option}"]
    if option in ("mlflow", "wandb"):
        needs(option)
    if option == "mlflow":
        words += store_words(store)
    if option == "wandb":
        request.getfixturevalue("offline_wandb")
        words += ["logger.offline=true"]
    run_dir, metrics = train(make_config(*words))
    assert metrics["status"] == "finished"
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()  # not in a logger's folder
    assert {p.name for p in (run_dir / "plots").iterdir()} >= {"loss.png", f"{FINAL[job]}.png"}
    assert [p.name for p in tmp_path.iterdir()] == ["runs"]  # nothing beside the runs
    events = list(run_dir.glob("events.out.tfevents.*"))
    assert bool(events) == (option == "tensorboard")
    assert (run_dir / "csv" / "version_0" / "metrics.csv").is_file() == (option == "csv")
    if option == "mlflow":
        (found,) = mlflow_runs(store, run_name(run_dir, tmp_path))
        assert found.data.metrics["test/loss"] == pytest.approx(metrics["test/loss"], abs=1e-6)
    if option == "wandb":
        (offline,) = (run_dir / "wandb").glob("offline-run-*")
        images = {p.parent.name for p in (offline / "files" / "media" / "images").rglob("*.png")}
        assert images == PICTURES[job]


@pytest.fixture(scope="module")
def short_run(tmp_path_factory, store) -> tuple[Path, dict, Path]:
    """One 40-epoch full-batch run logged to TensorBoard, CSV and (if installed) MLflow."""
    root = tmp_path_factory.mktemp("short")
    many = ["tensorboard", "csv"] + (["mlflow"] if importlib.util.find_spec("mlflow") else [])
    words = [f"runs_dir={root / 'runs'}", "trainer.max_epochs=40", f"logger=[{','.join(many)}]"]
    words += store_words(store) if "mlflow" in many else []
    run_dir, metrics = train(compose([*words, "callbacks.progress_bar=null"]))
    return run_dir, metrics, root


def csv_series(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every metric of the CSV logger's metrics.csv as (step, value) pairs."""
    with open(run_dir / "csv" / "version_0" / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    names = [name for name in rows[0] if name not in ("step", "epoch")]
    return {n: [(int(r["step"]), float(r[n])) for r in rows if r[n] != ""] for n in names}


@pytest.mark.slow
def test_a_40_epoch_run_has_training_curves(short_run):
    """Lightning logged every 50 steps, so a 40-step run had no train/loss at all."""
    run_dir, _, _ = short_run
    logged = scalars(run_dir)
    assert len(logged["train/loss"]) >= 20 and len(logged["lr-Adam"]) >= 20
    assert len(logged["val/loss"]) >= 20
    assert logged["train/loss"][-1][0] == 39  # the last step is logged (0-based steps)


@pytest.mark.slow
def test_tensorboard_and_the_csv_file_agree(short_run):
    run_dir, metrics, _ = short_run
    events, table = scalars(run_dir), csv_series(run_dir)
    assert set(table) <= set(events) | {"epoch"}
    for name in ("train/loss", "val/loss", "lr-Adam", "test/acc", "test/loss"):
        assert [s for s, _ in table[name]] == [s for s, _ in events[name]][: len(table[name])]
        for (_, a), (_, b) in zip(table[name], events[name], strict=False):
            assert a == pytest.approx(b, abs=1e-6), name
    for name in ("test/acc", "test/auroc", "test/f1", "test/loss"):
        assert table[name][-1][1] == pytest.approx(metrics[name], abs=1e-6)


@pytest.mark.slow
def test_the_mlflow_store_holds_the_run_as_tensorboard_does(short_run, store):
    needs("mlflow")
    from mlflow import MlflowClient

    run_dir, metrics, root = short_run
    (found,) = mlflow_runs(store, str(run_dir.relative_to(root / "runs")))
    client, run_id = MlflowClient(f"sqlite:///{store}/mlflow.db"), found.info.run_id
    events = scalars(run_dir)
    for name in ("train/loss", "val/loss", "lr-Adam", "test/acc", "test/loss"):
        history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, name))
        logged = sorted(dict(events[name]).items())  # TensorBoard's step 0 for lr: MLflow's too
        assert [s for s, _ in history] == [s for s, _ in logged], name
        for (_, a), (_, b) in zip(history, logged, strict=True):
            assert a == pytest.approx(b, abs=1e-6), name
    for name in ("test/acc", "test/auroc", "test/f1", "test/loss", "val/loss"):
        assert name in found.data.metrics
    assert found.data.metrics["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)
    params = found.data.params
    assert params["choice/optimizer"] == "adam" and params["optimizer.lr"] == "0.01"
    assert float(params["baseline/svc/acc"]) == pytest.approx(metrics["baseline/svc/acc"])
    artifacts = [a.path for a in client.list_artifacts(run_id)]
    assert "config.yaml" in artifacts
    for tag, steps in [("final/loss", [40]), ("data/train", [0]), ("pictures/boundary", [4, 40])]:
        files = [a.path for a in client.list_artifacts(run_id, tag)]
        for step in steps:
            assert f"{tag}/step_{step:06d}.png" in files
    assert found.info.status == "FINISHED"


@pytest.mark.slow
def test_the_mlflow_ui_shows_the_run(short_run, store):
    """`make mlflow-ui`'s server over the store the runs used, read back over its API."""
    needs("mlflow")
    if importlib.util.find_spec("flask") is None:
        pytest.skip("the MLflow UI is not installed: pip install -e '.[mlflow-ui]'")
    run_dir, _, root = short_run
    url = f"http://127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri"]
    command += [f"sqlite:///{store}/mlflow.db", "--host", "127.0.0.1"]
    command += ["--port", url.rsplit(":", 1)[1], "--workers", "1"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        body = json.dumps({"experiment_ids": ["1"]}).encode()
        request = urllib.request.Request(
            f"{url}/api/2.0/mlflow/runs/search", body, {"Content-Type": "application/json"}
        )
        answer = None
        for _ in range(240):  # the server starts in a few seconds; at most two minutes
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    answer = json.loads(response.read())
                break
            except OSError:
                time.sleep(0.5)
        assert answer is not None, "the MLflow UI never answered"
        names = [r["info"]["run_name"] for r in answer["runs"]]
        assert str(run_dir.relative_to(root / "runs")) in names
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.usefixtures("offline_wandb")
def test_two_wandb_runs_in_one_process_are_two_runs(make_config):
    """Lightning's WandbLogger reuses a W&B run still open in the process: a
    cross-validation's second fold logged into the first's."""
    needs("wandb")
    words = [*SHORT, "logger=wandb", "logger.offline=true", "callbacks.dashboard=null"]
    first, _ = train(make_config(*words))
    second, _ = train(make_config(*words))
    assert len(list((first / "wandb").glob("offline-run-*"))) == 1
    assert len(list((second / "wandb").glob("offline-run-*"))) == 1


@pytest.mark.slow
@pytest.mark.usefixtures("offline_wandb")
def test_a_wandb_run_resumes_in_a_w_and_b_run_of_its_own(make_config):
    """wandb-core links its log into its run's folder, and resume= refused a run folder
    that held a link."""
    needs("wandb")
    words = [*SHORT, "logger=wandb", "logger.offline=true", "callbacks.dashboard=null"]
    run_dir, _ = run(make_config(*words))
    links = [p.relative_to(run_dir).parts[:2] for p in run_dir.rglob("*") if p.is_symlink()]
    assert links and all(part[0] == "wandb" and len(part) == 2 for part in links)
    _, metrics = run(compose([f"resume={run_dir}", "trainer.max_epochs=20"]))
    assert metrics["status"] == "finished" and metrics["epochs"] == 20
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 2


@pytest.mark.parametrize("option", ["mlflow", "wandb"])
def test_a_logger_without_its_package_says_how_to_install_it(option, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, option, None)  # as if not installed: find_spec is None
    assert main(["train", f"logger={option}", f"runs_dir={tmp_path / 'runs'}"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"litlab: logger.{option} (configs/logger/{option}.yaml) needs the {option} package, "
        f'not installed here: pip install -e ".[{option}]"'
    ]
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_resumed_run_keeps_the_csv_rows_it_had(make_config):
    """Lightning's CSV logger deletes a metrics.csv in its folder: a resumed run writes
    the next version beside it."""
    words = ["logger=csv", "trainer.check_val_every_n_epoch=5", "callbacks.dashboard=null"]
    run_dir, _ = run(make_config(*words, "trainer.max_epochs=10"))
    run(compose([f"resume={run_dir}", "trainer.max_epochs=20"]))
    first = run_dir / "csv" / "version_0" / "metrics.csv"
    second = run_dir / "csv" / "version_1" / "metrics.csv"
    steps = [
        [int(r["step"]) for r in csv.DictReader(f.open()) if r["train/loss"]]
        for f in (first, second)
    ]
    assert steps == [list(range(10)), list(range(10, 20))]  # every step: a 10-step run


def test_the_logging_interval_scales_with_the_run():
    def interval(epochs, steps_per_epoch=1, max_steps=-1):
        return log_interval(epochs, max_steps, steps_per_epoch)

    assert [interval(n) for n in (1000, 999, 100, 40, 30, 5)] == [50, 49, 5, 2, 1, 1]
    assert interval(1000, 16) == 50 and interval(10, 8) == 4  # mini-batches: steps count
    assert interval(None, 8, max_steps=200) == 10 and interval(1000, 1, max_steps=100) == 5
    assert interval(None, 8) == 50  # no set length: Lightning's default


def test_the_logging_interval_is_stored_and_a_set_one_kept(make_config):
    from litlab.rundirs import release_run_dir
    from litlab.train import prepare

    for words, interval in ([], 2), (["trainer.log_every_n_steps=7"], 7):
        job = prepare(make_config("trainer.max_epochs=40", *words))
        release_run_dir(job.dir)
        assert job.trainer.log_every_n_steps == interval
        assert f"log_every_n_steps: {interval}\n" in (job.dir / "config.yaml").read_text()


def test_an_options_keys_without_its_name_when_picked_alone():
    composed = compose(["logger=mlflow", "logger.tracking_uri=sqlite:///x.db", "runs_dir=r"])
    assert composed.cfg.logger.mlflow.tracking_uri == "sqlite:///x.db"
    assert composed.source("logger.mlflow.tracking_uri") == "the command line"
    assert composed.cfg.logger.mlflow.artifact_location == "r/mlflow-artifacts"
    cfg = compose(["logger=wandb", "logger.offline=true", "logger.project=mine"]).cfg
    assert cfg.logger.wandb.offline is True and cfg.logger.wandb.project == "mine"
    dropped = compose(["logger=mlflow", "~logger.artifact_location"]).cfg.logger.mlflow
    assert "artifact_location" not in dropped
    assert compose(["logger.default_hp_metric=true"]).cfg.logger.tensorboard.default_hp_metric


def test_several_loggers_are_a_mapping_and_their_keys_name_the_option():
    from litlab.check import check
    from litlab.config import ConfigError

    cfg = compose(["logger=[tensorboard,csv]"]).cfg
    assert list(cfg.logger) == ["tensorboard", "csv"]
    assert cfg.logger.csv._target_ == "lightning.pytorch.loggers.CSVLogger"
    with pytest.raises(ConfigError) as info:
        check(compose(["logger=[tensorboard,mlflow]", "logger.tracking_uri=x"]), build=False)
    assert info.value.errors == [
        "logger.tracking_uri (the command line): logger=[tensorboard,mlflow] picks several; "
        "name the one: logger.tensorboard.tracking_uri or logger.mlflow.tracking_uri"
    ]


@pytest.mark.slow
def test_the_test_metrics_are_logged_once_and_ranked_in_hparams(short_run):
    """TensorBoardLogger.log_hyperparams(metrics=...) would log each test metric a second
    time at the same step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    run_dir, _, _ = short_run
    events = EventAccumulator(str(run_dir), {"scalars": 0}, purge_orphaned_data=False)
    events.Reload()
    for tag in events.Tags()["scalars"]:
        if tag == "epoch":  # Lightning adds it to each of a step's train and val calls
            continue
        steps = [event.step for event in events.Scalars(tag)]
        assert len(steps) == len(set(steps)), f"{tag}: a step logged twice"
    content = events.PluginTagToContent("hparams")["_hparams_/experiment"]
    experiment = HParamsPluginData.FromString(content).experiment
    ranked = {info.name.tag for info in experiment.metric_infos}
    assert {"test/acc", "test/auroc", "test/f1", "test/loss"} <= ranked
    assert "choice/optimizer" in {info.name for info in experiment.hparam_infos}
