"""The report: trials.csv, the table of trials, best.yaml with the winner and its notes, figures."""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from litlab.rundirs import compose
from litlab.search.space import Search, default_params, words_of
from litlab.search.study import metrics_of, replaced_in
from litlab.verdict import HEADLINE, outcome, row_step

DONE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
# Below this many validation rows, a search's pick among trials may fit them (a 4-trial
# search on a small table improved val/loss 0.6269 to 0.6242 and lost 0.029 of test
# accuracy). From 200 rows on, one row moves accuracy by 0.005 or less.
SMALL_VAL = 200
# fANOVA importances from fewer finished trials rank noise (Optuna fits a random forest
# on them): about 10 before they are worth reading.
FEW_FOR_IMPORTANCES = 10


def report(study: optuna.Study, search: Search) -> list[dict[str, Any]]:
    """Write trials.csv (every trial), best.yaml and the figures; return the rows of the
    ended trials, best first, each with its headline test metrics."""
    trials = study.get_trials(deepcopy=False)
    replaced = replaced_in(trials)
    found = {t.number: metrics_of(search.folder / f"trial_{t.number}") for t in trials}
    shown = [m for m in HEADLINE if any(f"test/{m}" in metrics for metrics in found.values())]
    rows = [_row(t, found[t.number], shown, search, t.number in replaced) for t in trials]
    rows = [row for row, t in zip(rows, trials, strict=True) if t.state in DONE]
    study.trials_dataframe().to_csv(search.folder / "trials.csv", index=False)
    finished = sum(t.state == TrialState.COMPLETE for t in trials)
    if finished:
        _write_best(study, search, found)
        _figures(study, search, finished)
    sign = 1 if search.cfg.direction == "minimize" else -1
    return sorted(rows, key=lambda r: (r["value"] is None, sign * (r["value"] or 0)))


def _row(
    trial: FrozenTrial, metrics: dict[str, Any], shown: list[str], search: Search, replaced: bool
) -> dict[str, Any]:
    # a trial stopped before its folder was made has no metrics.json to say so
    status = metrics.get("status") or ("interrupted" if replaced else trial.state.name.lower())
    finished = trial.state == TrialState.COMPLETE
    params = " ".join(words_of(trial.params))
    return {
        "trial": trial.number,
        "status": status,
        "value": trial.value if finished else metrics.get(f"best_{search.cfg.metric}"),
        **{f"test/{m}": metrics.get(f"test/{m}") for m in shown},
        "epochs": metrics.get("epochs"),
        "params": f"(default) {params}" if trial.user_attrs.get("default") else params,
    }


def notes(study: optuna.Study, search: Search, found: dict[int, dict[str, Any]]) -> list[str]:
    """What the summary says beside the winner: its test metrics and the default's, and
    cautions. `found`: each trial's metrics.json."""
    best = study.best_trial
    mine = found.get(best.number, {})
    lines = [f"best trial {best.number}: {search.cfg.metric} {best.value:.4g}{_tests(mine)}"]
    return lines + _against_default(study, search, found) + _cautions(study, mine)


def _against_default(
    study: optuna.Study, search: Search, found: dict[int, dict[str, Any]]
) -> list[str]:
    """The default job's trial beside the winner, and whether the winner is worse on test."""
    default, best = _default(study), study.best_trial
    if default is None:
        outside = default_params(search)[1]
        why = f"{', '.join(outside)} outside the space" if outside else "none has finished"
        return [f"no trial of the default job to compare with: {why}"]
    if default.number == best.number:
        return ["the best trial is the default job: the search found nothing better"]
    theirs = found.get(default.number, {})
    shown = f"{search.cfg.metric} {default.value:.4g}{_tests(theirs)}"
    worse = _worse_on_test(found.get(best.number, {}), theirs)
    return [f"the default (trial {default.number}): {shown}", *worse]


