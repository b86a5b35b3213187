"""LoRA-fine-tune CLIP on ImageNette (or any image-classification dataset), the Hugging Face way.

    accelerate launch --config_file accelerate_config.yaml train_clip_lora.py     # the seed experiment on GPUs
    python train_clip_lora.py smoke                                  # tiny offline run (see `make demo`)

Steps: zero-shot baseline on val -> LoRA training with the best epoch chosen on a dev split carved from train ->
one final evaluation of the selected adapter on val -> report, adapter, predictions -> (optional) push to the Hub.
"""

from __future__ import annotations

import logging
import sys
from contextlib import nullcontext
from pathlib import Path

if __name__ == "__main__":
    # accelerate launch / torchrun / python train_clip_lora.py: the `clip-lora train` contract. Here, before the
    # imports below: --help and a flag mistake are answered in ~0.2 s, not after torch and transformers load (~8 s);
    # `run` imports this file again as the module train_clip_lora, where this block does not run.
    from clip_lora.cli import run

    sys.exit(run("train", sys.argv[1:]))

import numpy as np
import torch
import transformers
from peft import PeftModel

from clip_lora import (
    artifacts,
    batching,
    calibration,
    card_text,
    control,
    flag_schema,
    hub,
    model_card,
    offline,
    plots,
    prompts,
    provenance,
    run_dir,
    streaming,
    tracking,
    train_help,
    wise_ft,
)
from clip_lora.arguments import build_parser, parse_args
from clip_lora.class_names import prompt_tokens, text_limit
from clip_lora.data import HubColumns, load_splits
from clip_lora.image_check import verify_splits
from clip_lora.images import make_transform
from clip_lora.lost_images import LostImages
from clip_lora.modeling import apply_lora, count_parameters, load_adapter, load_clip
from clip_lora.next_steps import next_steps
from clip_lora.placeholders import kept_ids
from clip_lora.preprocessing import prepare_splits
from clip_lora.trainer import ClipLoraTrainer
from clip_lora.verb_args import eval_argv
from collator import ClipClassificationCollator
from metrics import classification_report, compute_metrics, format_report, save_report

logger = logging.getLogger("train_clip_lora")


def resolve_output_dir(training_args, run_config: dict) -> str | None:
    """Lock the output dir; refuse a finished run, or an interrupted one made with other flags; clear it for
    --overwrite_output_dir; return the checkpoint to resume from (run_dir.py)."""
    return run_dir.prepare(training_args, run_config)


def evaluate_split(
    trainer, dataset, prefix: str, image_ids, class_names, output_dir: Path, csv_name: str | None
):
    """Predict on one split: metrics under `prefix`, and (main process only) a predictions CSV."""
    result = trainer.predict(dataset, metric_key_prefix=prefix)
    # Images that became unreadable while loading are left out of the result; the CSV names exactly the rows kept.
    ids = kept_ids(image_ids, trainer.kept_rows)
    if csv_name and trainer.is_world_process_zero():
        artifacts.write_predictions(
            output_dir / csv_name, ids, result.label_ids, result.predictions, class_names
        )
    return result


def training_devices(training_args) -> list:
    """The accelerator whose random state torch.random.fork_rng saves and restores (none on CPU)."""
    return [training_args.device] if training_args.device.type == "cuda" else []


