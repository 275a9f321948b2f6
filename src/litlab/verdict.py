"""Who wins: the network's headline test scores against its baselines, as plain lines.
Two scores closer than the metrics can tell apart are a tie: within float32 rounding
(torchmetrics computes in float32, scikit-learn in float64), or for accuracy one test row."""

from __future__ import annotations

from typing import Any

HEADLINE = ("acc", "r2")  # the score a reader looks at first, per task
ROUNDING = 1e-6  # float32's 6e-8 relative, with what a sum over a few hundred rows adds
OVERFIT = 0.10  # the last value this far from the best, relative: the steps after it overfit
TRIVIAL = {  # baselines that ignore the inputs: the least a network must beat
    "majority": "always the most frequent training class",
    "mean": "always the training mean",
}


def verdict(metrics: dict[str, Any]) -> list[str]:
    """Per headline score, the network against its best baseline (a win, a loss or a tie),
    and a line when it does no better than a trivial baseline that is not the best.
    Cross-validation summaries (`{"mean": ...}`) are compared by their means."""
    rows = metrics.get("test_rows")
    models = list(dict.fromkeys(k.split("/")[1] for k in metrics if k.startswith("baseline/")))
    lines = []
    for name in HEADLINE:
        mine, step = _value(metrics.get(f"test/{name}")), row_step(name, rows)
        scores = {m: _value(metrics.get(f"baseline/{m}/{name}")) for m in models}
        scores = {m: v for m, v in scores.items() if v is not None}
        if mine is None or not scores:
            continue
        best = max(scores, key=scores.get)
        theirs, (winner, why) = scores[best], outcome(mine, scores[best], step, rows)
        if winner == "tie":
            shown = f"{mine:.4f} for the network, {theirs:.4f} for {_named(best)}"
            lines.append(f"a tie: test/{name} {shown} ({why})")
        elif winner == "network":
            shown = f"{mine:.4f} against {_named(best)}'s {theirs:.4f} (by {mine - theirs:.4f})"
            lines.append(f"the network wins: test/{name} {shown}")
        else:
            shown = f"{theirs:.4f} against the network's {mine:.4f} (by {theirs - mine:.4f})"
            lines.append(f"the baseline wins: {_named(best)} test/{name} {shown}")
        for trivial in (m for m in TRIVIAL if m in scores and m != best):
            if outcome(mine, scores[trivial], step)[0] != "network":
                lines.append(
                    f"the network does no better than {_named(trivial)}: test/{name} "
                    f"{mine:.4f} against {scores[trivial]:.4f}"
                )
    if lines and any(isinstance(v, dict) for v in metrics.values()):
        lines = [f"{line} (means over {metrics.get('folds', 'the')} folds)" for line in lines]
    return lines


def overfitting(metrics: dict[str, Any]) -> list[str]:
    """A line when the monitored value ended more than OVERFIT worse than its best, naming
    the best's step, which the test used."""
    lines = []
    for key, best in metrics.items():
        final = metrics.get(f"final_{key.removeprefix('best_')}")
        if not key.startswith("best_") or not isinstance(best, float) or final is None:
            continue
        rise = abs(final - best) / abs(best) if best else 0.0
        if rise > OVERFIT:
            lines.append(
                f"{key.removeprefix('best_')} was best at step {metrics.get('best_step')} "
                f"({best:.4f}) and ended {rise:.0%} worse at step {metrics.get('steps')} "
                f"({final:.4f}): the steps after the best overfit; the test used "
                f"{metrics.get('best_checkpoint', 'the best')}, from the best step"
            )
    return lines


def row_step(name: str, rows: Any) -> float:
    """What one of `rows` test rows is worth in the score `name`: 1/rows of accuracy; 0 for
    a score one row does not move by a fixed amount (R2), or no count."""
    return 1 / rows if name == "acc" and isinstance(rows, int) and rows > 0 else 0.0


def outcome(mine: float, theirs: float, step: float, rows: Any = None) -> tuple[str, str]:
    """Who is ahead, "network" (`mine`) or "baseline" (`theirs`), or "tie" and why; `step`
    is the score of one of `rows` test rows (0: none)."""
    gap = abs(mine - theirs)
    if gap <= ROUNDING * max(1.0, abs(mine), abs(theirs)):
        return "tie", "equal within float32 rounding"
    if gap <= step + ROUNDING:
        return "tie", f"at most one of the {rows} test rows apart"
    return ("network" if mine > theirs else "baseline"), ""


def _named(model: str) -> str:
    return f"{model} ({TRIVIAL[model]})" if model in TRIVIAL else model


def _value(value: Any) -> float | None:
    if isinstance(value, dict):  # a cross-validation summary
        value = value.get("mean")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
