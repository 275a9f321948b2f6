"""Search: the space is checked like a config, trials are ordinary runs, the study resumes
after a kill, workers share it, bad trials are pruned, and the best one trains again."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from litlab.check import check as check_run
from litlab.cli import main
from litlab.config import compose
from litlab.errors import ConfigError
from litlab.search import check, counted, distribution, parse, search, storage, words_of
from litlab.train import run

# A job whose trials take about a second: few epochs, no pictures.
FAST = ["trainer.check_val_every_n_epoch=5", "callbacks.dashboard=null"]
TIMEOUT_S = 600  # generous: the machine is shared; tests wait for conditions, not for time


def space_file(tmp_path: Path, params: dict, **keys) -> str:
    """A search option of the test's own, as users write them (search=<file>.yaml)."""
    option = {
        "job": [],
        "n_trials": 4,
        "metric": "val/loss",
        "direction": "minimize",
        "sampler": "random",
        "seed": 0,
        "pruner": "none",
        "storage": None,
        "params": params,
    } | keys
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(option))
    return f"search={path}"


def study_of(folder: Path) -> optuna.Study:
    return optuna.load_study(study_name=folder.name, storage=storage(parse_folder(folder)))


def parse_folder(folder: Path):
    from litlab.search import _load_spec

    return _load_spec(folder)


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def statuses(folder: Path) -> dict[int, str]:
    found = {}
    for metrics in folder.glob("trial_*/metrics.json"):
        found[int(metrics.parent.name.removeprefix("trial_"))] = json.loads(metrics.read_text())[
            "status"
        ]
    return found


# --------------------------------------------------------------------------- the space


@pytest.mark.parametrize(
    ("node", "error"),
    [
        (
            {"type": "float", "low": 0.1, "high": 0.01},
            "low=0.1, high=0.01: expected numbers with low < high",
        ),
        (
            {"type": "float", "low": 0, "high": 1, "log": True},
            "low=0 with log: true: a log range needs low > 0",
        ),
        (
            {"type": "double", "low": 0, "high": 1},
            "type=double: choose one of: float, int (a list for choices)",
        ),
        (
            {"type": "int", "low": 1, "high": 9, "scale": 2},
            "unknown key scale; allowed: type, low, high, log, step",
        ),
        ([], "an empty list: give the values to choose from"),
    ],
)
def test_a_bad_range_is_one_line(node, error):
    from omegaconf import OmegaConf

    with pytest.raises(ConfigError) as caught:
        distribution(OmegaConf.create({"x": node}).x)
    assert caught.value.errors == [error]


def test_choices_become_words_that_compose():
    from omegaconf import OmegaConf

    dist = distribution(OmegaConf.create({"x": [[16, 16], [8]]}).x)
    assert dist.choices == ("[16,16]", "[8]")  # Optuna's choices are scalars: lists as text
    words = words_of({"optimizer": "sgd", "optimizer.lr": 0.25, "model.hidden": "[16,16]"})
    assert words == ["optimizer=sgd", "optimizer.lr=0.25", "model.hidden=[16,16]"]
    cfg = compose(words).cfg
    assert cfg.optimizer._target_ == "torch.optim.SGD" and cfg.optimizer.lr == 0.25
    assert list(cfg.model.hidden) == [16, 16]


def test_every_shipped_option_is_a_sound_space():
    for option in ("circles", "diabetes", "digits"):
        space = check(parse([f"search={option}"]))
        assert space, option


