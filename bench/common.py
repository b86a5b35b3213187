"""Shared set-up for the benchmarks: full-size JPEGs, the ViT-B/16-shaped CLIP with random weights, its tokenizer.

    from bench.common import make_jpegs, vit_b16_lora, tokenizer_and_processor

Nothing here downloads anything: the model is built from `tiny_clip.vit_b16_clip_config()`, the tokenizer is the real
CLIP one from ../shared/data/clip-tokenizer when it is there (else the tiny byte-level one), and the images are
../shared/data photos upscaled to ~500x375 (else smooth generated ones).
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))

from transformers import TrainerCallback  # noqa: E402

from clip_lora.testing_utils import IMAGENETTE_WNIDS, vit_b16_clip_config, write_tiny_tokenizer_files  # noqa: E402

FULL_SIZE = (500, 375)  # ImageNet's typical photo (ImageNette "full" is the same images)
SEED_LORA = dict(
    r=16, alpha=32, dropout=0.1, target_modules=["q_proj", "k_proj", "v_proj", "out_proj"], towers="both"
)
TEMPLATE = "a photo of a {}."


def make_jpegs(root: Path, train_per_class: int, val_per_class: int, seed: int = 0) -> tuple[Path, str]:
    """root/{train,val}/<wnid>/*.JPEG at ~500x375; returns (root, where the pixels came from)."""
    rng = np.random.default_rng(seed)
    sources = sorted((SHARED / "imagenette2-224-sample" / "train").rglob("*.JPEG"))
    origin = (
        "../shared/data/imagenette2-224-sample, upscaled (bicubic)" if sources else "generated (smooth noise)"
    )
    k = 0
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for wnid in IMAGENETTE_WNIDS:
            folder = root / split / wnid
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                if sources:
                    image = (
                        Image.open(sources[k % len(sources)]).convert("RGB").resize(FULL_SIZE, Image.BICUBIC)
                    )
                else:
                    small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
                    image = Image.fromarray(small).resize(FULL_SIZE, Image.BICUBIC)
                image.save(folder / f"{wnid}_{i:04d}.JPEG", quality=90)
                k += 1
    return root, origin


def tokenizer_and_processor(workdir: Path):
    """(CLIPTokenizer, CLIPImageProcessor with openai/clip-vit-base-patch16's settings, tokenizer origin)."""
    from transformers import CLIPImageProcessor, CLIPTokenizer

    real = SHARED / "clip-tokenizer"
    if (real / "vocab.json").is_file():
        tokenizer, origin = (
            CLIPTokenizer.from_pretrained(real),
            "real CLIP tokenizer (../shared/data/clip-tokenizer)",
        )
    else:
        write_tiny_tokenizer_files(workdir / "tokenizer")
        tokenizer, origin = CLIPTokenizer.from_pretrained(workdir / "tokenizer"), "tiny byte-level tokenizer"
    return (
        tokenizer,
        CLIPImageProcessor(),
        origin,
    )  # defaults = ViT-B/16's: 224 bicubic resize + crop, OpenAI mean/std


def vit_b16_clip(attn_implementation: str = "sdpa", tiny: bool = False, seed: int = 0):
    """CLIPModel shaped like openai/clip-vit-base-patch16 (random weights); `tiny` for dry runs."""
    import torch
    from transformers import CLIPModel

    from clip_lora.testing_utils import tiny_clip_config

    torch.manual_seed(seed)
    config = tiny_clip_config(49408, image_size=224) if tiny else vit_b16_clip_config()
    return CLIPModel._from_config(config, attn_implementation=attn_implementation)


def vit_b16_lora(tiny: bool = False):
    from clip_lora.modeling import apply_lora

    return apply_lora(vit_b16_clip(tiny=tiny), **SEED_LORA)


def splits_for(data_dir: Path, max_train: int | None = None, max_eval: int | None = None):
    from clip_lora.data import load_splits

    return load_splits(
        str(data_dir), dev_split_ratio=0.05, max_train_samples=max_train, max_eval_samples=max_eval
    )


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not ru_maxrss: after fork + exec that keeps the parent's peak."""
    hwm = _status_mb("VmHWM")
    return (
        hwm if hwm == hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )  # no /proc: the best there is


class AnonPeak:
    """with AnonPeak() as peak: ...; peak.mb: the highest RssAnon sampled every 5 ms (private memory: heap, tensors),
    which leaves out file-backed pages such as a memory-mapped Arrow cache (clean page cache the kernel can reclaim)."""

    def __enter__(self):
        self.mb, self._stop = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.mb = max(self.mb, _status_mb("RssAnon"))
            self._stop.wait(0.005)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.mb = max(self.mb, _status_mb("RssAnon"))


def _status_mb(key: str) -> float:
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024  # kB
    return float("nan")


def run_worker(*args: str, timeout: float = 300) -> dict:
    """Run bench/worker.py in a fresh process (honest peak RSS) and return the JSON it prints last."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "worker.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    if out.returncode != 0:
        raise RuntimeError(f"bench/worker.py {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


class Timer:
    """with Timer() as t: ...; t.seconds"""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def median(values) -> float:
    return statistics.median(values)


class Interleave(TrainerCallback):
    """After each Trainer step, one bare step, timed on its own: trainer_s[i] is step i's wall time (data loading
    included), bare_s[i] the bare step right after it. Alternating step by step, any change in the machine's speed
    hits both alike."""

    def __init__(self, bare_step):
        self.bare_step, self.trainer_s, self.bare_s, self.last = bare_step, [], [], None

    def on_train_begin(self, args, state, control, **kwargs):
        self.last = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.trainer_s.append(time.perf_counter() - self.last)
        with Timer() as bare:
            self.bare_step()
        self.bare_s.append(bare.seconds)
        self.last = time.perf_counter()


def bare_train_step(model, batch: dict, num_classes: int, optimizer, autocast_dtype=None, max_grad_norm=None):
    """The bare loop the benches compare the project's step with: the same peft model, forward, the project's loss
    (contrastive, capped temperature), backward, optional clipping, `optimizer`, on a batch already in memory.
    Returns the step function."""
    from contextlib import nullcontext

    import torch

    from clip_lora.loss import capped_logit_scale, class_embeddings, clip_class_loss

    trainable = [p for p in model.parameters() if p.requires_grad]

    def step():
        with torch.autocast("cpu", dtype=autocast_dtype) if autocast_dtype else nullcontext():
            out = model(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                pixel_values=batch["pixel_values"],
            )
        loss, _ = clip_class_loss(
            out.image_embeds,
            class_embeddings(out.text_embeds, num_classes),
            batch["labels"],
            capped_logit_scale(model),
            "contrastive",
        )
        loss.backward()
        if max_grad_norm:
            torch.nn.utils.clip_grad_norm_(trainable, max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step
