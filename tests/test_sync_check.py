"""sync_check.py: the processes' gradients and LoRA weights compared through an all-reduced fingerprint; any
difference stops training in one line that names what differs. (The check on the program as launched, with the
gradient averaging broken on purpose, is in test_distributed.py.)

Run: python -m pytest tests/test_sync_check.py -q   (two gloo processes, a few seconds)
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from clip_lora.errors import TrainingError
from clip_lora.sync_check import ReplicaSyncCheck, fingerprint, spread
from testing_utils import free_port


def _cases(rank: int, port: int, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        same = torch.tensor([1.0, -2.0, 0.0, 3.5])
        # A difference in one entry only, as small as 1e-3 relative, on one process only.
        other = same.clone()
        if rank == 1:
            other[3] *= 1.001
        outcome = {"same": spread(same), "other": spread(other)}
        for name, (gradients, weights) in {
            "agree": (same, same),
            "gradients": (other, same),
            "weights": (same, other),
        }.items():
            try:
                ReplicaSyncCheck.verify(gradients, weights, step=1, where="the first optimizer step")
                outcome[name] = None
            except TrainingError as err:
                outcome[name] = str(err)
        # Both differ: the gradients are the cause (unaveraged gradients make the weights differ next).
        try:
            ReplicaSyncCheck.verify(other, other, step=7, where="the first optimizer step")
        except TrainingError as err:
            outcome["both"] = str(err)
        # At a checkpoint, after a step whose gradients were not averaged: weights and gradients both differ.
        check = ReplicaSyncCheck()
        check._params = [same * (2.0 if rank == 1 else 1.0)]
        check._last_step_gradients = [other]
        try:
            check.verify_checkpoint(12)
        except TrainingError as err:
            outcome["checkpoint"] = str(err)
        # Only the weights differ at checkpoint-30: gradients and weights are not exchanged on the way.
        check._last_step_gradients = [same]
        try:
            check.verify_checkpoint(30)
        except TrainingError as err:
            outcome["checkpoint weights"] = str(err)
        outcome["nothing"] = spread(torch.zeros(0))  # no trainable tensor: nothing differs
        results[rank] = outcome
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_process_outcomes():
    results = mp.Manager().dict()
    # fork: the children start with torch already imported (spawn would import it again, ~12 s here)
    mp.start_processes(_cases, args=(free_port(), results), nprocs=2, join=True, start_method="fork")
    return dict(results)


def test_every_process_sees_the_same_verdict(two_process_outcomes):
    assert two_process_outcomes[0] == two_process_outcomes[1]  # all-reduced: no process goes on alone


def test_spread_is_zero_only_when_every_process_agrees(two_process_outcomes):
    outcome = two_process_outcomes[0]
    assert outcome["same"] == 0.0
    assert outcome["other"] == pytest.approx(1e-3, rel=1e-3)


def test_a_difference_stops_training_naming_what_differs(two_process_outcomes):
    outcome = two_process_outcomes[0]
    assert outcome["agree"] is None
    assert "2 processes hold different gradients at step 1" in outcome["gradients"]
    assert "not averaged across processes" in outcome["gradients"]
    assert "2 processes hold different LoRA weights at step 1" in outcome["weights"]
    assert "\n" not in outcome["gradients"] + outcome["weights"]


def test_with_gradients_and_weights_both_apart_the_gradients_are_blamed(two_process_outcomes):
    """The cause is the missing gradient averaging even where the weights have drifted too, at the first step and
    at a checkpoint (whose check compares the last step's gradients, not the weights only)."""
    outcome = two_process_outcomes[0]
    assert "2 processes hold different gradients at step 7 (the first optimizer step;" in outcome["both"]
    assert "not averaged across processes" in outcome["both"]
    assert (
        "2 processes hold different gradients at step 12 (before checkpoint-12; up to 50.0% apart)"
        in outcome["checkpoint"]
    )  # the larger spread: the weights' 2 vs 1, not the gradients' 0.1%
    assert "not averaged across processes" in outcome["checkpoint"]
    assert (
        "2 processes hold different LoRA weights at step 30 (before checkpoint-30;"
        in outcome["checkpoint weights"]
    )
    assert outcome["nothing"] == 0.0


def test_fingerprint_is_one_norm_per_tensor_and_zero_for_a_missing_gradient():
    tensors = [torch.tensor([3.0, 4.0]), None, torch.ones(2, 2)]
    assert fingerprint(tensors).tolist() == [5.0, 0.0, 2.0]
    assert spread(torch.tensor([1.0, 2.0])) == 0.0  # one process: nothing to compare