def test_every_error_of_a_space_is_reported_before_any_trial(tmp_path, capsys):
    option = space_file(
        tmp_path,
        {
            "optimizer": ["sgd", "adm"],
            "model.hiddn": [[8]],
            "optimizer.lr": {"type": "float", "low": 1.0, "high": 0.1},
        },
        pruner="medain",
        n_trail=3,
    )
    code = main(["search", option, f"runs_dir={tmp_path / 'runs'}"])
    errors = capsys.readouterr().err.splitlines()
    source = str(tmp_path / "space.yaml")
    assert code == 2
    assert (
        f"  search.n_trail ({source}): unknown key; allowed: "
        + ", ".join(
            [
                "job",
                "n_trials",
                "metric",
                "direction",
                "sampler",
                "seed",
                "pruner",
                "storage",
                "params",
            ]
        )
        in errors
    )
    assert f"  search.pruner=medain ({source}): choose one of: median, hyperband, none" in errors
    bounds = "low=1.0, high=0.1: expected numbers with low < high"
    assert f"  search.params.optimizer.lr ({source}): {bounds}" in errors
    assert not (tmp_path / "runs").exists()
    # With the bounds mended, the options and keys are checked by composing the job.
    option = space_file(tmp_path, {"optimizer": ["sgd", "adm"], "model.hiddn": [[8]]})
    assert main(["search", option, f"runs_dir={tmp_path / 'runs'}"]) == 2
    errors = capsys.readouterr().err
    assert (
        f"search.params.optimizer=adm ({source}): optimizer=adm (the command line): "
        "no such option; choose one of: adam, adamw, momentum, nesterov, rmsprop, sgd" in errors
    )
    assert f"search.params.model.hiddn=[8] ({source}): model.hiddn (the command line): " in errors
    assert "did you mean model.hidden?" in errors
    assert not (tmp_path / "runs").exists()


def test_a_search_option_is_not_part_of_a_run(make_config):
    with pytest.raises(ConfigError, match=r"search \(configs/search/circles.yaml.*litlab search"):
        check_run(make_config("search=circles"), build=False)


def test_a_ddp_trial_is_refused_in_one_line(tmp_path):
    option = space_file(tmp_path, {"optimizer": ["sgd"]})
    refused = r"trainer.strategy=DDPStrategy: a search trial runs inside"
    with pytest.raises(ConfigError, match=refused):
        check(parse([option, "trainer=ddp_cpu", f"runs_dir={tmp_path}"]))


def test_the_budget_counts_trials_once_even_when_queued_again():
    study = optuna.create_study()
    for _ in range(3):
        study.tell(study.ask(), 1.0)
    killed = study.ask()  # left running by a killed worker, then queued again
    optuna.storages.RetryHeartbeatStaleTrialCallback()(study, study.trials[killed.number])
    study.tell(killed, state=optuna.trial.TrialState.FAIL)
    assert counted(study.trials) == 3  # the waiting copy runs, the killed one is not counted
    study.tell(study.ask(), 1.0)
    assert counted(study.trials) == 4


def test_the_budget_counts_a_trial_stopped_again_and_again_once():
    """Stopped three times in a row (SIGTERM, run again): a retry of a retry. Optuna's
    retried_trial_number names only the first trial of the chain; every one was replaced."""
    from litlab.search import requeue

    study = optuna.create_study()
    study.tell(study.ask(), 1.0)
    for _ in range(3):  # trial 1, then its retries 2 and 3, each stopped while it ran
        stopped = study.ask()
        requeue(study, stopped.number)
        study.tell(stopped, state=optuna.trial.TrialState.FAIL)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL", "FAIL", "FAIL", "WAITING"]
    assert counted(study.trials) == 1  # trial 0; the waiting copy of 1 is yet to run
    study.tell(study.ask(), 1.0)  # the waiting copy, at last
    assert [t.state.name for t in study.trials][-1] == "COMPLETE"
    assert counted(study.trials) == 2


# --------------------------------------------------------------------------- searching


