"""Load CLIP and its processor, put LoRA on the chosen towers, load an existing adapter, count parameters.

    model, processor = load_clip("openai/clip-vit-base-patch16")
    model = apply_lora(model, r=16, alpha=32, dropout=0.1, target_modules=["q_proj", "k_proj", "v_proj", "out_proj"])

The same functions serve the real checkpoint and the tiny test model: only the path differs.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import CLIPModel, CLIPProcessor

from clip_lora import offline, sources
from clip_lora.adapters import (  # noqa: F401 - re-exported: adapters are read there, loaded here
    adapter_base_model,
    first_line,
    read_adapter_config,
)
from clip_lora.errors import ModelError  # noqa: F401 - re-exported: raised here, caught in cli

logger = logging.getLogger(__name__)

TOWER_PREFIXES = {
    "both": ("vision_model", "text_model"),
    "vision": ("vision_model",),
    "text": ("text_model",),
}


def load_clip(
    model_name_or_path: str,
    cache_dir: str | None = None,
    attn_implementation: str = "sdpa",
    source: str = "--model_name_or_path",
):
    """CLIPModel in fp32 (mixed precision is autocast's job) and its CLIPProcessor; safetensors only, no remote code.

    A local folder is loaded by its absolute path, so an adapter trained on it records a base that `predict` and
    `export` find from any working directory; a hub id stays a hub id. `source` names where the value came from
    (the flag, or the adapter that records it) in the one-line error about a local path that does not exist.
    """
    where = sources.resolve(model_name_or_path, source, error=ModelError)
    if isinstance(where, Path):
        model_name_or_path = str(where.resolve())
    offline.require_cached(model_name_or_path)  # an unreachable Hub: the HF cache, or one error line now
    try:
        model = CLIPModel.from_pretrained(
            model_name_or_path,
            cache_dir=cache_dir,
            use_safetensors=True,
            attn_implementation=attn_implementation,
            dtype=torch.float32,
        )
        processor = CLIPProcessor.from_pretrained(model_name_or_path, cache_dir=cache_dir)
    except (OSError, ValueError, ImportError) as err:  # missing/unreadable files, a config that is not CLIP's
        raise ModelError(
            f"cannot load CLIP from {model_name_or_path!r} ({first_line(err)}); pass a hub id you can reach "
            "or a folder written by save_pretrained (model.safetensors, config.json, processor files)."
        ) from None
    return model, processor


def lora_target_pattern(target_modules: list[str], towers: str) -> str:
    """A regex PEFT matches against full module names, restricting the adapted modules to the chosen towers."""
    return rf".*({'|'.join(TOWER_PREFIXES[towers])})\..*\.({'|'.join(target_modules)})$"


# The layer types PEFT's LoRA can wrap (peft.tuners.lora.model: Linear, Embedding, Conv1d/2d/3d, GPT-2's Conv1D).
LORA_LAYER_TYPES = (torch.nn.Linear, torch.nn.Embedding, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)


def check_targets(model, target_modules: list[str], towers: str) -> None:
    """Every name in target_modules must name, in the chosen towers, modules LoRA can wrap: else one ModelError line
    (never PEFT's traceback) saying whether the name is unknown, only in the other tower, or not a wrappable layer."""
    pattern = re.compile(lora_target_pattern(target_modules, towers))
    leaves: dict[str, list] = {}
    for name, module in model.named_modules():
        leaves.setdefault(name.rsplit(".", 1)[-1], []).append((name, module))
    missing = [m for m in target_modules if m not in leaves]
    if missing:
        raise ModelError(
            f"--lora_target_modules {','.join(missing)} not found in {type(model).__name__}; "
            "CLIP's attention projections are q_proj,k_proj,v_proj,out_proj (MLP: fc1,fc2)."
        )
    where = " and ".join(f"{p.removesuffix('_model')} tower" for p in TOWER_PREFIXES[towers])
    for target in target_modules:
        hits = [module for name, module in leaves[target] if pattern.fullmatch(name)]
        if not hits:
            raise ModelError(
                f"--lora_target_modules {target} matches no module of the {where} (--lora_towers {towers}); "
                "choose modules of those towers, e.g. q_proj,k_proj,v_proj,out_proj, or another --lora_towers."
            )
        unwrappable = sorted({type(m).__name__ for m in hits if not isinstance(m, LORA_LAYER_TYPES)})
        if unwrappable:
            raise ModelError(
                f"--lora_target_modules {target} names {', '.join(unwrappable)} modules, which LoRA cannot wrap "
                "(it adapts linear, embedding and convolution layers); use e.g. q_proj,k_proj,v_proj,out_proj "
                "(MLP: fc1,fc2)."
            )


def apply_lora(model, r: int, alpha: float, dropout: float, target_modules: list[str], towers: str = "both"):
    """Freeze the base model and add LoRA to `target_modules` of the chosen towers (a PeftModel)."""
    check_targets(model, target_modules, towers)
    too_big = _rank_limit(model, target_modules)
    if r > too_big:
        raise ModelError(
            f"--lora_r {r} exceeds the rank of the adapted layers ({too_big}): a bigger rank adds nothing but "
            f"memory; use at most {too_big}, e.g. 16."
        )
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        bias="none",
        target_modules=lora_target_pattern(target_modules, towers),
    )
    try:
        return get_peft_model(model, config)
    except (
        ValueError,
        TypeError,
        RuntimeError,
    ) as err:  # anything check_targets did not foresee: still one line
        raise ModelError(
            f"--lora_target_modules {','.join(target_modules)} (--lora_towers {towers}): PEFT refused them "
            f"({first_line(err)}); use e.g. q_proj,k_proj,v_proj,out_proj."
        ) from None


def _rank_limit(model, target_modules: list[str]) -> int:
    """min(in, out) over the linear layers named target_modules: the largest rank a LoRA update there can have."""
    dims = [
        min(module.in_features, module.out_features)
        for name, module in model.named_modules()
        if name.rsplit(".", 1)[-1] in target_modules and isinstance(module, torch.nn.Linear)
    ]
    return min(dims) if dims else 2**31


def load_adapter(model, adapter_name_or_path: str, is_trainable: bool = False):
    """Base model + a saved adapter: the ONE way every verb loads one. Any broken adapter (a file instead of a
    folder, missing or truncated files, invalid JSON, another PEFT type, another base model) is one ModelError line;
    pickle-only adapters are refused before anything is read."""
    config = read_adapter_config(adapter_name_or_path)
    path = Path(adapter_name_or_path).expanduser()
    if path.is_dir():
        _check_adapter_base(model, config, path)
    try:
        return PeftModel.from_pretrained(
            model,
            str(path) if path.is_dir() else adapter_name_or_path,
            is_trainable=is_trainable,
            use_safetensors=True,
        )
    except RuntimeError as err:
        if "size mismatch" in str(err):  # the adapter was trained on a differently shaped model
            raise ModelError(
                f"adapter {adapter_name_or_path} does not fit this base model ({_first_mismatch(err)}); "
                "pass the --model_name_or_path it was trained on."
            ) from None
        reason = first_line(err)
    except Exception as err:  # noqa: BLE001 - truncated safetensors, config fields PEFT rejects, modules not found
        reason = first_line(err)
    raise ModelError(
        f"cannot load adapter {adapter_name_or_path} ({reason}); re-save or re-download it, or pass the "
        "--model_name_or_path it was trained on."
    )


def _first_mismatch(err: RuntimeError) -> str:
    """The informative line of torch's multi-line load_state_dict error (the first 'size mismatch ...')."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return next((line for line in lines if "size mismatch" in line), lines[0] if lines else "")[:240]


def _check_adapter_base(model, adapter_config: dict, path: Path) -> None:
    """Warn when the adapter's recorded base differs by name from the loaded one."""
    recorded = adapter_config.get("base_model_name_or_path")
    loaded = getattr(model.config, "_name_or_path", None)
    if recorded and loaded and Path(recorded).name != Path(loaded).name:
        # Same-shaped bases (a moved folder, a fine-tuned derivative) are legitimate; shape mismatches raise below.
        logger.warning("adapter %s was trained on %r; loading it on %r", path, recorded, loaded)


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
