"""Run by tests/test_scale.py, under torchrun or as one plain process: trains the tiny trainer for a few steps and
saves (main process) the logged losses, the first step's LoRA gradients and the trained adapter to OUT.

    python -m torch.distributed.run --nproc_per_node 2 tests/scale_worker.py MODEL_DIR OUT 16x1 8x2
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import transformers
from transformers import TrainerCallback

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from clip_lora.peer_failures import release_process_group  # noqa: E402
from testing_utils import make_tiny_trainer  # noqa: E402

STEPS = 3
IMAGES = 64  # 3 steps of 32 cross an epoch boundary (the sampler reshuffles)


class FirstStepGradients(TrainerCallback):
    """The LoRA gradients just before the first optimizer step (after DDP's averaging and clipping)."""

    def __init__(self):
        self.grads = None

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if self.grads is None:
            self.grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def train(
    model_dir: Path,
    output_dir: Path,
    per_device: int,
    loss: str = "contrastive",
    num_images: int = IMAGES,
    **overrides,
) -> dict:
    """Trains STEPS steps; returns {"losses", "grad_norms", "grads", "adapter"} (the same on every process)."""
    transformers.set_seed(0)  # LoRA's A matrices are drawn when the adapter is added
    trainer = make_tiny_trainer(
        model_dir,
        output_dir,
        num_images=num_images,
        **{
            "max_steps": STEPS,
            "per_device_train_batch_size": per_device,
            "learning_rate": 1e-2,
            "num_train_epochs": 2,
            **overrides,
        },
    )
    trainer.loss_kind = loss
    probe = FirstStepGradients()
    trainer.add_callback(probe)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    adapter = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_" in n}
    return {
        "losses": [entry["loss"] for entry in logs],
        "grad_norms": [entry["grad_norm"] for entry in logs],
        "grads": probe.grads,
        "adapter": adapter,
        "world_size": trainer.args.world_size,
    }


if __name__ == "__main__":
    # CONFIG = PER_DEVICExACCUMULATION; one run per config, in the same processes, saved as {config: result}.
    torch.set_num_threads(1)
    model_dir, out, configs = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    results = {}
    for config in configs:
        per_device, accumulation = map(int, config.split("x"))
        results[config] = train(
            model_dir, out.parent / f"trainer-{config}", per_device, gradient_accumulation_steps=accumulation
        )
    if not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0:
        torch.save(results, out)
    release_process_group()  # as clip-lora's verbs do: gloo's threads must not be torn down at interpreter exit