@pytest.mark.slow
def test_trials_are_ordinary_runs_and_the_best_trains_again(tmp_path):
    words = [
        "search=circles",
        "search.n_trials=3",
        "trainer.max_epochs=20",
        *FAST,
        f"runs_dir={tmp_path}",
    ]
    folder, rows, stopped = search(words)
    assert stopped is None and len(rows) == 3
    assert sorted(statuses(folder).values()) == ["finished"] * 3
    best = yaml.safe_load((folder / "best.yaml").read_text())
    assert best["trial"] == rows[0]["trial"]
    trial = folder / f"trial_{best['trial']}"
    stored = compose([f"resume={trial}"]).cfg  # resume= and eval read the trial's config
    assert stored.optimizer.lr == pytest.approx(best["params"]["optimizer.lr"])
    for figure in ("history.png", "importances.png", "trials.csv"):
        assert (folder / figure).is_file()
    # Trained again as an ordinary run, with the trial's seed: the trial's metric.
    _, metrics = run(compose(best["words"]))
    assert metrics["best_val/loss"] == pytest.approx(best["value"], abs=1e-6)
    assert metrics["test/acc"] == pytest.approx(
        json.loads((trial / "metrics.json").read_text())["test/acc"]
    )


@pytest.mark.slow
def test_bad_settings_are_pruned_early(tmp_path):
    option = space_file(
        tmp_path,
        {"optimizer": ["sgd"], "optimizer.lr": [1.0e-5, 0.5]},  # 1e-5 barely moves
        n_trials=8,
        pruner="median",
    )
    folder, rows, _ = search([option, "trainer.max_epochs=60", *FAST, f"runs_dir={tmp_path}"])
    pruned = [r for r in rows if r["status"] == "pruned"]
    finished = [r for r in rows if r["status"] == "finished"]
    assert pruned and finished and len(rows) == 8
    assert all("optimizer.lr=1e-05" in r["params"] for r in pruned)
    assert all(r["epochs"] < 60 for r in pruned) and all(r["epochs"] == 60 for r in finished)
    for row in pruned:
        metrics = json.loads((folder / f"trial_{row['trial']}" / "metrics.json").read_text())
        assert metrics["status"] == "pruned"


def _start(words: list[str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "litlab", "search", *words]
    return subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL)


@pytest.mark.slow
@pytest.mark.parametrize("kill", ["SIGTERM to the search", "SIGKILL to every process"])
def test_a_killed_search_resumes_to_exactly_its_budget(tmp_path, kill):
    words = [
        "search=circles",
        "search.n_trials=5",
        "trainer.max_epochs=400",
        *FAST,
        f"runs_dir={tmp_path}",
    ]
    folder = tmp_path / "searches" / "circles"
    process = _start(words)
    wait_for(lambda: list(statuses(folder).values()).count("finished") >= 2, "2 finished trials")
    if kill.startswith("SIGTERM"):
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=TIMEOUT_S) == 143
        assert "Cannot tell" not in (folder / "worker_0.log").read_text()  # told Optuna once
    else:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=TIMEOUT_S)
    before = statuses(folder)
    assert len([s for s in before.values() if s == "finished"]) < 5
    _, rows, stopped = search(words)
    assert stopped is None
    study = study_of(folder)
    done = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(done) == 5, [(t.number, t.state.name, t.user_attrs) for t in study.trials]
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    folders = {int(p.name.removeprefix("trial_")) for p in folder.glob("trial_*")}
    assert folders <= set(numbers)  # every folder is a trial of the study
    found = statuses(folder)
    assert set(found) == folders  # and says how it ended
    assert sorted(found[t.number] for t in done) == sorted(r["status"] for r in rows[:5])
    for number, status in found.items():
        if status not in ("finished", "pruned"):
            assert status == "interrupted"
            assert study.trials[number].state.name == "FAIL"


def _running_trial(folder: Path) -> tuple[int, int] | None:
    """The number of a trial that trains now and its worker's pid, once it has saved a
    checkpoint (it is mid-way: this test's trials save one at every epoch)."""
    if not (folder / "study.journal").exists():
        return None
    try:
        trials = study_of(folder).get_trials(states=(optuna.trial.TrialState.RUNNING,))
    except (KeyError, OSError):  # the study is being created
        return None
    for trial in trials:
        saved = (folder / f"trial_{trial.number}" / "checkpoints" / "last.ckpt").exists()
        if saved and "worker" in trial.user_attrs:
            return trial.number, int(trial.user_attrs["worker"].rpartition(":")[2])
    return None


