"""Composing configs from files and words, and the errors a user gets for bad ones."""

from __future__ import annotations

import pytest
import torch

from litlab.check import check
from litlab.config import CONFIG_DIR, SEARCH_GROUP, ConfigError, compose, groups
from litlab.errors import MissingPackage
from litlab.schema import key_errors


def errors_of(*words: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        check(compose(list(words)))
    return info.value.errors


def test_defaults_compose_the_circles_job():
    composed = compose([])
    cfg = composed.cfg
    assert composed.choices["data"] == "circles" and composed.choices["module"] == "classifier"
    assert cfg.data._target_ == "litlab.data.CirclesDataModule"
    assert cfg.optimizer._target_ == "torch.optim.Adam" and cfg.optimizer.lr == 0.01
    assert cfg.scheduler is None
    assert cfg.name is None and cfg.trainer.max_epochs == 1000


def test_group_choices_and_dotted_overrides():
    words = ["optimizer=sgd", "optimizer.lr=0.5", "scheduler=cosine", "trainer.max_epochs=300"]
    cfg = compose(words).cfg
    assert cfg.optimizer == {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.5}
    assert cfg.scheduler.total == 300  # the interpolation follows the override


def test_experiment_picks_groups_and_the_command_line_wins():
    cfg = compose(["experiment=seed", "optimizer.lr=0.1"]).cfg
    assert cfg.model.hidden == [4] and cfg.model.activation == "sigmoid"
    assert cfg.data.holdout == "fresh" and cfg.name == "seed"
    assert cfg.optimizer.lr == 0.1


def test_sources_name_the_file_or_the_command_line():
    composed = compose(["experiment=seed", "trainer.max_epochs=5"])
    assert composed.source("optimizer._target_") == "configs/optimizer/adam.yaml"
    assert composed.source("model.hidden") == "configs/experiment/seed.yaml"
    assert composed.source("trainer.max_epochs") == "the command line"


def test_group_set_to_null_switches_it_off():
    cfg = compose(["callbacks=null", "logger=none"]).cfg
    assert cfg.callbacks is None and cfg.logger is None
    assert compose(["logger=null", "~scheduler"]).cfg.logger is None


def test_a_group_switched_off_stays_off_under_an_experiment():
    """experiment=seed sets callbacks.dashboard.every_n_epochs: Hydra would bring back a
    callbacks node holding only that key."""
    composed = compose(["experiment=seed", "callbacks=null"])
    assert composed.cfg.callbacks is None
    assert composed.notes == [
        "callbacks=null (the command line) switches the group off: experiment=seed's "
        "callbacks.dashboard.every_n_epochs left out"
    ]
    check(composed, build=False)


@pytest.mark.parametrize(
    ("group", "option"),
    [(g, o) for g, options in groups().items() for o in options if g != SEARCH_GROUP],
)
def test_every_option_of_every_group_binds_to_its_targets(group, option):
    """Each key of each config file is an argument of the class it builds: no dead keys.
    (Search options are read by `litlab search`, and checked in test_search.py.)"""
    composed = compose([f"{group}={option}"])
    assert key_errors(composed) == []
    if composed.cfg.trainer.accelerator != "gpu" or torch.cuda.is_available():
        try:
            check(composed)  # the optimiser and schedule build too
        except MissingPackage as exc:  # an optional logger's, not installed here
            assert 'pip install -e ".[' in exc.errors[0]


def test_groups_mirror_the_config_folders():
    assert set(groups()) == {p.name for p in CONFIG_DIR.iterdir() if p.is_dir()}
    assert {"data", "model", "optimizer", "scheduler", "trainer", "experiment", "debug"} <= set(
        groups()
    )


def test_unknown_group_option_lists_the_options():
    (error,) = errors_of("optimizer=adamm")
    assert "optimizer=adamm" in error and "adam, adamw, momentum, nesterov, rmsprop, sgd" in error


def test_unknown_key_suggests_the_nearest_name():
    (error,) = errors_of("optimizer.lrr=0.1")
    assert "optimizer.lrr" in error and "did you mean optimizer.lr?" in error
    assert "the command line" in error


def test_unknown_top_level_key_suggests_the_nearest_name():
    (error,) = errors_of("sed=3")
    assert "did you mean seed?" in error


def test_wrong_type_names_key_value_and_expected_type():
    (error,) = errors_of("trainer.max_epochs=many")
    assert "trainer.max_epochs='many'" in error and "expected int >= 1 | null" in error


def test_all_errors_are_reported_at_once():
    errors = errors_of("data.batch_size=big", "model.widths=[3]", "seed=x")
    assert len(errors) == 3
    assert any("data.batch_size='big'" in e for e in errors)
    assert any("model.widths" in e and "unknown key" in e for e in errors)
    assert any("seed='x'" in e for e in errors)


def test_negative_learning_rate_is_refused_in_torchs_words():
    (error,) = errors_of("optimizer.lr=-0.1")
    assert error == (
        "optimizer (configs/optimizer/adam.yaml + the command line, torch.optim.Adam): "
        "Invalid learning rate: -0.1"
    )


def test_bad_scheduler_value_names_the_scheduler():
    (error,) = errors_of("scheduler=cosine", "scheduler.warmup=2000")
    assert error.startswith(
        "scheduler (configs/scheduler/cosine.yaml + the command line, litlab.optim.warmup_cosine)"
    )
    assert "warmup=2000, total=1000: need 0 <= warmup < total" in error


def test_a_word_without_equals_sign_is_refused():
    (error,) = errors_of("optimizer")
    assert "expected group=option or key=value" in error


def test_tilde_deletes_a_key():
    cfg = compose(["~optimizer.fused"]).cfg
    assert "fused" not in cfg.optimizer
    (error,) = errors_of("~optimizer.nothing")
    assert "there is no key optimizer.nothing to delete" in error


@pytest.mark.parametrize("target", ["3", "null"])
def test_a_target_that_is_not_a_class_name_is_named(target):
    with pytest.raises(ConfigError, match=r"model \(the command line.*\): needs a _target_"):
        check(compose([f"model._target_={target}"]), build=False)


def test_a_yaml_syntax_error_in_an_option_of_ones_own_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs" / "model").mkdir(parents=True)
    (tmp_path / "configs" / "model" / "bad.yaml").write_text("_target_: [oops\n")
    with pytest.raises(ConfigError) as info:
        compose(["model=bad"])
    (error,) = info.value.errors
    assert error.startswith(f"{tmp_path / 'configs' / 'model' / 'bad.yaml'}: cannot be read: ")
    assert "\n" not in error


def test_several_options_of_one_group_and_a_users_own_group(tmp_path, monkeypatch):
    """Hydra's selection of several options (`group=[a,b]`), each packaged under its own
    name, in a group of the user's ./configs/ (Hydra's search path, after litlab's)."""
    monkeypatch.chdir(tmp_path)
    group = tmp_path / "configs" / "extra"
    group.mkdir(parents=True)
    for name in ("a", "b"):
        (group / f"{name}.yaml").write_text(f"# @package extra.{name}\nsize: {len(name) + 1}\n")
    composed = compose(["+extra=[a,b]", "extra.b.size=7"])
    assert composed.cfg.extra == {"a": {"size": 2}, "b": {"size": 7}}
    assert composed.choices["extra"] == ["a", "b"]
    assert composed.source("extra.a.size") == "./configs/extra/a.yaml"
    assert composed.source("extra.b.size") == "the command line"


def test_an_option_of_ones_own_with_a_shipped_name_is_refused(tmp_path, monkeypatch):
    """Hydra reads litlab's configs/ first: a ./configs/model/mlp.yaml would be ignored."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs" / "model").mkdir(parents=True)
    (tmp_path / "configs" / "model" / "mlp.yaml").write_text("hidden: [2]\n")
    with pytest.raises(ConfigError) as info:
        compose([])
    assert info.value.errors == [
        "./configs/model/mlp.yaml: has the name of litlab's model=mlp, which Hydra reads "
        "first; give yours a name of its own (model/mlp_mine.yaml is model=mlp_mine)"
    ]


def test_a_value_hydras_grammar_cannot_read_is_text():
    cfg = compose(["data=csv", "data.path=~/cohort.csv", "data.sep=;"]).cfg
    assert cfg.data.path == "~/cohort.csv" and cfg.data.sep == ";"


def test_every_unknown_option_is_named_at_once():
    with pytest.raises(ConfigError) as info:
        compose(["optimizer=adamm", "model=mpl"])
    assert [e.split(":")[0] for e in info.value.errors] == [
        "optimizer=adamm (the command line)",
        "model=mpl (the command line)",
    ]
    assert info.value.errors[1].endswith("did you mean mlp?")
