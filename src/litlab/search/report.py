"""The report: trials.csv, the table of trials, best.yaml with the winner and its notes, figures."""

from __future__ import annotations

import contextlib
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from litlab.rundirs import compose
from litlab.search.space import Search, default_params, words_of
from litlab.search.study import metrics_of, quiet, replaced_in
from litlab.verdict import HEADLINE, outcome, row_step

DONE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
SMALL_VAL = 200  # fewer validation rows: the pick among trials may fit them
FEW_FOR_IMPORTANCES = 10  # fANOVA importances from fewer finished trials rank noise


def report(study: optuna.Study, search: Search) -> list[dict[str, Any]]:
    """Write trials.csv, best.yaml and the figures; the ended trials' rows, best first."""
    trials = study.get_trials(deepcopy=False)
    replaced = replaced_in(trials)
    found = {t.number: metrics_of(search.folder / f"trial_{t.number}") for t in trials}
    shown = [m for m in HEADLINE if any(f"test/{m}" in metrics for metrics in found.values())]
    rows = []
    for t in (t for t in trials if t.state in DONE):
        metrics, params = found[t.number], " ".join(words_of(t.params))
        # a trial stopped before its folder was made has no metrics.json to say so
        status = "interrupted" if t.number in replaced else t.state.name.lower()
        ended = metrics.get(f"best_{search.cfg.metric}")
        rows.append(
            {
                "trial": t.number,
                "status": metrics.get("status") or status,
                "value": t.value if t.state == TrialState.COMPLETE else ended,
                **{f"test/{m}": metrics.get(f"test/{m}") for m in shown},
                "epochs": metrics.get("epochs"),
                "params": f"(default) {params}" if t.user_attrs.get("default") else params,
            }
        )
    study.trials_dataframe().to_csv(search.folder / "trials.csv", index=False)
    if any(t.state == TrialState.COMPLETE for t in trials):
        _write_best(study, search, found)
        _figures(study, search)
    sign = 1 if search.cfg.direction == "minimize" else -1
    return sorted(rows, key=lambda r: (r["value"] is None, sign * (r["value"] or 0)))


def notes(study: optuna.Study, search: Search, found: dict[int, dict[str, Any]]) -> list[str]:
    """What the summary says beside the winner: its test metrics, the default's, cautions.
    `found`: each trial's metrics.json."""
    best, default, metric = study.best_trial, _default(study), search.cfg.metric
    mine = found.get(best.number, {})
    lines = [f"best trial {best.number}: {metric} {best.value:.4g}{_tests(mine)}"]
    if default is None:
        outside = default_params(search)[1]
        why = f"{', '.join(outside)} outside the space" if outside else "none has finished"
        lines.append(f"no trial of the default job to compare with: {why}")
    elif default.number == best.number:
        lines.append("the best trial is the default job: the search found nothing better")
    else:
        theirs = found.get(default.number, {})
        shown = f"{metric} {default.value:.4g}{_tests(theirs)}"
        lines.append(f"the default (trial {default.number}): {shown}")
        lines += _worse_on_test(mine, theirs)
    return lines + _cautions(study, mine)


def _cautions(study: optuna.Study, best: dict[str, Any]) -> list[str]:
    """A validation split small enough for the pick to fit it; importances from few trials."""
    trials, lines, rows = study.get_trials(deepcopy=False), [], best.get("val_rows")
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
        f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith("test/") and "loss" not in k
    ]
    return f", {', '.join(shown)}" if shown else ""


def _worse_on_test(best: dict[str, Any], default: dict[str, Any]) -> list[str]:
    """A line when the winner is worse on test than the default, beyond a tie."""
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
    """best.yaml: the winner, the words that train it again, the default's trial, the notes."""
    trial, default = study.best_trial, _default(study)
    words = [*search.job, *words_of(trial.params), f"seed={compose(search.job).cfg.seed}"]
    header = (
        f"# The best trial of search {search.name}: trial {trial.number}, "
        f"best {search.cfg.metric} {trial.value:.6g}. Train it again as an ordinary run:\n"
        f"#   litlab train {' '.join(words)}\n"
    )

    def entry(t: FrozenTrial) -> dict[str, Any]:
        tests = {k: v for k, v in found.get(t.number, {}).items() if k.startswith("test/")}
        return {"trial": t.number, "value": t.value, "test": tests}

    body = {**entry(trial), "params": trial.params, "words": words}
    body |= {"default": entry(default) if default else None, "notes": notes(study, search, found)}
    (search.folder / "best.yaml").write_text(header + yaml.safe_dump(body, sort_keys=False))


def _figures(study: optuna.Study, search: Search) -> None:
    """Optuna's history and importances plots as PNG (importances need two trials that differ)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as vis

    plots = {"history": vis.plot_optimization_history, "importances": vis.plot_param_importances}
    for name, plot in plots.items():
        with quiet(), contextlib.suppress(ValueError, RuntimeError, ZeroDivisionError):
            plot(study).figure.savefig(search.folder / f"{name}.png", bbox_inches="tight")
        plt.close("all")
