"""What a saved LoRA adapter is, read without torch or peft: its adapter_config.json and the base model it records.

    config = read_adapter_config("runs/demo")          # a dict, or one ModelError line saying what is wrong
    base = adapter_base_model("runs/demo")             # its base_model_name_or_path, or None

A local folder must hold adapter_config.json (valid JSON, a LoRA config) and adapter_model.safetensors; a path that
is a file, or a local-looking path that does not exist (clip_lora.sources), is refused. A Hub id is read through
PEFT (imported only then). `modeling.load_adapter` and every verb's argument check go through here.
"""

from __future__ import annotations

import json
from pathlib import Path

from clip_lora import artifacts, sources
from clip_lora.errors import ModelError


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:240]


def _local_config(path: Path) -> dict:
    if path.is_file():
        raise ModelError(
            f"--adapter_name_or_path {path} is a file; pass the folder that holds {artifacts.ADAPTER_CONFIG} and "
            f"{artifacts.ADAPTER_WEIGHTS} (a training run's output_dir)."
        )
    if not (path / artifacts.ADAPTER_CONFIG).is_file():
        raise ModelError(
            f"{path} has no adapter_config.json; pass the folder a training run wrote its adapter to."
        )
    if not (path / artifacts.ADAPTER_WEIGHTS).is_file():
        raise ModelError(
            f"{path} has no adapter_model.safetensors (pickle .bin adapters are refused: they can run code); "
            "re-save it with safetensors."
        )
    try:
        return json.loads((path / artifacts.ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelError(
            f"{path / artifacts.ADAPTER_CONFIG} is not valid JSON ({first_line(err)}); re-save the adapter."
        ) from None


def _hub_config(adapter_id: str) -> dict:
    from peft import PeftConfig

    from clip_lora import offline

    # An unreachable Hub: the adapter comes from the HF cache, or this is one line.
    offline.require_cached(adapter_id, artifacts.ADAPTER_CONFIG)
    try:
        return PeftConfig.from_pretrained(adapter_id).to_dict()
    except Exception as err:  # noqa: BLE001 - offline, missing repo, bad config: all mean "cannot use it"
        raise ModelError(
            f"adapter {adapter_id} is neither a local folder nor a readable hub adapter "
            f"({first_line(err)}); pass a run's output_dir or a hub id you can reach."
        ) from None


def read_adapter_config(adapter_name_or_path: str, local_only: bool = False) -> dict | None:
    """The adapter's adapter_config.json as a dict, or one ModelError line saying what is wrong with the adapter.
    local_only: a Hub id is not fetched (None): the argument check before torch is imported."""
    where = sources.resolve(adapter_name_or_path, "--adapter_name_or_path", error=ModelError)
    if isinstance(where, Path):
        config = _local_config(where)
    elif local_only:
        return None
    else:
        config = _hub_config(where)
    if not isinstance(config, dict):
        raise ModelError(f"adapter {adapter_name_or_path}: adapter_config.json must hold a JSON object.")
    peft_type = str(config.get("peft_type", "")).rsplit(".", 1)[-1]
    if peft_type != "LORA":
        raise ModelError(
            f"adapter {adapter_name_or_path} has peft_type {config.get('peft_type')!r}; this project loads LoRA "
            "adapters only (peft_type LORA)."
        )
    return config


def adapter_base_model(adapter_name_or_path: str) -> str | None:
    """The base model an adapter records in its adapter_config.json; a broken adapter is a ModelError line."""
    return read_adapter_config(adapter_name_or_path).get("base_model_name_or_path") or None


def base_model_for(adapter_name_or_path: str, model_name_or_path: str | None) -> tuple[str, str]:
    """(base model, where it came from) for a verb whose --model_name_or_path defaults to the adapter's base: the
    flag when given, else the base the adapter records; an adapter recording none is refused (no silent default)."""
    if model_name_or_path:
        return model_name_or_path, "--model_name_or_path"
    base = adapter_base_model(adapter_name_or_path)
    if not base:
        raise ModelError(
            f"adapter {adapter_name_or_path} records no base model (base_model_name_or_path in "
            f"{artifacts.ADAPTER_CONFIG}); pass the one it was trained on with --model_name_or_path."
        )
    return base, f"the base model recorded by adapter {adapter_name_or_path}"