def main(argv: list[str] | None = None) -> dict:
    # 1. Arguments and logging.
    model_args, data_args, lora_args, training_args = parse_args(argv)
    # No description of the parser for this install yet: written now, so the next mistake is answered before torch
    # loads. Called here, not in arguments.py: flag_schema describes arguments' parser, never the other way round.
    flag_schema.remember()
    # INFO from the main process only: N processes would print every line N times.
    level = logging.INFO if training_args.should_log else logging.WARNING
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=level)
    transformers.utils.logging.set_verbosity(training_args.get_process_log_level())
    transformers.set_seed(training_args.seed)
    if (
        torch.cuda.is_available()
    ):  # TF32 tensor cores for fp32 matmuls (also those bf16 autocast leaves in fp32)
        torch.set_float32_matmul_precision("high")
    output_dir = Path(training_args.output_dir)
    run_config = {**vars(model_args), **vars(data_args), **vars(lora_args), **training_args.to_dict()}
    run_config["data_source"] = provenance.describe_data(
        data_args.dataset_name, data_args.data_dir, data_args.imagenette_size
    )
    last_checkpoint = resolve_output_dir(training_args, run_config)
    if last_checkpoint and training_args.resume_from_checkpoint is not None:
        logger.info("Resuming from %s (--resume_from_checkpoint)", last_checkpoint)
    elif last_checkpoint:
        logger.info("Resuming the interrupted run from %s", last_checkpoint)
    # Before any data or model: a push that cannot work fails now; wandb without credentials goes offline.
    repo_id = hub.check_write_access(training_args) if training_args.push_to_hub else None
    tracking.prepare(training_args.report_to)
    # Without a reachable Hub, a model that is not in the HF cache fails now, in one line, before any data work.
    offline.require_cached(model_args.model_name_or_path)
    offline.require_cached(model_args.adapter_name_or_path, artifacts.ADAPTER_CONFIG)

    # 2. Data: train / dev (carved from train, used for selection) / val (evaluated once at the end).
    if data_args.streaming:  # train streamed and sharded per process; dev and val in memory (streaming.py)
        splits = streaming.load_streaming_splits(data_args, training_args)
    else:
        splits = load_splits(
            dataset_name=data_args.dataset_name,
            data_dir=data_args.data_dir,
            imagenette_size=data_args.imagenette_size,
            dev_split_ratio=data_args.dev_split_ratio,
            seed=training_args.seed,
            download=data_args.download,
            max_train_samples=data_args.max_train_samples,
            max_eval_samples=data_args.max_eval_samples,
            class_names_file=data_args.class_names_file,
            shots_per_class=data_args.shots_per_class,
            hub_columns=HubColumns.of(data_args),
        )
        splits = verify_splits(splits, data_args.on_bad_image, output_dir, training_args.process_index == 0)
    # Image counts and a hash of (id, size) per split (provenance.py), taken before pixels replace the images.
    fingerprint = provenance.data_fingerprint(splits) if training_args.process_index == 0 else None
    untrained = (fingerprint or {}).get("classes_without_training_images")
    if untrained and training_args.do_train:  # evaluated but never learned: said once, by the main process
        logger.warning(
            "%s ha%s no training image (after --max_train_samples, --shots_per_class and the image check): "
            "%s evaluated but never trained on; the card says so.",
            card_text.lost_classes_line(untrained),
            "s" if len(untrained) == 1 else "ve",
            "it is" if len(untrained) == 1 else "they are",
        )
    class_names = splits["train"].features["label"].names
    val_ids = list(splits["val"]["image_id"])
    # which image is which class, for the images that may become unreadable while training (lost_images.py)
    watched = {
        name: (list(splits[name]["image_id"]), list(splits[name]["label"]))
        for name in ("train", "dev")
        if training_args.do_train and not (name == "train" and data_args.streaming)
    }
    skip_log = output_dir / artifacts.SKIPPED_IMAGES
    lost_val = LostImages({"val": (val_ids, list(splits["val"]["label"]))}, class_names, skip_log)
    logger.info("Data: %s", {name: getattr(split, "num_rows", "streamed") for name, split in splits.items()})

    # 3. Model: CLIP, then LoRA (new, or an existing adapter). Eval-only without an adapter stays the base model.
    model, processor = load_clip(
        model_args.model_name_or_path, model_args.cache_dir, model_args.attn_implementation
    )
    # Class names the model cannot tell apart, or prompts longer than its text tower takes: refused now, in one line
    # (the limit comes from the model's config), before anything is trained, evaluated or written.
    templates = prompts.resolve_templates(data_args.prompt_templates, data_args.prompt_template)
    max_prompt_tokens = text_limit(model, processor.tokenizer)
    prompt_tokens(processor.tokenizer, class_names, templates, max_prompt_tokens)
    # The control set (other classes, own label space): loaded and its prompts checked now, scored after step 7.
    control_set = control.prepare(
        data_args.control_eval_dir, processor.tokenizer, templates, max_prompt_tokens
    )
    if model_args.adapter_name_or_path:
        model = load_adapter(model, model_args.adapter_name_or_path, is_trainable=training_args.do_train)
    elif training_args.do_train:
        model = apply_lora(
            model,
            r=lora_args.lora_r,
            alpha=lora_args.lora_alpha,
            dropout=lora_args.lora_dropout,
            target_modules=lora_args.target_module_list,
            towers=lora_args.lora_towers,
        )
    trainable_params, total_params = count_parameters(model)
    logger.info(
        "Trainable parameters: %s of %s (%.3f%%)",
        f"{trainable_params:,}",
        f"{total_params:,}",
        100 * trainable_params / total_params,
    )

    # 4. Images become pixel_values on the fly, or once into the datasets cache (--preprocessing, normalised by the
    #    collator); every batch carries the tokenized class prompts.
    transform = make_transform(processor.image_processor, skip_log)
    # A stream is transformed lazily, never cached.
    streamed = splits.pop("train") if data_args.streaming else None
    with training_args.main_process_first(
        desc="preprocessing"
    ):  # rank 0 writes the cache, the others read it
        splits, normalization = prepare_splits(
            splits,
            processor.image_processor,
            data_args.preprocessing,
            on_gpu=training_args.device.type == "cuda",
            num_proc=training_args.dataloader_num_workers,
            skip_log=skip_log,
        )
    if streamed is not None:
        splits["train"] = streaming.with_transform(streamed, transform)
    collator = ClipClassificationCollator.from_class_names(
        processor.tokenizer, class_names, templates, max_prompt_tokens, **normalization
    )

    trainer = (streaming.StreamingTrainer if data_args.streaming else ClipLoraTrainer)(
        model=model,
        args=hub.without_trainer_push(training_args),  # the push happens once, in step 10
        train_dataset=splits["train"],
        eval_dataset=splits["dev"],
        data_collator=collator,
        processing_class=processor,
        compute_metrics=compute_metrics,
        num_classes=len(class_names),
        loss_kind=lora_args.loss,
    )
    if watched:
        trainer.lost_images = LostImages(watched, class_names, skip_log, data_args.on_lost_images == "stop")
        trainer.add_callback(trainer.lost_images)
    if training_args.do_train:  # processes x per-device batch x accumulation = global batch; optimizer steps
        logger.info(batching.batch_line(training_args, None if data_args.streaming else len(splits["train"])))
    if trainer.is_world_process_zero():  # the flags, and what a rerun needs: versions, commit, batch, data
        run_config["provenance"] = provenance.run_provenance(
            training_args, trainer.accelerator.mixed_precision, fingerprint
        )
        output_dir.mkdir(parents=True, exist_ok=True)
        artifacts.write_json(output_dir / artifacts.RUN_CONFIG, run_config)

    # 5. Zero-shot baseline: the base model (adapter switched off) on val, with the same prompts. Its random draws
    #    (the evaluation loaders' seeds) are undone afterwards: training starts from the state set_seed left.
    rng = torch.random.fork_rng(devices=training_devices(training_args), device_type="cuda")
    adapter_off = model.disable_adapter() if isinstance(model, PeftModel) else nullcontext()
    with rng, adapter_off:
        zero_shot = evaluate_split(
            trainer,
            splits["val"],
            "zero_shot",
            val_ids,
            class_names,
            output_dir,
            artifacts.ZERO_SHOT_PREDICTIONS,
        )
        single_template = (  # the report shows what the ensemble adds over --prompt_template alone
            prompts.single_template_metrics(
                trainer,
                splits["val"],
                processor.tokenizer,
                class_names,
                data_args.prompt_template,
                "zero_shot_single",
            )
            if len(templates) > 1
            else {}
        )
    trainer.log_metrics("zero_shot", zero_shot.metrics)
    results = {
        **zero_shot.metrics,
        "trainable_params": trainable_params,
        "total_params": total_params,
        "num_prompt_templates": len(templates),
        **single_template,
    }

    # 6. Train; after each epoch evaluate on dev; the best dev epoch is restored at the end.
    temperature, train_metrics = None, {}
    if training_args.do_train:
        train_result = trainer.train(resume_from_checkpoint=last_checkpoint)
        trainer.save_model()  # the selected adapter + processor files, in output_dir
        trainer.save_state()
        train_metrics = train_result.metrics
        results.update(train_metrics)
        dev = trainer.predict(splits["dev"], metric_key_prefix="dev")
        trainer.log(dev.metrics)  # what evaluate() would log; predict also returns the dev logits
        results.update(dev.metrics)
        # Temperature scaling on dev only -> temperature.json beside the adapter (calibration.py).
        temperature = calibration.fit_and_store(dev, output_dir, trainer.is_world_process_zero())

    # 7. Final evaluation on val, once, with the selected adapter (or the zero-shot model in an eval-only run).
    if training_args.do_train or model_args.adapter_name_or_path:
        final = evaluate_split(
            trainer, splits["val"], "eval", val_ids, class_names, output_dir, artifacts.PREDICTIONS
        )
    else:
        final = zero_shot
        if trainer.is_world_process_zero():
            artifacts.atomic_write_bytes(
                output_dir / artifacts.PREDICTIONS,
                (output_dir / artifacts.ZERO_SHOT_PREDICTIONS).read_bytes(),
            )
    # eval_results.json: the val metrics (and, after training, the epoch), as trainer.evaluate() returns them.
    eval_metrics = {key.replace("zero_shot_", "eval_", 1): value for key, value in final.metrics.items()}
    eval_metrics.update({"epoch": train_metrics["epoch"]} if "epoch" in train_metrics else {})
    results.update(eval_metrics)
    if control_set is not None:  # what fine-tuning cost outside the task (control.py)
        alphas = data_args.wise_alpha_list
        results.update(control.run(trainer, model, control_set, transform, output_dir, alphas))

    # 8. Per-class report, calibration on val (calibration.json), results file.
    if trainer.is_world_process_zero():
        results.update(calibration.store_val(output_dir, zero_shot, final, temperature))
        final_predictions = np.asarray(final.predictions).argmax(axis=1)
        report = classification_report(
            final.label_ids, final_predictions, class_names, unreadable=lost_val.lost()["val"]
        )
        save_report(
            report,
            output_dir,
            split="val",
            model=model_card.evaluated_model(training_args.do_train, model_args.adapter_name_or_path),
        )
        print(format_report(report))
        artifacts.write_results(output_dir, results, train_metrics, eval_metrics)
        logger.info(
            "zero-shot accuracy %.4f -> fine-tuned %.4f (val, %d images)",
            results["zero_shot_accuracy"],
            results["eval_accuracy"],
            len(val_ids),
        )

    # 9. WiSE-FT (optional): the adapter scaled by alpha on val and on a shifted set -> wise_ft.json / .png.
    if data_args.wise_alpha_list:
        sets = wise_ft.eval_sets(
            splits["val"],
            val_ids,
            transform,
            data_args.robustness_eval_dir,
            class_names,
            data_args.class_names_file,
        )
        wise_ft.run(trainer, model, sets, class_names, output_dir, data_args.wise_alpha_list)

    # 10. What a user looks at and shares: plots, the model card (README.md), the wandb summary, the push.
    if trainer.is_world_process_zero():
        plots.save_plots(output_dir)
        model_card.write_model_card(output_dir, repo_id)  # replaces the template README.md PEFT saved
        tracking.log_final(training_args.report_to, output_dir)
        if repo_id:
            hub.push_run(output_dir, repo_id, training_args)
        run_dir.mark_finished(output_dir)  # last: everything above is in place
        run_dir.release_lock(output_dir)
        if training_args.do_train:  # the last lines `make demo` prints: where to look, what to type next
            print(next_steps(output_dir, run_config))
    return results


def eval_main(argv: list[str] | None = None) -> dict:
    """clip-lora eval: the same pipeline, evaluating only (--do_train false) unless a flag says otherwise."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if {"-h", "--help"} & set(
        argv
    ):  # eval's view of the flags (the quick check prints it first where it can)
        print(train_help.help_text(build_parser(), "eval"), end="")
        return {}
    return main(eval_argv(argv))
