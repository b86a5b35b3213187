"""The speed/memory switches work: gradient checkpointing trains the PEFT model, SDPA attention is what runs.

(No timings here: benchmarks live in bench/, tests only check behaviour.)
"""

from __future__ import annotations

import torch
from datasets import Dataset
from transformers import CLIPTokenizer

from clip_lora.arguments import ClipLoraTrainingArguments, default_loader_workers, parse_args
from clip_lora.modeling import apply_lora, load_clip
from clip_lora.trainer import ClipLoraTrainer
from collator import ClipClassificationCollator

CLASSES = ["tench", "church", "parachute"]


def _lora_model(model_dir):
    model, _ = load_clip(str(model_dir))
    return apply_lora(model, 4, 8, 0.0, ["q_proj", "k_proj", "v_proj", "out_proj"])


def _batch(model_dir):
    torch.manual_seed(0)
    labels = [i % 3 for i in range(24)]  # 3 steps: LoRA's A matrices get gradients once B has left zero
    tokenizer = CLIPTokenizer.from_pretrained(model_dir)
    collate = ClipClassificationCollator.from_class_names(tokenizer, CLASSES, ["a photo of a {}."])
    pixels = [(torch.randn(3, 32, 32) * 0.2 + label).tolist() for label in labels]
    return Dataset.from_dict({"pixel_values": pixels, "labels": labels}).with_format("torch"), collate


def _grads(model, trainer, batch):
    model.zero_grad()
    trainer.compute_loss(model, batch).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_gradient_checkpointing_trains_every_lora_tensor_with_the_same_gradients(tiny_model_dir, tmp_path):
    dataset, collate = _batch(tiny_model_dir)
    model = _lora_model(tiny_model_dir)
    args = ClipLoraTrainingArguments(
        output_dir=str(tmp_path),
        use_cpu=True,
        num_train_epochs=1,
        per_device_train_batch_size=8,
        learning_rate=1e-2,
        save_strategy="no",
        eval_strategy="no",
        load_best_model_at_end=False,
        report_to="none",
        gradient_checkpointing=True,
    )
    trainer = ClipLoraTrainer(
        model=model, args=args, train_dataset=dataset, data_collator=collate, num_classes=3
    )
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train()
    clip = model.base_model.model
    assert clip.vision_model.encoder.gradient_checkpointing and clip.text_model.encoder.gradient_checkpointing
    for name, p in model.named_parameters():
        assert (not torch.equal(before[name], p.detach())) == ("lora_" in name), name

    # Recomputed activations give the gradients of a plain backward pass, in every LoRA tensor of both towers.
    model.train()
    batch = collate([dataset[i] for i in range(8)])
    checkpointed = _grads(model, trainer, batch)
    clip.gradient_checkpointing_disable()
    assert not clip.vision_model.encoder.gradient_checkpointing
    plain = _grads(model, trainer, batch)
    assert any("vision_model" in n for n in plain) and any("text_model" in n for n in plain)
    for name, grad in plain.items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(checkpointed[name], grad, rtol=1e-4, atol=1e-6)


def test_sdpa_is_the_attention_that_runs(tiny_model_dir, monkeypatch):
    model, _ = load_clip(str(tiny_model_dir))  # the project's default attn_implementation
    assert model.config._attn_implementation == "sdpa"
    calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(
        torch.nn.functional, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or sdpa(*a, **k)
    )
    with torch.no_grad():
        model.get_image_features(pixel_values=torch.zeros(1, 3, 32, 32))
    assert len(calls) == model.config.vision_config.num_hidden_layers


def test_loader_defaults_follow_the_device(tmp_path, monkeypatch):
    *_, args = parse_args(["--output_dir", str(tmp_path), "--use_cpu", "true"])
    assert (
        args.dataloader_num_workers == 0 and not args.dataloader_persistent_workers
    )  # CPU: the model is the wall
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert default_loader_workers(gpu=True) == 8 and default_loader_workers(gpu=False) == 0
    *_, args = parse_args(["--output_dir", str(tmp_path), "--dataloader_num_workers", "3"])
    assert args.dataloader_num_workers == 3
    assert args.dataloader_persistent_workers  # one loader per dataset, its workers alive across passes
