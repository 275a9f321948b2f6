"""Who wins: the network's headline test scores against its baselines, as plain lines for
the end of a run or a cross-validation. Two scores closer than the metrics can tell apart
are a tie, not a win "by 0.0000": within float32 rounding (torchmetrics computes in
float32, scikit-learn in float64), and for accuracy within one test row."""

from __future__ import annotations

from typing import Any

HEADLINE = ("acc", "r2")  # the score a reader looks at first, per task
# float32 has 24 bits of mantissa: 6e-8 relative; the sum over a few hundred rows adds more
ROUNDING = 1e-6
TRIVIAL = {  # baselines that ignore the inputs: the least a network must beat
    "majority": "always the most frequent training class",
    "mean": "always the training mean",
}


def verdict(metrics: dict[str, Any]) -> list[str]:
    """One line per headline score: the network against its best baseline (a win, a loss
    or a tie), and a second when it does not beat a trivial baseline that is not the best.
    Values may be cross-validation summaries (`{"mean": ...}`): their means are compared."""
    rows = metrics.get("test_rows")
    models = list(dict.fromkeys(k.split("/")[1] for k in metrics if k.startswith("baseline/")))
    lines = []
    for name in HEADLINE:
        mine = _value(metrics.get(f"test/{name}"))
        scores = {m: _value(metrics.get(f"baseline/{m}/{name}")) for m in models}
        scores = {m: v for m, v in scores.items() if v is not None}
        if mine is None or not scores:
            continue
        step = row_step(name, rows)
        best = max(scores, key=scores.get)
        lines.append(_compare(name, mine, best, scores[best], step, rows))
        for trivial in (m for m in TRIVIAL if m in scores and m != best):
            if outcome(mine, scores[trivial], step)[0] != "network":
                lines.append(
                    f"the network does no better than {_named(trivial)}: test/{name} "
                    f"{mine:.4f} against {scores[trivial]:.4f}"
                )
    if lines and any(isinstance(v, dict) for v in metrics.values()):
        lines = [f"{line} (means over {metrics.get('folds', 'the')} folds)" for line in lines]
    return lines


OVERFIT = 0.10  # the last value this far from the best, relative: the steps after it overfit


def overfitting(metrics: dict[str, Any]) -> list[str]:
    """A line when the monitored value ended more than OVERFIT worse than its best (its
    direction follows: the best is the better end), naming the best's step and saying
    that the test used it."""
    lines = []
    for key, best in metrics.items():
        name = key.removeprefix("best_")
        final = metrics.get(f"final_{name}")
        if not key.startswith("best_") or not isinstance(best, float) or final is None:
            continue
        rise = abs(final - best) / abs(best) if best else 0.0
        if rise > OVERFIT:
            lines.append(
                f"{name} was best at step {metrics.get('best_step')} ({best:.4f}) and ended "
                f"{rise:.0%} worse at step {metrics.get('steps')} ({final:.4f}): the steps after "
                f"the best overfit; the test used {metrics.get('best_checkpoint', 'the best')}, "
                "from the best step"
            )
    return lines


def _compare(name: str, mine: float, model: str, theirs: float, step: float, rows: Any) -> str:
    winner, why = outcome(mine, theirs, step, rows)
    if winner == "tie":
        shown = f"{mine:.4f} for the network, {theirs:.4f} for {_named(model)}"
        return f"a tie: test/{name} {shown} ({why})"
    if winner == "network":
        return (
            f"the network wins: test/{name} {mine:.4f} against {_named(model)}'s {theirs:.4f} "
            f"(by {mine - theirs:.4f})"
        )
    return (
        f"the baseline wins: {_named(model)} test/{name} {theirs:.4f} against the network's "
        f"{mine:.4f} (by {theirs - mine:.4f})"
    )


def row_step(name: str, rows: Any) -> float:
    """What one of `rows` test rows is worth in the headline score `name`: 1/rows of
    accuracy; 0 for a score one row does not move by a fixed amount (R2), or no count."""
    return 1 / rows if name == "acc" and isinstance(rows, int) and rows > 0 else 0.0


def outcome(mine: float, theirs: float, step: float, rows: Any = None) -> tuple[str, str]:
    """Who is ahead, "network" (`mine`) or "baseline" (`theirs`), or "tie", and for a tie
    why; `step` is the score of one test row (0: none), out of `rows`."""
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