def _cautions(study: optuna.Study, best: dict[str, Any]) -> list[str]:
    """A validation split small enough for the pick among trials to fit it, and importances
    from too few finished trials. `best`: the winner's metrics.json."""
    trials, lines = study.get_trials(deepcopy=False), []
    rows = best.get("val_rows")
    if isinstance(rows, int) and rows < SMALL_VAL:
        compared = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
        lines.append(
            f"the validation split has {rows} rows: the winner of {compared} trials "
            f"may be fitted to them; confirm it on other rows (data.folds=5) before trusting it"
        )
    finished = sum(t.state == TrialState.COMPLETE for t in trials)
    if finished < FEW_FOR_IMPORTANCES:
        lines.append(
            f"importances.png comes from {finished} finished trials: too few to trust "
            f"(about {FEW_FOR_IMPORTANCES} or more)"
        )
    return lines


def _default(study: optuna.Study) -> FrozenTrial | None:
    """The finished trial of the job as it is (`enqueue_default`), if there is one."""
    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return next((t for t in finished if t.user_attrs.get("default")), None)


def _tests(metrics: dict[str, Any]) -> str:
    shown = [
        f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith("test/") and k != "test/loss"
    ]
    return f", {', '.join(shown)}" if shown else ""


def _worse_on_test(best: dict[str, Any], default: dict[str, Any]) -> list[str]:
    """A line when the search's winner is worse on test than the default (beyond a tie)."""
    for name in HEADLINE:
        mine, theirs = best.get(f"test/{name}"), default.get(f"test/{name}")
        if not isinstance(mine, float) or not isinstance(theirs, float):
            continue
        if outcome(mine, theirs, row_step(name, best.get("test_rows")))[0] == "baseline":
            return [
                f"the winner on {name} is worse on test than the default: test/{name} "
                f"{mine:.4f} against {theirs:.4f}; its better validation value may not last"
            ]
    return []


def _write_best(study: optuna.Study, search: Search, found: dict[int, dict[str, Any]]) -> None:
    """best.yaml: the winner (its value, test metrics, parameters, the words that train
    it again), the default job's trial beside it, and the notes the summary prints."""
    trial, metric = study.best_trial, search.cfg.metric
    # the words that train the winner again as an ordinary run, with its seed
    words = [*search.job, *words_of(trial.params), f"seed={compose(search.job).cfg.seed}"]
    header = (
        f"# The best trial of search {search.name}: trial {trial.number}, "
        f"best {metric} {trial.value:.6g}. Train it again as an ordinary run:\n"
        f"#   litlab train {' '.join(words)}\n"
    )

    def entry(t: FrozenTrial) -> dict[str, Any]:
        tests = {k: v for k, v in found.get(t.number, {}).items() if k.startswith("test/")}
        return {"trial": t.number, "value": t.value, "test": tests}

    default = _default(study)
    body = {**entry(trial), "params": trial.params, "words": words}
    body |= {"default": entry(default) if default else None, "notes": notes(study, search, found)}
    (search.folder / "best.yaml").write_text(header + yaml.safe_dump(body, sort_keys=False))


def _figures(study: optuna.Study, search: Search, finished: int) -> None:
    """Optuna's optimisation history and parameter importances, as PNG in the folder
    (importances need two finished trials that differ)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as vis

    plots = {"history": vis.plot_optimization_history, "importances": vis.plot_param_importances}
    with warnings.catch_warnings(action="ignore", category=optuna.exceptions.ExperimentalWarning):
        for name, plot in plots.items():
            with contextlib.suppress(ValueError, RuntimeError, ZeroDivisionError):
                axes = plot(study)
                if name == "importances":
                    caution(axes, finished)
                axes.figure.savefig(search.folder / f"{name}.png", bbox_inches="tight")
            plt.close("all")


def caution(axes: Any, finished: int) -> None:
    """Under the importances' title, when fewer than FEW_FOR_IMPORTANCES trials finished:
    too few to trust. Optuna titles the plot on the left; a centred title would overlap."""
    if finished < FEW_FOR_IMPORTANCES:
        title = axes.get_title(loc="left")
        axes.set_title(f"{title}\nfrom {finished} finished trials: too few to trust", loc="left")
