"""ClipLoraTrainer's checkpoints, directly: the best checkpoint is never rotated out, whatever the save limit, the
step numbers (across digit boundaries: checkpoint-9 / -10, -99 / -100, -500 / -1000) and the ties among the
evaluations; every checkpoint left has its completion marker; a state from an older run that records the best
metric but no best step still ranks by the metric. Checked against the rotation rule written out as a loop.

Run: python -m pytest tests/test_trainer_checkpoints.py -q   (the tiny trainer; saves write the marker, the state
and a stand-in adapter file, not the model)
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.trainer_callback import ExportableState, TrainerState

from clip_lora.run_dir import CHECKPOINT_COMPLETE, checkpoint_damage
from testing_utils import make_tiny_trainer


@pytest.fixture(scope="module")
def trainer(tiny_model_dir, tmp_path_factory):
    trainer = make_tiny_trainer(
        tiny_model_dir,
        tmp_path_factory.mktemp("rotation"),
        save_strategy="steps",
        save_steps=1,
        save_only_model=True,  # no optimizer state to save: the trainer never trained here
        metric_for_best_model="accuracy",
    )

    def stand_in_adapter(output_dir=None, _internal_call=False):
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        (Path(output_dir) / "adapter_model.safetensors").write_bytes(output_dir.encode())

    trainer.save_model = stand_in_adapter
    return trainer


def fresh_state(trainer) -> TrainerState:
    exportable = [
        c for c in [*trainer.callback_handler.callbacks, trainer.control] if isinstance(c, ExportableState)
    ]
    return TrainerState(stateful_callbacks=exportable)


def reference_best(evaluations: list[tuple[float, float]]) -> int:
    """Index of the evaluation to keep: the highest accuracy, then the lowest loss, then the earliest."""
    return min(range(len(evaluations)), key=lambda i: (-evaluations[i][0], evaluations[i][1], i))


def reference_rotation(kept: list[int], newest: int, best: int, limit: int) -> list[int]:
    """save_total_limit as documented: drop the oldest checkpoints but the newest and the best, down to the limit."""
    kept = sorted([*kept, newest])
    protected = {newest, best}
    while len(kept) > max(limit, len(protected)):
        kept.remove(next(step for step in kept if step not in protected))
    return kept


saves = st.tuples(
    st.sampled_from([1, 7, 97, 497, 997]),  # where the run starts saving: just below a digit boundary
    st.lists(st.sampled_from([1, 2, 3, 90, 500]), min_size=1, max_size=7),  # steps between two saves
    st.lists(
        st.tuples(st.sampled_from([0.5, 0.75, 1.0]), st.sampled_from([0.1, 0.2, 0.3])), min_size=8, max_size=8
    ),
    st.integers(1, 4),  # save_total_limit
)


@settings(max_examples=15, deadline=None, derandomize=True, database=None)
@given(saves)
def test_the_best_checkpoint_is_never_rotated_out(trainer, case):
    start, gaps, scores, limit = case
    steps = [start]
    for gap in gaps:
        steps.append(steps[-1] + gap)
    evaluations = scores[: len(steps)]  # accuracies tie often: 2..n tied evaluations, broken by the loss
    with tempfile.TemporaryDirectory() as tmp:
        trainer.args.output_dir, trainer.args.save_total_limit = tmp, limit
        trainer.state, kept = fresh_state(trainer), []
        for i, step in enumerate(steps):
            metrics = {"eval_accuracy": evaluations[i][0], "eval_loss": evaluations[i][1]}
            trainer.state.global_step, trainer.state.epoch = step, float(i + 1)
            trainer.state.log_history.append({**metrics, "epoch": float(i + 1), "step": step})
            trainer._determine_best_metric(metrics, trial=None)
            trainer.current_flos = 1000 * step  # what the steps since the last save computed
            trainer._save_checkpoint(trainer.model, trial=None)
            # The checkpoint's state counts them (a run resumed from it reports the same total_flos).
            saved = json.loads((Path(tmp) / f"checkpoint-{step}" / "trainer_state.json").read_text())
            assert saved["total_flos"] == 1000 * sum(steps[: i + 1])
            best = steps[reference_best(evaluations[: i + 1])]
            kept = reference_rotation(kept, step, best, limit)
            on_disk = sorted(int(p.name.split("-")[1]) for p in Path(tmp).glob("checkpoint-*"))
            assert on_disk == kept, (steps[: i + 1], evaluations[: i + 1], limit)
            assert trainer.state.best_model_checkpoint == str(Path(tmp) / f"checkpoint-{best}")
            assert trainer.args.save_total_limit == limit  # lent to None during the save only
        for step in kept:
            folder = Path(tmp) / f"checkpoint-{step}"
            assert (folder / CHECKPOINT_COMPLETE).is_file() and checkpoint_damage(folder) is None


@pytest.mark.parametrize(
    ("accuracy", "replaces"),
    [(0.7, False), (0.8, False), (0.9, True)],
    ids=["worse", "tied (nothing to break the tie with)", "better"],
)
@pytest.mark.parametrize("save_strategy", ["no", "steps"])
def test_a_state_with_a_best_metric_but_no_best_step_ranks_by_the_metric(
    trainer, accuracy, replaces, save_strategy
):
    """An older run's trainer_state.json (or one that saved no checkpoint) has best_metric 0.8 and no best step:
    a resumed run must still keep a better evaluation only."""
    trainer.args.save_strategy = save_strategy
    try:
        trainer.state = fresh_state(trainer)
        trainer.state.best_metric, trainer.state.global_step = 0.8, 40
        assert trainer.state.best_global_step is None
        metrics = {"eval_accuracy": accuracy, "eval_loss": 0.01}
        trainer.state.log_history.append({**metrics, "epoch": 2.0, "step": 40})
        assert trainer._determine_best_metric(metrics, trial=None) is replaces
        assert trainer.state.best_metric == (accuracy if replaces else 0.8)
        assert trainer.state.best_global_step == (40 if replaces and save_strategy == "steps" else None)
    finally:
        trainer.args.save_strategy = "steps"


def test_a_metric_the_evaluation_lacks_is_trainers_own_error(trainer):
    trainer.state = fresh_state(trainer)
    with pytest.raises(KeyError, match="'eval_accuracy', which is not found in the evaluation metrics"):
        trainer._determine_best_metric({"eval_loss": 0.3}, trial=None)
