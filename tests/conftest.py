"""Shared fixtures: a tiny random CLIP, a generated ImageNette-layout image set, and ../shared when it exists.

Everything is built once per test session in a temporary folder, by the same `tiny_clip` module `make demo` uses.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny models gain nothing from intra-op threads; on 2 CPUs, spinning thread pools cost several-fold (measured in
# issue 6). Subprocess runs (torchrun, kill/resume) inherit the variable.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import tiny_clip  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return tiny_clip.build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def image_root(tmp_path_factory) -> Path:
    """10 ImageNette classes (WordNet folders), 20 train and 10 val images each, one hue per class."""
    return tiny_clip.make_image_folder(tmp_path_factory.mktemp("imagenette"), train_per_class=20, val_per_class=10)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED / "imagenette2-224-sample").is_dir():
        pytest.skip("../shared/data is not here (a fresh clone): real-image tests skipped")
    return SHARED


def smoke_argv(model_dir: Path, data_dir: Path, output_dir: Path, *extra: str) -> list[str]:
    """The smoke recipe pointed at the test session's tiny model and images (the same main(), other paths)."""
    return [
        str(ROOT / "recipes" / "smoke.yaml"),
        "--model_name_or_path", str(model_dir), "--data_dir", str(data_dir), "--output_dir", str(output_dir),
        "--use_cpu", "true", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="session")
def trained_run(tiny_model_dir, image_root, tmp_path_factory):
    """The session's ONE smoke training (shared by every test that needs a trained adapter), run through
    cli() with --push_to_hub to a recording fake Hub and --report_to wandb without credentials: see trained_run.py."""
    import trained_run as runner

    tmp = tmp_path_factory.mktemp("trained")
    return runner.run(smoke_argv(tiny_model_dir, image_root, tmp / "out"), tmp)


TINY_CLASSES = ["tench", "church", "parachute"]


def make_tiny_trainer(model_dir: Path, output_dir: Path, num_images: int = 24, **overrides):
    """A ClipLoraTrainer on the tiny CLIP with LoRA and a 3-class tensor dataset (no images to decode)."""
    from datasets import Dataset
    from transformers import CLIPTokenizer

    from arguments import ClipLoraTrainingArguments
    from collator import ClipClassificationCollator
    from metrics import compute_metrics
    from modeling import apply_lora, load_clip
    from trainer import ClipLoraTrainer

    model, processor = load_clip(str(model_dir))
    model = apply_lora(model, 4, 8, 0.0, ["q_proj", "k_proj", "v_proj", "out_proj"])
    torch.manual_seed(0)
    labels = [i % 3 for i in range(num_images)]
    pixels = [(torch.randn(3, 32, 32) * 0.2 + label).tolist() for label in labels]
    dataset = Dataset.from_dict({"pixel_values": pixels, "labels": labels}).with_format("torch")
    args = ClipLoraTrainingArguments(**{
        "output_dir": str(output_dir), "use_cpu": True, "num_train_epochs": 1, "per_device_train_batch_size": 8,
        "per_device_eval_batch_size": 8, "learning_rate": 1e-2, "save_strategy": "no", "eval_strategy": "no",
        "load_best_model_at_end": False, "report_to": "none", "logging_steps": 1, **overrides,
    })  # fmt: skip
    collate = ClipClassificationCollator.from_class_names(
        CLIPTokenizer.from_pretrained(model_dir), TINY_CLASSES, ["a photo of a {}."]
    )
    return ClipLoraTrainer(model=model, args=args, train_dataset=dataset, eval_dataset=dataset, data_collator=collate,
                           processing_class=processor, compute_metrics=compute_metrics, num_classes=3)  # fmt: skip