@pytest.mark.slow
def test_a_worker_killed_mid_trial_is_no_clean_finish(tmp_path):
    words = [
        "search=circles",
        "search.n_trials=2",
        # 350 one-row steps an epoch, 20 epochs: the trial trains on long after it starts
        "data.batch_size=1",
        "trainer.max_epochs=20",
        "callbacks.dashboard=null",
        f"runs_dir={tmp_path}",
    ]
    folder = tmp_path / "searches" / "circles"
    command = [sys.executable, "-m", "litlab", "search", *words]
    process = subprocess.Popen(
        command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(lambda: _running_trial(folder) is not None, "a trial under way")
        number, worker = _running_trial(folder)
        os.kill(worker, signal.SIGKILL)  # as the OOM killer would
        out, err = process.communicate(timeout=TIMEOUT_S)
    finally:
        with contextlib.suppress(ProcessLookupError):  # nothing of it may outlive the test
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == 1
    assert err.splitlines()[-1] == (
        f"litlab: worker 0 was killed by SIGKILL ({folder / 'worker_0.log'}): its trial "
        f"{number} is interrupted and queued again; run the same command to go on"
    )
    assert re.search(rf"^{number}\s+interrupted\s", out, re.M), out  # in the table
    assert "0 finished, 0 pruned, 1 failed or stopped" in out
    assert statuses(folder) == {number: "interrupted"}
    study = study_of(folder)
    assert study.trials[number].state.name == "FAIL"
    (waiting,) = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert waiting.params == study.trials[number].params  # queued again, as it was


def test_a_trial_stopped_before_its_folder_was_made_is_reported_interrupted(tmp_path):
    from litlab.search import report, requeue

    spec = parse([space_file(tmp_path, {"optimizer": ["sgd"]}), f"runs_dir={tmp_path}"])
    spec.folder.mkdir(parents=True)
    study = optuna.create_study()
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)  # failed, not queued again
    stopped = study.ask()  # its worker killed, or stopped, before train() made trial_1/
    requeue(study, stopped.number)
    study.tell(stopped, state=optuna.trial.TrialState.FAIL)
    assert {r["trial"]: r["status"] for r in report(study, spec)} == {0: "fail", 1: "interrupted"}


@pytest.mark.slow
def test_two_workers_share_one_study(tmp_path):
    words = [
        "search=circles",
        "search.n_trials=4",
        "trainer.max_epochs=20",
        *FAST,
        f"runs_dir={tmp_path}",
    ]
    folder, rows, _ = search(words, jobs=2)
    study = study_of(folder)
    assert len(study.trials) == 4 and len(rows) == 4
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    assert sorted(p.name for p in folder.glob("trial_*")) == [f"trial_{n}" for n in range(4)]
    workers = {t.user_attrs["worker"] for t in study.trials}
    assert len(workers) == 4  # a fresh process for every trial


@pytest.mark.slow
def test_a_database_url_holds_the_study(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    words = [
        "search=circles",
        "search.n_trials=2",
        f"search.storage={url}",
        "trainer.max_epochs=10",
        *FAST,
        f"runs_dir={tmp_path}",
    ]
    folder, rows, _ = search(words, jobs=2)
    assert len(rows) == 2 and not (folder / "study.journal").exists()
    assert len(optuna.load_study(study_name="circles", storage=url).trials) == 2


def test_the_dashboard_serves_a_study_when_installed(tmp_path):
    pytest.importorskip("optuna_dashboard")
    from optuna_dashboard import wsgi

    journal = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.journal"))
    )
    optuna.create_study(study_name="s", storage=journal)
    assert callable(wsgi(journal))
