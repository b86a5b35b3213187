"""Loading from the Hub without a network: one quick probe, then the HF cache or a one-line error.

    offline.before_hub_load("openai/clip-vit-base-patch16")   # before any from_pretrained of a Hub id

Without this, an unreachable Hub costs a minute per run: huggingface_hub retries a failed metadata request with
backoff (1+2+4+8+8 s, `_get_metadata_or_catch_error(..., retry_on_errors=True)` in file_download.py) for every
file, and transformers asks for adapter_config.json before config.json. Here the first Hub load of a process makes
ONE request to the endpoint (PROBE_TIMEOUT_S); if it fails, the process switches huggingface_hub, transformers, peft
and datasets to offline mode (HF_HUB_OFFLINE): a model in the HF cache then loads from there, and one that is not
fails at once with `not_cached_message`. When the Hub answers, or offline mode is already on, nothing changes.
"""

from __future__ import annotations

import logging
import os

from huggingface_hub import constants

from clip_lora import sources

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 3.0
_NOT_PROBED = object()
_unreachable: object | str | None = (
    _NOT_PROBED  # None: reachable (or not probed because offline); str: why not
)


def is_hub_id(name: str | None) -> bool:
    return sources.is_hub_id(name)  # the one "local path or Hub id" decision


def _probe() -> str | None:
    """None when the endpoint answers with any HTTP status; else why it could not be reached (one attempt)."""
    from huggingface_hub.utils import get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=PROBE_TIMEOUT_S)
    except Exception as err:  # noqa: BLE001 - refused, DNS, timeout, TLS, proxy: all mean "no Hub here"
        text = " ".join(str(err).split())
        return f"{type(err).__name__}: {text}"[:160] if text else type(err).__name__
    return None


def go_offline() -> None:
    """Offline mode for the rest of the process, in every library that reads it (each keeps its own copy)."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # peft reads the environment
    constants.HF_HUB_OFFLINE = True  # huggingface_hub and transformers (is_offline_mode)
    try:
        import datasets.config

        datasets.config.HF_HUB_OFFLINE = True
    except ImportError:  # pragma: no cover - datasets is a dependency; only a broken install lacks it
        pass


def unreachable_reason() -> str | None:
    """Why the Hub cannot be reached in this process (probed once), or None."""
    global _unreachable
    if _unreachable is _NOT_PROBED:
        _unreachable = None if constants.HF_HUB_OFFLINE else _probe()
        if _unreachable:
            go_offline()
    return _unreachable  # type: ignore[return-value]


def before_hub_load(name_or_path: str | None) -> None:
    """Call before loading `name_or_path`: for a Hub id, probe the Hub once and go offline if it is unreachable."""
    if is_hub_id(name_or_path):
        unreachable_reason()


def not_cached_message(name: str) -> str | None:
    """The one-line reason to give when `name` could not be loaded because the Hub is unreachable; else None."""
    reason = None if _unreachable is _NOT_PROBED else _unreachable
    if not reason or not is_hub_id(name):
        return None
    return (
        f"the Hugging Face Hub ({constants.ENDPOINT}) cannot be reached ({reason}) and {name!r} is not in the HF "
        f"cache ({constants.HF_HUB_CACHE}); connect to the internet once to download it, or pass a local folder "
        "written by save_pretrained"
    )


def require_cached(name: str | None, filename: str = "config.json") -> None:
    """For a Hub id: probe (once); when the Hub is unreachable and `filename` of `name` is not cached, raise the
    one-line ModelError now, before anything else is loaded."""
    if not is_hub_id(name):
        return
    before_hub_load(name)
    message = not_cached_message(name)
    if message:
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(name, filename), str):
            from clip_lora.errors import ModelError

            raise ModelError(f"cannot load {name!r}: {message}.")
        logger.warning(
            "The Hugging Face Hub cannot be reached (%s): %s comes from the HF cache", _unreachable, name
        )
