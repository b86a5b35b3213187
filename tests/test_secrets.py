"""Secrets and safe loading. With HF_TOKEN and WANDB_API_KEY in the environment, a run logging to wandb (offline)
leaves neither value in any file it writes (results, saved training arguments, checkpoints, model card, predictions,
wandb's offline files) nor in its console output. Models and adapters load from safetensors only, never with
trust_remote_code; pickle-only weights are refused.

Run: python -m pytest tests/test_secrets.py -q   (shares one subprocess smoke run with tests/test_resume.py)
"""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from transformers import CLIPModel, CLIPProcessor

from clip_lora import modeling
from clip_lora.modeling import ModelError, load_adapter, load_clip
from testing_utils import FAKE_HF_TOKEN, FAKE_WANDB_KEY, ROOT, finish, start_reference


def test_no_token_in_any_output_file_or_log(tiny_model_dir, image_root, tmp_path_factory):
    # The run is tests/test_resume.py's uninterrupted reference (made here when this file runs alone):
    # HF_TOKEN and WANDB_API_KEY set, --report_to wandb in offline mode, push disabled, 3 epochs of checkpoints.
    out, wandb_dir, process = start_reference(tmp_path_factory, tiny_model_dir, image_root)
    stdout, stderr = finish(process, out)

    files = [p for root in (out, wandb_dir) for p in root.rglob("*") if p.is_file()]
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    # The run really wrote what could leak: results, saved arguments, a checkpoint, predictions, wandb files.
    assert {"all_results.json", "run_config.json", "training_args.bin", "predictions.csv"} <= names
    assert any(n.startswith("checkpoint-") and n.endswith("training_args.bin") for n in names)
    assert any(p.suffix == ".wandb" for p in wandb_dir.rglob("*")), "wandb wrote no offline run"
    leaks = [
        (p, secret_name)
        for p in files
        for secret_name, secret in (("HF_TOKEN", FAKE_HF_TOKEN), ("WANDB_API_KEY", FAKE_WANDB_KEY))
        if secret.encode() in p.read_bytes()
    ]
    assert leaks == []
    for stream in (stdout, stderr):
        assert FAKE_HF_TOKEN.encode() not in stream and FAKE_WANDB_KEY.encode() not in stream


# ---------------------------------------------------------------- safe loading
def test_loading_asks_for_safetensors_and_never_remote_code(tiny_model_dir, tmp_path, monkeypatch):
    calls = []
    for cls in (CLIPModel, CLIPProcessor, PeftModel):
        original = cls.from_pretrained.__func__

        def record(klass, *args, _original=original, **kwargs):
            calls.append((klass.__name__, kwargs))
            return _original(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(record))
    model, _ = load_clip(str(tiny_model_dir))
    modeling.apply_lora(model, 2, 4, 0.0, ["q_proj"]).save_pretrained(tmp_path / "adapter")
    load_adapter(load_clip(str(tiny_model_dir))[0], str(tmp_path / "adapter"))
    assert [name for name, _ in calls] == [
        "CLIPModel",
        "CLIPProcessor",
        "CLIPModel",
        "CLIPProcessor",
        "PeftModel",
    ]
    assert all(not kwargs.get("trust_remote_code") for _, kwargs in calls)
    assert all(kwargs.get("use_safetensors") is True for name, kwargs in calls if name != "CLIPProcessor")


def test_no_project_module_turns_on_remote_code():
    sources = {p.name: p.read_text() for p in [*ROOT.glob("*.py"), *ROOT.glob("clip_lora/*.py")]}
    assert "modeling.py" in sources and "train_clip_lora.py" in sources
    assert [name for name, text in sources.items() if "trust_remote_code=True" in text.replace(" ", "")] == []


def test_pickle_only_model_is_refused(tiny_model_dir, tmp_path):
    folder = tmp_path / "pickled-model"
    folder.mkdir()
    for name in ("config.json", "processor_config.json", "tokenizer.json", "tokenizer_config.json"):
        if (tiny_model_dir / name).exists():
            (folder / name).write_bytes((tiny_model_dir / name).read_bytes())
    torch.save(load_clip(str(tiny_model_dir))[0].state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(ModelError, match=f"cannot load CLIP from '{folder}'"):
        load_clip(str(folder))


def test_pickle_only_adapter_is_refused_before_anything_is_read(tiny_model_dir, tmp_path, monkeypatch):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2}))
    (adapter / "adapter_model.bin").write_bytes(b"never unpickled")
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("a pickle was loaded"))
    with pytest.raises(ModelError, match="pickle .bin adapters are refused: they can run code"):
        load_adapter(load_clip(str(tiny_model_dir))[0], str(adapter))


# ---------------------------------------------------------------- --hub_token on the command line
def test_hub_token_flag_never_reaches_saved_arguments_but_the_push_uses_it(
    tiny_model_dir, tmp_path, monkeypatch
):
    from clip_lora import artifacts, hub
    from clip_lora.arguments import parse_args
    from testing_utils import FakeHubApi, make_tiny_trainer

    *_, user_args = parse_args(["--hub_token", FAKE_HF_TOKEN, "--output_dir", str(tmp_path / "out")])
    trainer_args = hub.without_trainer_push(user_args)
    assert trainer_args.hub_token is None and user_args.hub_token == FAKE_HF_TOKEN
    trainer = make_tiny_trainer(tiny_model_dir, tmp_path / "out")
    trainer.args = trainer_args
    trainer.save_model()  # writes training_args.bin, as every checkpoint does
    saved = tmp_path / "out" / "training_args.bin"
    assert saved.is_file() and FAKE_HF_TOKEN.encode() not in saved.read_bytes()
    assert torch.load(saved, weights_only=False).hub_token is None

    events = []
    monkeypatch.setattr(
        hub, "hub_api", lambda token=None: events.append(("api", token)) or FakeHubApi(events)
    )
    (tmp_path / "out" / artifacts.MODEL_CARD).write_text("card")
    hub.push_run(tmp_path / "out", "tester/x", user_args)
    assert ("api", FAKE_HF_TOKEN) in events
    assert [details["token"] for kind, details in events if kind == "create_commit"] == [FAKE_HF_TOKEN]
