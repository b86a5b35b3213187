"""TrainingArguments with this project's defaults: the seed experiment's schedule, the batch given as a global batch
(per-device batch and accumulation derived, clip_lora/batching.py), loader settings measured in bench/.

    ClipLoraTrainingArguments(output_dir="runs/x")       # every Trainer flag still works

One of the four argument dataclasses of clip_lora/arguments.py (which parses them all).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments

from clip_lora import progress, validation
from clip_lora.batching import launched_processes, resolve_batch


@dataclass
class ClipLoraTrainingArguments(TrainingArguments):
    """TrainingArguments with the seed experiment's defaults; every Trainer flag still works."""

    output_dir: str | None = field(
        default="runs/clip-lora-imagenette", metadata={"help": "Where everything is written."}
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Start over in an output_dir that already holds a finished run."}
    )
    do_train: bool = field(default=True, metadata={"help": "Fine-tune (false: evaluate only)."})
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={
            "help": "A checkpoint-<step> folder to resume training from (its save complete, its files intact, its "
            "run's flags the same), or true: the newest in --output_dir. Not given: an interrupted run in "
            "--output_dir resumes from its newest intact checkpoint."
        },
    )
    do_eval: bool = field(
        default=True, metadata={"help": "Evaluate on dev each epoch and on val at the end."}
    )
    num_train_epochs: float = field(default=10.0, metadata={"help": "Epochs.", "min": 0})
    global_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Images per optimizer step over all processes and accumulation steps (default: 32, the seed's, "
            "unless --per_device_train_batch_size is given); the per-device batch or the accumulation is derived.",
            "min": 1,
            "example": 32,
        },
    )
    per_device_train_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Training batch per process (default: derived from --global_batch_size).",
            "min": 1,
            "example": 32,
        },
    )
    gradient_accumulation_steps: int | None = field(
        default=None,
        metadata={
            "help": "Micro-batches per optimizer step (default: derived, 1 unless memory needs more).",
            "min": 1,
            "example": 1,
        },
    )
    per_device_eval_batch_size: int = field(
        default=256,
        metadata={
            "help": "Evaluation batch per device: no gradients, so large (each batch costs the host the same "
            "~1,200 dispatched operations, whatever its size); it changes no number.",
            "min": 1,
        },
    )
    learning_rate: float = field(  # 0 is allowed: an exact no-op training, used to check equivalences
        default=1e-4, metadata={"help": "AdamW learning rate for the LoRA weights.", "min": 0}
    )
    eval_strategy: str = field(default="epoch", metadata={"help": "Evaluate on dev every epoch."})
    save_strategy: str = field(default="epoch", metadata={"help": "Checkpoint every epoch (resumable)."})
    save_total_limit: int | None = field(
        default=2, metadata={"help": "Keep the best and the last checkpoint.", "min": 1}
    )
    load_best_model_at_end: bool = field(
        default=True, metadata={"help": "Restore the epoch with the best dev metric."}
    )
    metric_for_best_model: str | None = field(
        default="accuracy", metadata={"help": "Dev metric used for selection."}
    )
    greater_is_better: bool | None = field(
        default=None,
        metadata={
            "help": "Higher metric_for_best_model is better (default: false for a loss, true otherwise)."
        },
    )
    logging_steps: float = field(
        default=10, metadata={"help": "Log the training loss every N steps.", "gt": 0}
    )
    remove_unused_columns: bool = field(
        default=False,
        metadata={
            "help": "Keep 'image' for the on-the-fly transform (must stay false).",
            "choices": (False,),
        },
    )
    label_names: list[str] | None = field(
        default_factory=lambda: ["labels"],
        metadata={"help": "Label key (the collator's: labels).", "choices": ("labels",)},
    )
    seed: int = field(
        default=42,
        metadata={"help": "Seed for init, shuffling and the dev split.", **validation.SEED_RULE},
    )
    # Data loader defaults measured in bench/: see bench/RESULTS.md.
    dataloader_num_workers: int | None = field(
        default=None,
        metadata={
            "help": "Loader processes; default: min(8, CPUs per GPU) on a GPU, 0 on CPU (model-bound).",
            "min": 0,
            "max": validation.MAX_LOADER_WORKERS,
        },
    )
    logging_nan_inf_filter: bool = field(
        default=False,
        metadata={
            "help": "true: Trainer reads the loss back from the device at every step to hide a NaN/inf from the "
            "logs. Left false, a non-finite loss stops the run instead (clip_lora/health.py)."
        },
    )
    dataloader_persistent_workers: bool | None = field(
        default=None,
        metadata={
            "help": "Keep loader workers alive across epochs and evaluation passes (one loader per dataset); "
            "default: on whenever loader workers run."
        },
    )

    def __post_init__(self):
        validation.check_fields(self, validation.TRAINING_RULES)  # before TrainingArguments acts on any value
        processes = launched_processes()
        if processes > 1 and not torch.cuda.is_available():
            # torchrun on a machine without GPUs: CPU DDP (gloo), announced in the run's batch line. Without use_cpu,
            # Trainer would run N independent copies (no DDP) that all write the same output files.
            self.use_cpu = True
        self.per_device_train_batch_size, self.gradient_accumulation_steps, self.global_batch_size = (
            resolve_batch(
                self.global_batch_size,
                self.per_device_train_batch_size,
                self.gradient_accumulation_steps,
                processes,
            )
        )
        if self.dataloader_num_workers is None:
            self.dataloader_num_workers = default_loader_workers(
                torch.cuda.is_available() and not self.use_cpu
            )
        if self.dataloader_persistent_workers is None:  # torch refuses persistent workers without workers
            self.dataloader_persistent_workers = self.dataloader_num_workers > 0
        # Pinned memory only helps copies to a GPU; without one, every loader warns about it.
        if self.use_cpu or not torch.cuda.is_available():
            self.dataloader_pin_memory = False
        # A bar redrawn into a log file is noise: off unless on a terminal (Trainer then prints log lines).
        if self.disable_tqdm is None:
            self.disable_tqdm = not progress.interactive()
        super().__post_init__()


def default_loader_workers(gpu: bool) -> int:
    """A GPU waits on JPEG decode/resize (or cached reads) unless workers run beside it; on CPU the model is the wall
    (bench/RESULTS.md: P1_step_ratio with 0 workers), and workers would only take cores from the matmuls."""
    return min(8, max(1, (os.cpu_count() or 1) // max(1, torch.cuda.device_count()))) if gpu else 0  # per GPU
