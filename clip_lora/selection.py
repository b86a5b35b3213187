"""Which dev evaluation is the best: the selection metric first, then a tie-breaker that carries information.

    rule = SelectionRule.of("accuracy", greater_is_better=True)       # ties broken by the lower dev loss
    rule.better({"eval_accuracy": 1.0, "eval_loss": 0.09}, {"eval_accuracy": 1.0, "eval_loss": 0.36})   # True
    rule.best(evaluations)                                             # index of the best of a list, or None

At 99%+ the dev accuracy saturates (on ImageNette's ~473 dev images one image is 0.21 pp) and several epochs tie.
Trainer keeps the first of a tie (`Trainer._determine_best_metric` replaces its best only on a strictly better
value): the least-trained of the tied adapters, for no reason. Here a tie on the metric goes to the better dev loss,
which keeps moving when accuracy no longer does and rewards the margin by which the tied adapters are right; with
`--metric_for_best_model loss` it goes to the higher dev accuracy. A tie of both keeps the earlier evaluation. The
dev split is the only one ever ranked: val is evaluated once, after selection.

One rule for everything that selects or states a selection: `ClipLoraTrainer._determine_best_metric` (so Trainer's
best checkpoint, `load_best_model_at_end` and checkpoint rotation follow it) and the model card's sentence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def _name(metric: str) -> str:
    return metric.removeprefix("eval_")


@dataclass(frozen=True)
class SelectionRule:
    metric: str  # without the eval_ prefix: accuracy, macro_f1, loss
    greater_is_better: bool
    tie_breaker: str  # loss when the metric is not the loss itself, else accuracy
    tie_greater_is_better: bool

    @classmethod
    def of(cls, metric: str | None, greater_is_better: bool | None = None) -> SelectionRule:
        """The rule for --metric_for_best_model (default accuracy) and --greater_is_better (default: not a loss)."""
        metric = _name(metric or "accuracy")
        greater = greater_is_better if greater_is_better is not None else not metric.endswith("loss")
        tie = "accuracy" if metric == "loss" else "loss"
        return cls(metric, bool(greater), tie, tie == "accuracy")

    @classmethod
    def from_config(cls, config: dict) -> SelectionRule:
        """The rule a run used, from its run_config.json."""
        return cls.of(config.get("metric_for_best_model"), config.get("greater_is_better"))

    def value(self, evaluation: dict, metric: str, prefix: str = "eval") -> float | None:
        found = evaluation.get(f"{prefix}_{metric}")
        return None if found is None or math.isnan(found) else float(found)

    def better(self, candidate: dict, best: dict | None, prefix: str = "eval") -> bool:
        """True when `candidate` (an evaluation's metrics, e.g. {"eval_accuracy": .., "eval_loss": ..}) should
        replace `best` (None: there is none yet). A missing or NaN value never wins."""
        new = self.value(candidate, self.metric, prefix)
        if new is None:
            return False
        old = None if best is None else self.value(best, self.metric, prefix)
        if old is None or new != old:
            return old is None or (new > old if self.greater_is_better else new < old)
        new_tie, old_tie = (self.value(e, self.tie_breaker, prefix) for e in (candidate, best))
        if new_tie is None or old_tie is None:
            return False  # nothing to break the tie with: the earlier evaluation stays
        return new_tie > old_tie if self.tie_greater_is_better else new_tie < old_tie

    def best(self, evaluations: list[dict], prefix: str = "eval") -> int | None:
        """Index of the evaluation this rule keeps, scanning in order as Trainer does (None: none has the metric)."""
        kept = None
        for index, evaluation in enumerate(evaluations):
            if self.better(evaluation, None if kept is None else evaluations[kept], prefix):
                kept = index
        return kept

    def describe_tie_breaker(self) -> str:
        """'the lowest dev loss' / 'the highest dev accuracy'."""
        return f"the {'highest' if self.tie_greater_is_better else 'lowest'} dev {self.tie_breaker}"


def evaluations(log_history: list[dict], metric: str) -> list[dict]:
    """Every dev evaluation in a trainer state's log history that reports `metric`, in order."""
    key = f"eval_{_name(metric)}"
    return [entry for entry in log_history if key in entry and "epoch" in entry]


def kept_evaluation(log_history: list[dict], best_step: int | None, metric: str) -> dict | None:
    """The evaluation Trainer recorded as its best (the one logged at `best_global_step`), or None."""
    if best_step is None:
        return None
    return next((e for e in evaluations(log_history, metric) if e.get("step") == best_step), None)
