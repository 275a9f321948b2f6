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

import numpy as np
import optuna
import pytest
import yaml

from litlab.check import check as check_run
from litlab.cli import main
from litlab.errors import ConfigError
from litlab.rundirs import compose
from litlab.search import search
from litlab.search.space import check, distribution, parse, words_of
from litlab.search.study import counted
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
    journal = optuna.storages.journal.JournalFileBackend(str(folder / "study.journal"))
    return optuna.load_study(
        study_name=folder.name, storage=optuna.storages.JournalStorage(journal)
    )


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
            "`low <= high` must hold, but got (low=0.1, high=0.01).",
        ),
        (
            {"type": "float", "low": 0, "high": 1, "log": True},
            "`low > 0` must hold for `log=True`, but got (low=0, high=1).",
        ),
        (
            {"type": "double", "low": 0, "high": 1},
            "type=double: choose one of: float, int (a list for choices)",
        ),
        (
            {"type": "int", "low": 1, "high": 9, "scale": 2},
            "unknown key scale; allowed: type, low, high, log, step",
        ),
        ([], "The `choices` must contain one or more elements."),
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
    bounds = "`low <= high` must hold, but got (low=1.0, high=0.1)."
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
    from litlab.search.study import requeue

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
    # trial 0 is the job as it is: an ordinary run of the job gives its value
    (default,) = [row for row in rows if row["trial"] == 0]
    assert default["params"] == (
        "(default) optimizer=adam optimizer.lr=0.01 model.hidden=[16,16] model.activation=tanh"
    )
    _, plain = run(compose(words[2:]))
    assert plain["best_val/loss"] == pytest.approx(default["value"], abs=1e-6)


@pytest.mark.slow
def test_bad_settings_are_pruned_early(tmp_path):
    option = space_file(
        tmp_path,
        {"optimizer": ["sgd"], "optimizer.lr": [1.0e-5, 0.5]},  # 1e-5 barely moves
        n_trials=6,
        pruner="median",
    )
    folder, rows, _ = search([option, "trainer.max_epochs=30", *FAST, f"runs_dir={tmp_path}"])
    pruned = [r for r in rows if r["status"] == "pruned"]
    finished = [r for r in rows if r["status"] == "finished"]
    assert pruned and finished and len(rows) == 6
    assert all("optimizer.lr=1e-05" in r["params"] for r in pruned)
    assert all(r["epochs"] < 30 for r in pruned) and all(r["epochs"] == 30 for r in finished)
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
        "search.n_trials=3",
        "trainer.max_epochs=100",
        *FAST,
        f"runs_dir={tmp_path}",
    ]
    folder = tmp_path / "searches" / "circles"
    process = _start(words)
    wait_for(lambda: "finished" in statuses(folder).values(), "a finished trial")
    if kill.startswith("SIGTERM"):
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=TIMEOUT_S) == 143
        assert "Cannot tell" not in (folder / "worker_0.log").read_text()  # told Optuna once
    else:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=TIMEOUT_S)
    before = statuses(folder)
    assert len([s for s in before.values() if s == "finished"]) < 3
    _, rows, stopped = search(words)
    assert stopped is None
    study = study_of(folder)
    done = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(done) == 3, [(t.number, t.state.name, t.user_attrs) for t in study.trials]
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    folders = {int(p.name.removeprefix("trial_")) for p in folder.glob("trial_*")}
    assert folders <= set(numbers)  # every folder is a trial of the study
    found = statuses(folder)
    assert set(found) == folders  # and says how it ended
    assert sorted(found[t.number] for t in done) == sorted(r["status"] for r in rows[:3])
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
    from litlab.search.report import report
    from litlab.search.study import requeue

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
        "search.n_trials=3",  # one of the two workers' slots trains twice
        "trainer.max_epochs=20",
        *FAST,
        f"runs_dir={tmp_path}",
    ]
    folder, rows, _ = search(words, jobs=2)
    study = study_of(folder)
    assert len(study.trials) == 3 and len(rows) == 3
    assert sorted(t.number for t in study.trials) == [0, 1, 2]
    assert sorted(p.name for p in folder.glob("trial_*")) == [f"trial_{n}" for n in range(3)]
    workers = {t.user_attrs["worker"] for t in study.trials}
    assert len(workers) == 3  # a fresh process for every trial


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


# --------------------------------------------------------------------------- the report

LR = {"type": "float", "low": 1.0e-3, "high": 1.0, "log": True}


def test_a_new_study_starts_with_the_default_job_when_it_lies_in_the_space(tmp_path):
    from litlab.search.study import enqueue_default

    spec = parse([space_file(tmp_path, {"optimizer.lr": LR, "model.hidden": [[8], [16, 16]]})])
    study = optuna.create_study()
    enqueue_default(study, spec)
    (waiting,) = study.trials
    fixed = waiting.system_attrs["fixed_params"]  # Optuna's queue: the job's own values
    assert fixed == {"optimizer.lr": 0.01, "model.hidden": "[16,16]"}
    assert waiting.user_attrs == {"default": True}
    enqueue_default(study, spec)  # not twice, nor into a study that has begun
    assert len(study.trials) == 1
    outside = parse([space_file(tmp_path, {"optimizer": ["sgd"]})])
    study = optuna.create_study()
    enqueue_default(study, outside)
    assert study.trials == []  # optimizer=adam is not among the choices


