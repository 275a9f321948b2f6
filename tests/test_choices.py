"""What the command line picked is what runs, runs are named by what differs, Hydra's
habits work (`-m`, `--cfg job`), and Hydra's words that litlab spells otherwise get one
line that says what to type here."""

from __future__ import annotations

import pytest

from litlab.cli import main
from litlab.rundirs import claim_run_dir, run_label, run_root


def test_an_experiment_does_not_override_the_optimiser_the_command_line_picked(make_config):
    sgd = make_config("experiment=diabetes", "optimizer=sgd")
    assert sgd.cfg.optimizer._target_ == "torch.optim.SGD"
    assert sgd.cfg.optimizer.lr == 0.5  # sgd.yaml's own rate
    assert "weight_decay" not in sgd.cfg.optimizer  # meant for AdamW
    assert sgd.notes == [
        "optimizer=sgd (the command line) keeps its own values: experiment=diabetes's "
        "optimizer.weight_decay (meant for optimizer=adamw) left out; set them on the "
        "command line to keep them"
    ]
    # the same option as the experiment's keeps the experiment's values
    assert make_config("experiment=diabetes", "optimizer=adamw").cfg.optimizer.weight_decay == 0.1


@pytest.mark.parametrize("option, lr", [("sgd", 0.5), ("momentum", 0.1)])
def test_experiment_seed_trains_the_picked_optimiser_at_its_own_rate(make_config, option, lr):
    assert make_config("experiment=seed", f"optimizer={option}").cfg.optimizer.lr == lr


def test_command_line_values_still_win_over_everything(make_config):
    cfg = make_config("experiment=diabetes", "optimizer=sgd", "optimizer.weight_decay=0.1").cfg
    assert cfg.optimizer.weight_decay == 0.1


def test_runs_are_named_by_what_the_command_line_changed(tmp_path, make_config):
    composed = make_config("optimizer=sgd", "optimizer.lr=0.5", "seed=3")
    assert run_label(composed.words) == "optimizer=sgd_lr=0.5_seed=3"
    assert run_label(["model.hidden=[8, 8]", "data.path=~/a b/c.csv"]) == "hidden=8,8_path=c.csv"
    assert run_label(["model._target_=mine.Net", "+model.width=4"]) == "model=mine.Net_width=4"
    assert len(run_label([f"seed={'9' * 200}"])) == 60
    folder = claim_run_dir(tmp_path, "optimizer=sgd")
    assert folder.name.endswith("_optimizer=sgd") and folder.is_dir()


def test_data_options_name_the_runs_folder(make_config, tmp_path):
    assert run_root(make_config("data=csv")) == tmp_path / "runs" / "csv"
    # an experiment's name is its data's: another data option takes its own name
    composed = make_config("experiment=diabetes", "data=csv")
    assert run_root(composed) == tmp_path / "runs" / "csv"
    assert any(
        n.startswith("data=csv (the command line): runs go to runs/csv") for n in composed.notes
    )
    assert run_root(make_config("experiment=diabetes")) == tmp_path / "runs" / "diabetes"


def test_hparams_name_the_chosen_options(make_config):
    from litlab.dashboard import hyperparameters

    shown = hyperparameters(make_config("optimizer=momentum"))
    assert (
        shown["choice/optimizer"] == "momentum" and shown["optimizer._target_"] == "torch.optim.SGD"
    )
    assert not any(k.startswith(("trainer.accelerator", "callbacks.", "logger.")) for k in shown)
    assert shown["tags"] == "" and hyperparameters(make_config("tags=[adam,cpu]"))["tags"] == (
        "adam,cpu"
    )


@pytest.mark.parametrize(
    "words, says",
    [
        (["train", "optimizer=sgd,adam"], "add -m (`litlab train -m optimizer=sgd,adam`"),
        (["train", "seed=1,2"], "or `litlab sweep seed=1,2`"),
        (["train", "hydra.run.dir=out"], "set runs_dir= and name="),
        (["train", "ckpt_path=last.ckpt"], "resume=<run folder>"),
        (["train", "hydra.job.chdir=true"], "litlab composes configs with Hydra but runs"),
        (["train", "--cfg", "hydra"], "--cfg hydra: litlab prints the job's config: --cfg job"),
    ],
)
def test_hydra_habits_get_one_line_and_exit_2(capsys, words, says):
    assert main(words) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and says in err


def test_cfg_job_prints_the_composed_config_and_trains_nothing(tmp_path, capsys):
    assert main(["train", "--cfg", "job", "experiment=seed", f"runs_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "name: seed" in out and "hidden:\n  - 4" in out
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_multirun_runs_the_grid_as_a_sweep_does(tmp_path):
    words = ["trainer.max_epochs=2", "callbacks.dashboard=null", "logger=none"]
    assert main(["train", "-m", "seed=1,2", *words, f"runs_dir={tmp_path}"]) == 0
    (sweep,) = (tmp_path / "sweeps").iterdir()
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["seed=1", "seed=2"]


def test_a_plus_word_adds_or_sets_a_key(make_config):
    cfg = make_config("+optimizer.weight_decay=0.1", "++optimizer.lr=0.2").cfg
    assert cfg.optimizer.weight_decay == 0.1 and cfg.optimizer.lr == 0.2


def test_a_yaml_list_is_one_value_not_a_sweep(tmp_path):
    assert main(["train", "--cfg", "job", "model.hidden=[8,8]", f"runs_dir={tmp_path}"]) == 0