def finish(study, folder: Path, lr: float, value: float, default: bool = False, **metrics):
    """A trial of learning rate `lr` told to the study, and the metrics.json its run
    would have written."""
    study.enqueue_trial({"optimizer.lr": lr}, user_attrs={"default": True} if default else {})
    trial = study.ask()  # the enqueued parameters
    trial.suggest_float("optimizer.lr", **{k: v for k, v in LR.items() if k != "type"})
    study.tell(trial, value)
    run = folder / f"trial_{trial.number}"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"status": "finished", **metrics}))


def test_the_summary_gives_test_metrics_beside_validation_and_the_default(
    tmp_path, monkeypatch, capsys
):
    """The reported case: 4 trials improved val/loss 0.6269 to 0.6242 and lost test
    accuracy 0.680 to 0.651, on a validation split of 75 rows, and nothing said so."""
    import litlab.search
    from litlab.cli import _search
    from litlab.search.report import report

    spec = parse([space_file(tmp_path, {"optimizer.lr": LR}), f"runs_dir={tmp_path}"])
    spec.folder.mkdir(parents=True)
    study = optuna.create_study()
    rows = {"val_rows": 75, "test_rows": 103, "epochs": 50}
    finish(study, spec.folder, 0.01, 0.6269, True, **{"test/acc": 0.680, "test/loss": 0.6}, **rows)
    finish(study, spec.folder, 0.3, 0.6242, **{"test/acc": 0.651, "test/loss": 0.7}, **rows)
    table = report(study, spec)
    assert [(r["trial"], r["value"], r["test/acc"]) for r in table] == [
        (1, 0.6242, 0.651),
        (0, 0.6269, 0.680),
    ]
    assert table[1]["params"] == "(default) optimizer.lr=0.01"
    best = yaml.safe_load((spec.folder / "best.yaml").read_text())
    assert best["trial"] == 1 and best["test"] == {"test/acc": 0.651, "test/loss": 0.7}
    assert best["default"] == {
        "trial": 0,
        "value": 0.6269,
        "test": {"test/acc": 0.68, "test/loss": 0.6},
    }
    assert best["notes"] == [
        "best trial 1: val/loss 0.6242, test/acc 0.6510",
        "the default (trial 0): val/loss 0.6269, test/acc 0.6800",
        "the winner on acc is worse on test than the default: test/acc 0.6510 against 0.6800; "
        "its better validation value may not last",
        "the validation split has 75 rows: the winner of 2 trials may be fitted to them; "
        "confirm it on other rows (data.folds=5) before trusting it",
        "importances.png comes from 2 finished trials: too few to trust (about 10 or more)",
    ]
    # what `litlab search` prints: the table with the test metric, then the notes
    monkeypatch.setattr(litlab.search, "search", lambda *_: (spec.folder, table, None))
    assert _search([], 1) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[1].split() == ["trial", "status", "value", "test/acc", "epochs", "params"]
    assert printed[3].split() == [
        "0",
        "finished",
        "0.6269",
        "0.6800",
        "50",
        "(default)",
        "optimizer.lr=0.01",
    ]
    assert printed[4] == f"litlab train runs_dir={tmp_path} optimizer.lr=0.3 seed=0"
    assert printed[5:10] == best["notes"]


def test_the_notes_when_the_default_wins_is_outside_the_space_or_the_split_is_large(tmp_path):
    from litlab.search.report import notes

    spec = parse([space_file(tmp_path, {"optimizer.lr": LR}), f"runs_dir={tmp_path}"])
    study, found = optuna.create_study(), {}
    for number, lr in enumerate([0.01, *np.geomspace(0.002, 0.9, 9)]):  # 10 finished
        value = 0.5 + abs(np.log(lr / 0.01))  # the default's 0.01 is best
        finish(study, spec.folder, float(lr), value, number == 0, **{"val_rows": 270})
        found[number] = {"val_rows": 270, "test/acc": 0.9}
    assert notes(study, spec, found) == [
        "best trial 0: val/loss 0.5, test/acc 0.9000",
        "the best trial is the default job: the search found nothing better",
    ]  # 270 validation rows and 10 finished trials: no caution
    narrow = {"optimizer.lr": {"type": "float", "low": 0.1, "high": 1.0}}
    outside = parse([space_file(tmp_path, narrow), f"runs_dir={tmp_path}"])
    study = optuna.create_study()
    finish(study, tmp_path / "other", 0.3, 0.6, **{"val_rows": 270})
    assert notes(study, outside, {0: {"val_rows": 270}})[1] == (
        "no trial of the default job to compare with: optimizer.lr=0.01 outside the space"
    )


def test_the_search_modules_import_one_way():
    """space <- study <- worker, report: each module imports only those before it."""
    import ast

    import litlab.search

    order = ["space", "study", "worker", "report"]
    folder = Path(litlab.search.__file__).parent
    for position, name in enumerate(order):
        tree = ast.parse((folder / f"{name}.py").read_text())
        imported = {
            node.module.removeprefix("litlab.search.")
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("litlab.search")
        }
        allowed = set(order[:position]) - ({"worker"} if name == "report" else set())
        assert imported <= allowed, (name, imported)
