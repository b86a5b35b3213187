"""The mutants `make mutation` tries: realistic one-line bugs in the modules whose bugs change reported numbers.

Each entry: the file, a snippet that must occur exactly once in it, its replacement, the bug in words, and the test
files that cover the file (fast ones first: pytest runs with -x and stops at the first failure). A mutant no test can
kill because it changes no observable behaviour gets `equivalent="why"`; that reason is copied into MUTATION.md.
When the code under a mutant changes, tools/mutation.py reports it as STALE: rewrite the snippet, do not drop it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    path: str
    original: str
    mutated: str
    bug: str
    tests: tuple[str, ...]
    equivalent: str | None = None


LOSS = ("tests/test_loss_reference.py", "tests/test_trainer.py")
METRICS = ("tests/test_metrics_reference.py", "tests/test_metrics.py")
COLLATOR = ("tests/test_collator.py", "tests/test_collator_values.py")
STATS = ("tests/test_stats.py", "tests/test_stats_properties.py")
PROMPTS = ("tests/test_prompts.py", "tests/test_prompt_files.py")
WISE = ("tests/test_wise_ft_scaling.py", "tests/test_wise_ft.py")
SPLITS = ("tests/test_splits_reference.py", "tests/test_data.py")
SELECTION = ("tests/test_selection.py",)
IMAGE_CHECK = ("tests/test_image_check.py", "tests/test_image_decoding.py", "tests/test_bad_images.py")
PIXELS = ("tests/test_pixel_cache.py", "tests/test_preprocessing.py")
MODELING = ("tests/test_defaults.py", "tests/test_modeling.py")
DEFAULTS = ("tests/test_defaults.py",)
SAMPLING = ("tests/test_sampling.py",)
SYNC_CHECK = ("tests/test_sync_check.py",)
LAUNCHED = ("tests/test_distributed.py",)
ACCUMULATION = ("tests/test_scale.py::test_gradient_accumulation_equals_one_big_batch",)
GATHER = ("tests/test_scale.py::test_two_processes_of_16_equal_one_of_32_also_with_accumulation",)
EVAL_LOSS = ("tests/test_trainer.py::test_eval_loss_does_not_depend_on_the_batch_size",)
BATCHING = (
    "tests/test_scale.py::test_global_batch_is_derived",
    "tests/test_scale.py::test_optimizer_steps_follow_the_trainers_arithmetic",
)
IMAGES = ("tests/test_image_check.py", "tests/test_images.py")
TIES = (
    "tests/test_selection.py::test_a_tie_on_dev_accuracy_goes_to_the_lower_dev_loss_in_trainer_and_on_the_card",
    "tests/test_selection.py::test_accuracy_comes_first_and_a_loss_metric_is_broken_by_accuracy",
    "tests/test_selection.py::test_a_run_from_before_the_tie_breaker_is_described_as_it_was_made",
)
FINGERPRINT = (
    "tests/test_provenance.py::test_fingerprint_counts_every_split_and_sees_the_same_images_whatever_the_seed",
    "tests/test_provenance.py::test_fingerprint_changes_when_one_val_file_does",
    "tests/test_provenance.py::test_code_version_names_the_commit_of_a_checkout_and_none_elsewhere",
)
COMPARE = ("tests/test_compare.py",)
RUN_DIR = (
    "tests/test_run_dir.py::test_a_checkpoint_with_a_same_size_corrupt_file_is_damaged",
    "tests/test_run_dir.py::test_every_result_flag_change_is_listed",
)
# Fixtures of every shape (issue 21): unequal rows, unbalanced classes, digit boundaries, ties of any size, templates.
GATHER_UNEVEN = ("tests/test_distributed_gather.py",)
METRICS_SHAPES = ("tests/test_metrics_shapes.py",)
CHECKPOINTS = ("tests/test_run_dir_checkpoints.py",)
CARD = ("tests/test_card_selection.py",)
TRAINER_CHECKPOINTS = ("tests/test_trainer_checkpoints.py",)


def _m(path, tests, original, mutated, bug, equivalent=None):
    return Mutant(path, original, mutated, bug, tests, equivalent)


_T = "clip_lora/trainer.py"
_LO = "clip_lora/loss.py"
_MET = "metrics.py"
_COL = "collator.py"
_ST = "clip_lora/stats.py"
_PR = "clip_lora/prompts.py"
_WI = "clip_lora/wise_ft.py"
_DA = "clip_lora/data.py"
_TR = "train_clip_lora.py"
_IC = "clip_lora/image_check.py"
_PP = "clip_lora/preprocessing.py"
_MO = "clip_lora/modeling.py"
_AR = "clip_lora/arguments.py"
_TA = "clip_lora/training_arguments.py"  # ClipLoraTrainingArguments (its defaults)
_IM = "clip_lora/images.py"
_DI = "clip_lora/distributed.py"
_BA = "clip_lora/batching.py"
_RD = "clip_lora/run_dir.py"
_CK = "clip_lora/checkpoints.py"
_AD = "clip_lora/adapters.py"
_CN = "clip_lora/class_names.py"
_SA = "clip_lora/sampling.py"
_SY = "clip_lora/sync_check.py"
_SE = "clip_lora/selection.py"
_CT = "clip_lora/card_text.py"
_PV = "clip_lora/provenance.py"
_CP = "clip_lora/compare.py"

MUTANTS: list[Mutant] = [
    # ---------------------------------------------------------------- the loss and scoring
    _m(
        _LO,
        LOSS,
        "return (image_to_text + text_to_image) / 2, logits",
        "return image_to_text, logits",
        "contrastive loss drops its text->image term",
    ),
    _m(
        _LO,
        LOSS,
        "return (image_to_text + text_to_image) / 2, logits",
        "return image_to_text + text_to_image, logits",
        "contrastive loss sums instead of averaging its terms",
    ),
    _m(
        _LO,
        LOSS,
        ".T.log_softmax(dim=1)",
        ".T.log_softmax(dim=0)",
        "text->image softmax over classes, not images",
    ),
    _m(
        _LO,
        LOSS,
        "masked_fill(~positives, -math.inf)",
        "masked_fill(positives, -math.inf)",
        "text->image positives and negatives swapped",
    ),
    _m(
        _LO,
        LOSS,
        "text_to_image = (per_class * present).sum() / present.sum()",
        "text_to_image = (per_class * present).sum()",
        "text->image term summed over classes",
    ),
    _m(
        _LO,
        LOSS,
        "per_class = -positive_log_probs.logsumexp(dim=1)",
        "per_class = -positive_log_probs.max(dim=1).values",
        "text->image keeps one positive (max) instead of all of them",
    ),
    _m(
        _LO,
        LOSS,
        "per_class = -positive_log_probs",
        "per_class = positive_log_probs",
        "text->image term sign flipped",
    ),
    _m(
        _LO,
        LOSS,
        "text_to_image = (per_class * present).sum() / present.sum()",
        "text_to_image = per_class.mean()",
        "text->image term over every class, also those absent from the batch",
    ),
    _m(
        _LO,
        LOSS,
        ".masked_fill(~present[:, None], 0.0)",
        "",
        "an absent class's all -inf row is left in: NaN gradients",
    ),
    _m(
        _LO,
        LOSS,
        "image_to_text = F.cross_entropy(logits, labels)",
        "image_to_text = F.nll_loss(logits, labels)",
        "image->text CE without log-softmax",
    ),
    _m(_LO, LOSS, 'if kind == "ce":', 'if kind != "ce":', "ce and contrastive swapped"),
    _m(
        _LO,
        LOSS,
        "logit_scale * F.normalize(image_embeds.float(), dim=-1)",
        "F.normalize(image_embeds.float(), dim=-1)",
        "logits not multiplied by the temperature",
    ),
    _m(
        _LO,
        LOSS,
        "logit_scale * F.normalize(image_embeds.float(), dim=-1)",
        "logit_scale * image_embeds.float()",
        "image embeddings not normalised",
    ),
    _m(
        _LO,
        LOSS,
        "F.normalize(text_embeds.float(), dim=-1).view(",
        "text_embeds.float().view(",
        "prompt embeddings averaged before normalising",
    ),
    _m(
        _LO,
        LOSS,
        "return F.normalize(per_class.mean(dim=1), dim=-1)",
        "return per_class.mean(dim=1)",
        "class embedding (template mean) not renormalised",
    ),
    _m(
        _LO,
        LOSS,
        "clamp(max=MAX_LOGIT_SCALE)",
        "clamp(min=MAX_LOGIT_SCALE)",
        "temperature floored instead of capped",
    ),
    _m(_LO, LOSS, "MAX_LOGIT_SCALE = 100.0", "MAX_LOGIT_SCALE = 1000.0", "temperature cap too high"),
    _m(
        _T,
        LOSS,
        "loss, logits = clip_class_loss(images, class_embeds, labels, scale, self.loss_kind)",
        'loss, logits = clip_class_loss(images, class_embeds, labels, scale, "ce")',
        "training ignores --loss and always uses ce",
    ),
    _m(
        _T,
        LOSS,
        "        self._eval_class_embeds = None\n        try:\n            output = super().evaluation_loop(*args, **kwargs)\n"
        "        finally:\n            self._eval_class_embeds = None\n",
        "        output = super().evaluation_loop(*args, **kwargs)\n",
        "evaluation reuses the previous pass's class embeddings (stale after training)",
    ),
    # ---------------------------------------------------------------- metrics
    _m(_MET, METRICS, "(preds == refs).mean()", "(preds != refs).mean()", "accuracy counts the errors"),
    _m(
        _MET,
        METRICS,
        "flat = np.bincount(refs * num_classes + preds",
        "flat = np.bincount(preds * num_classes + refs",
        "confusion matrix transposed (rows = predicted)",
    ),
    _m(
        _MET,
        METRICS,
        "support = cm.sum(axis=1)",
        "support = cm.sum(axis=0)",
        "support counted over predictions",
    ),
    _m(
        _MET,
        METRICS,
        "precision = _safe_div(tp, predicted)",
        "precision = _safe_div(tp, support)",
        "precision divided by support",
    ),
    _m(
        _MET,
        METRICS,
        "f1 = _safe_div(2 * precision * recall",
        "f1 = _safe_div(precision * recall",
        "F1 without the factor 2",
    ),
    _m(
        _MET,
        METRICS,
        '"present": (support + predicted) > 0',
        '"present": support > 0',
        "macro average skips classes that are only predicted",
    ),
    _m(
        _MET,
        METRICS,
        "return float(stats[key][present].mean()) if present.any() else 0.0",
        "return float(stats[key].mean())",
        "macro average over every class id, absent ones as 0",
    ),
    _m(
        _MET,
        METRICS,
        "preds = logits.argmax(axis=-1)",
        "preds = logits.argmin(axis=-1)",
        "prediction is the argmin",
    ),
    _m(
        _MET,
        METRICS,
        "preds = logits.argmax(axis=-1)",
        "preds = logits.argmax(axis=0)",
        "argmax over the batch axis",
    ),
    _m(
        _MET,
        METRICS,
        "MacroF1(num_classes=logits.shape[-1])",
        "MacroF1(num_classes=logits.shape[0])",
        "number of classes taken from the batch size",
    ),
    _m(
        _MET,
        METRICS,
        "n = int(max(preds.max(initial=-1), refs.max(initial=-1))) + 1",
        "n = int(max(preds.max(initial=-1), refs.max(initial=-1)))",
        "class count off by one",
    ),
    _m(
        _MET,
        METRICS,
        "{k: float((stats[k] * weights).sum()) for k in keys}",
        "{k: float((stats[k] * weights).mean()) for k in keys}",
        "weighted average is a mean of weighted values",
    ),
    _m(
        _MET,
        METRICS,
        '"accuracy": float(np.trace(cm) / total) if total else 0.0',
        '"accuracy": float(np.trace(cm) / len(class_names)) if total else 0.0',
        "report accuracy divided by the number of classes",
    ),
    _m(
        _MET,
        METRICS,
        'return {"accuracy": float((preds == refs).mean()) if refs.size else 0.0}',
        'return {"accuracy": float((preds == refs).mean()) if refs.size else 1.0}',
        "accuracy of no predictions is 1",
    ),
    _m(_MET, METRICS, "where=den > 0", "where=den >= 0", "zero division not guarded"),
    # ---------------------------------------------------------------- collator
    _m(
        _CN,
        COLLATOR,
        "prompts = [template.format(name) for name in names for template in templates]",
        "prompts = [template.format(name) for template in templates for name in names]",
        "prompts template-major instead of class-major",
    ),
    _m(
        _COL,
        COLLATOR,
        "pixels *= np.float32(self.rescale_factor)",
        "pixels *= np.float32(1.0)",
        "uint8 pixels not rescaled",
    ),
    _m(
        _COL,
        COLLATOR,
        "pixels -= np.asarray(self.image_mean",
        "pixels += np.asarray(self.image_mean",
        "mean added instead of subtracted",
    ),
    _m(
        _COL,
        COLLATOR,
        "pixels /= np.asarray(self.image_std",
        "pixels *= np.asarray(self.image_std",
        "multiplied by std instead of divided",
    ),
    _m(
        _COL,
        COLLATOR,
        "pixels -= np.asarray(self.image_mean, dtype=np.float32).reshape(-1, 1, 1)",
        "pixels -= np.asarray(self.image_std, dtype=np.float32).reshape(-1, 1, 1)",
        "std subtracted instead of mean",
    ),
    _m(
        _COL,
        COLLATOR,
        "rescale_factor: float = 1 / 255",
        "rescale_factor: float = 1 / 256",
        "default rescale factor 1/256",
    ),
    _m(
        _COL,
        COLLATOR,
        "if pixels.dtype == np.uint8:",
        "if pixels.dtype == np.int8:",
        "uint8 pixels pass through unnormalised",
    ),
    _m(
        _COL,
        COLLATOR,
        '[int(f["labels"]) if f["pixel_values"] is not None else IGNORE_INDEX for f in features],',
        '[int(f["labels"]) if f["pixel_values"] is not None else IGNORE_INDEX for f in features[::-1]],',
        "labels in reverse order of the pixels",
    ),
    # ---------------------------------------------------------------- paired test
    _m(
        _ST,
        STATS,
        "for k in range(min(b, c) + 1))",
        "for k in range(min(b, c)))",
        "binomial tail misses its last term",
    ),
    _m(
        _ST,
        STATS,
        "for k in range(min(b, c) + 1))",
        "for k in range(max(b, c) + 1))",
        "tail from the larger count",
    ),
    _m(_ST, STATS, "return min(1.0, 2 * tail / 2**n)", "return 2 * tail / 2**n", "p-value not capped at 1"),
    _m(_ST, STATS, "return min(1.0, 2 * tail / 2**n)", "return min(1.0, tail / 2**n)", "one-sided p-value"),
    _m(
        _ST,
        STATS,
        "return 1.0  # no discordant image",
        "return 0.0  # no discordant image",
        "no discordant image gives p = 0",
    ),
    _m(
        _ST,
        STATS,
        "b = int((base_right & ~model_right).sum())",
        "b = int((base_right & model_right).sum())",
        "b counts the images both get right",
    ),
    _m(
        _ST,
        STATS,
        "c = int((~base_right & model_right).sum())",
        "c = int((~base_right & ~model_right).sum())",
        "c counts the images both get wrong",
    ),
    _m(_ST, STATS, "if b < 0 or c < 0:", "if b < 0 and c < 0:", "one negative count accepted"),
    _m(_ST, STATS, "arr.std(ddof=1)", "arr.std(ddof=0)", "population instead of sample std"),
    # ---------------------------------------------------------------- prompts
    _m(
        _PR,
        PROMPTS,
        "templates = [single]",
        "templates = [DEFAULT_TEMPLATE]",
        "'single' ignores --prompt_template",
    ),
    _m(
        _PR,
        PROMPTS,
        "templates = list(OPENAI_IMAGENET_TEMPLATES)",
        "templates = list(OPENAI_IMAGENET_TEMPLATES[1:])",
        "one of the 80 templates dropped",
    ),
    _m(_PR, PROMPTS, 'if line and not line.startswith("#")', "if line", "comment lines used as templates"),
    _m(_PR, PROMPTS, "if len(fields) > 1:", "if len(fields) > 2:", "a template with two {} accepted"),
    _m(
        _PR,
        PROMPTS,
        "    finally:\n        trainer.data_collator = ensemble\n",
        "    finally:\n        pass\n",
        "single-template collator left on the trainer",
    ),
    # ---------------------------------------------------------------- WiSE-FT
    _m(
        _WI,
        WISE,
        "layer.scaling[adapter] = value * alpha",
        "layer.scaling[adapter] = value * (1 - alpha)",
        "alpha 0 and 1 swapped",
    ),
    _m(
        _WI,
        WISE,
        "layer.scaling[adapter] = value * alpha",
        "layer.scaling[adapter] = value * alpha**2",
        "adapter scaled by alpha squared",
    ),
    _m(
        _WI,
        WISE,
        "            layer.scaling.update(scaling)\n",
        "            pass\n",
        "scalings not restored after the block",
    ),
    _m(
        _WI,
        WISE,
        'sets = {"val": (val, val_ids)}',
        'sets = {"val": (val, val_ids[::-1])}',
        "val predictions written against reversed image ids",
    ),
    # ---------------------------------------------------------------- data splits
    _m(
        _DA,
        SPLITS,
        "extra = max(1, round(ratio * len(labels)))",
        "extra = max(1, int(ratio * len(labels)))",
        "dev size floored instead of rounded",
    ),
    _m(
        _DA,
        SPLITS,
        "if take[i] < counts[i] - 1:",
        "if take[i] < counts[i]:",
        "a class can lose its last train image to dev",
    ),
    _m(
        _DA,
        SPLITS,
        "key=lambda i: (-(quotas[i] - math.floor(quotas[i])), rng.random())",
        "key=lambda i: ((quotas[i] - math.floor(quotas[i])), rng.random())",
        "leftover dev images go to the smallest remainders",
    ),
    _m(
        _DA,
        SPLITS,
        "take = np.floor(quotas).astype(int)",
        "take = np.ceil(quotas).astype(int)",
        "per-class quotas rounded up",
    ),
    _m(
        _DA,
        SPLITS,
        "picked = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take",
        "picked = [np.flatnonzero(labels == c)[:k] for c, k in zip(classes, take",
        "dev takes the first images of each class, not a seeded sample",
    ),
    _m(
        _DA,
        SPLITS,
        "    rng = np.random.default_rng(seed)\n    classes, counts",
        "    rng = np.random.default_rng(0)\n    classes, counts",
        "dev split ignores the seed",
    ),
    _m(
        _DA,
        SPLITS,
        "dev_idx = _dev_indices(labels, dev_split_ratio, seed)",
        "dev_idx = np.sort(np.random.default_rng(seed).permutation(len(labels))"
        "[: max(1, round(dev_split_ratio * len(labels)))])",
        "random unstratified dev split",
    ),
    _m(
        _DA,
        SPLITS,
        "train_idx = np.setdiff1d(np.arange(len(train)), dev_idx)",
        "train_idx = np.arange(len(train))",
        "dev images stay in train",
    ),
    _m(
        _DA,
        SPLITS,
        '"dev": _subset(train.select(dev_idx), max_eval_samples, seed)',
        '"dev": _subset(splits["val"], max_eval_samples, seed)',
        "dev is the val split",
    ),
    _m(
        _DA,
        SPLITS,
        '"val": _subset(splits["val"], max_eval_samples, seed)',
        '"val": _subset(splits["val"], max_train_samples, seed)',
        "val truncated by max_train_samples",
    ),
    _m(
        _DA,
        SPLITS,
        "if not 0 < dev_split_ratio <= 0.5:",
        "if not 0 < dev_split_ratio < 0.5:",
        "dev_split_ratio 0.5 refused",
    ),
    _m(
        _DA,
        SPLITS,
        "dev_split_ratio: float = 0.05,",
        "dev_split_ratio: float = 0.1,",
        "load_splits default ratio 0.1",
    ),
    _m(
        _DA,
        SPLITS,
        "    seed: int = 42,\n    max_train_samples",
        "    seed: int = 0,\n    max_train_samples",
        "load_splits default seed 0",
    ),
    _m(
        _DA,
        SPLITS,
        "picked = [rng.permutation(np.flatnonzero(labels == c))[:shots]",
        "picked = [rng.permutation(np.flatnonzero(labels == c))[: shots + 1]",
        "few-shot keeps K+1 per class",
    ),
    _m(
        _DA,
        SPLITS,
        "if n is None or n >= len(ds):",
        "if n is None or n > len(ds):",
        "subset of exactly len(ds) goes through the shuffle",
        equivalent="with n == len(ds) the shuffle keeps every row and `select(sorted(...))` restores the original "
        "order, so the split is the same dataset, row for row.",
    ),
    _m(
        _DA,
        SPLITS,
        "return ds.select(sorted(interleaved[:n]))",
        "return ds.select(interleaved[:n])",
        "subset in shuffled instead of file order",
    ),
    # ---------------------------------------------------------------- the entry's selection and evaluation steps
    _m(
        _TR,
        SELECTION,
        'eval_dataset=splits["dev"],',
        'eval_dataset=splits["val"],',
        "per-epoch selection evaluates on val (the seed's mistake)",
    ),
    _m(
        _TR,
        SELECTION,
        'dev = trainer.predict(splits["dev"], metric_key_prefix="dev")',
        'dev = trainer.predict(splits["val"], metric_key_prefix="dev")',
        "reported dev metrics are val's",
    ),
    _m(
        _TR,
        SELECTION,
        'trainer, splits["val"], "eval", val_ids',
        'trainer, splits["dev"], "eval", val_ids',
        "final evaluation on dev",
    ),
    _m(
        _TR,
        SELECTION,
        'splits["val"],\n            "zero_shot",',
        'splits["dev"],\n            "zero_shot",',
        "zero-shot baseline on dev",
    ),
    _m(
        _TR,
        SELECTION,
        "dev_split_ratio=data_args.dev_split_ratio,",
        "dev_split_ratio=0.05,",
        "--dev_split_ratio ignored",
    ),
    _m(
        _TR,
        SELECTION,
        "            seed=training_args.seed,\n            download",
        "            seed=42,\n            download",
        "--seed ignored by the dev split",
    ),
    _m(
        _TR,
        SELECTION,
        "final_predictions = np.asarray(final.predictions).argmax(axis=1)",
        "final_predictions = np.asarray(final.predictions).argmin(axis=1)",
        "per-class report from the argmin",
    ),
    _m(
        _TR,
        SELECTION,
        "trainer.save_model()  # the selected adapter",
        "pass  # the selected adapter",
        "selected adapter not saved",
    ),
    # ---------------------------------------------------------------- the pixel cache
    _m(
        _PP,
        PIXELS,
        "pixels = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)",
        "pixels = np.clip(pixels, 0, 255).astype(np.uint8)",
        "cached pixels truncated instead of rounded",
    ),
    _m(_PP, PIXELS, '    "crop_size",\n', "", "crop size missing from the cache fingerprint"),
    _m(
        _PP,
        PIXELS,
        '"files": _files_signature(ds),',
        '"files": [],',
        "replaced image files reuse the old cache",
    ),
    _m(
        _PP,
        PIXELS,
        'return "cached" if cuda_available else "on_the_fly"',
        'return "on_the_fly" if cuda_available else "cached"',
        "auto picks cached on CPU",
    ),
    _m(
        _PP,
        PIXELS,
        "rescale = image_processor.rescale_factor if",
        "rescale = 1.0 if",
        "collator never rescales cached pixels",
    ),
    # ---------------------------------------------------------------- the image check
    _m(_IC, IMAGE_CHECK, "                image.load()\n", "", "image check only verify()s, never decodes"),
    _m(
        _IC,
        IMAGE_CHECK,
        "image.draft(None, (max(1, image.width // 8), max(1, image.height // 8)))",
        "pass",
        "JPEGs decoded at full size",
        equivalent="`draft` only chooses the DCT scale the decoder writes; the whole entropy-coded stream is read "
        "either way, so every verdict is the same (it is a speed choice, measured in the module docstring).",
    ),
    _m(
        _IM,
        IMAGES + IMAGE_CHECK,
        "if limit and width * height > limit:",
        "if limit and width * height > 2 * limit:",
        "bomb limit doubled (PIL's own error threshold)",
    ),
    _m(
        _IC,
        IMAGE_CHECK,
        'if on_bad_image == "error":',
        'if on_bad_image != "error":',
        "skip and error swapped",
    ),
    # ---------------------------------------------------------------- adapter loading and LoRA
    _m(
        _MO,
        MODELING,
        "is_trainable=is_trainable,",
        "is_trainable=False,",
        "a loaded adapter is frozen even when training continues",
    ),
    _m(_MO, MODELING, "lora_alpha=alpha,", "lora_alpha=r,", "LoRA alpha set to r (scaling 1)"),
    _m(_MO, MODELING, "lora_dropout=dropout,", "lora_dropout=0.0,", "LoRA dropout ignored"),
    _m(
        _MO,
        MODELING,
        '"vision": ("vision_model",),',
        '"vision": ("vision_model", "text_model"),',
        "--lora_towers vision adapts both towers",
    ),
    _m(
        _MO,
        MODELING,
        "trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)",
        "trainable = sum(p.numel() for p in model.parameters())",
        "trainable count includes frozen weights",
    ),
    _m(
        _AD,
        MODELING,
        "if not (path / artifacts.ADAPTER_WEIGHTS).is_file():",
        "if False:",
        "pickle-only adapter folders accepted",
    ),
    # ---------------------------------------------------------------- the seed defaults
    _m(_AR, DEFAULTS, "default=0.05,", "default=0.1,", "--dev_split_ratio default 0.1"),
    _m(
        _TA,
        DEFAULTS,
        "seed: int = field(\n        default=42,",
        "seed: int = field(\n        default=0,",
        "--seed default 0",
    ),
    _m(
        _AR,
        DEFAULTS,
        "lora_dropout: float = field(\n        default=0.1,",
        "lora_dropout: float = field(\n        default=0.0,",
        "--lora_dropout default 0",
    ),
    _m(
        _TA,
        DEFAULTS,
        'default="accuracy", metadata={"help": "Dev metric used for selection."}',
        'default="loss", metadata={"help": "Dev metric used for selection."}',
        "selection on dev loss",
    ),
    _m(
        _TA,
        DEFAULTS,
        "greater_is_better: bool | None = field(\n        default=None,",
        "greater_is_better: bool | None = field(\n        default=False,",
        "selection keeps the worst epoch",
    ),
    _m(_AR, DEFAULTS, 'default="contrastive",', 'default="ce",', "--loss default ce"),
    _m(
        _TA,
        DEFAULTS,
        "per_device_eval_batch_size: int = field(\n        default=256,",
        "per_device_eval_batch_size: int = field(\n        default=64,",
        "eval batch default 64",
    ),
    # ---------------------------------------------------------------- the global batch: accumulation and processes
    _m(
        _T,
        ACCUMULATION,
        "images_in_window = max(1, sum(len(x) for x in window.labels))",
        "images_in_window = max(1, len(labels))",
        "accumulated ce divides by the micro-batch size instead of the step's image count",
    ),
    _m(
        _T,
        ACCUMULATION,
        "scale_gradient(class_embeds, 1 / parts)",
        "class_embeds",
        "accumulated contrastive drops the 1/k on the class prompts' gradient",
    ),
    _m(
        _T,
        ACCUMULATION,
        "loss = share_of(whole, parts)",
        "loss = whole",
        "accumulated contrastive returns the whole loss from every micro-batch (k-fold)",
    ),
    _m(
        _DI,
        ACCUMULATION,
        "return detached / parts + (loss - detached)",
        "return loss / parts",
        "share_of scales the gradient too, not only the value",
    ),
    _m(
        _DI,
        GATHER,
        "dist.all_reduce(grad, op=dist.ReduceOp.SUM)",
        "pass",
        "gathered rows get only this process's gradient, not the sum over processes",
    ),
    _m(
        _DI,
        GATHER,
        "start = rank() * ctx.rows",
        "start = 0",
        "every process takes rank 0's slice of the gathered gradient",
    ),
    _m(
        _T,
        EVAL_LOSS,
        "loss = F.cross_entropy(logits, torch.as_tensor(output.label_ids, dtype=torch.long)).item()",
        "labels = torch.as_tensor(output.label_ids, dtype=torch.long); loss = ((F.cross_entropy(logits, labels) + "
        "F.cross_entropy(logits[:, labels].T, torch.arange(len(labels)))) / 2).item()",
        "evaluation loss adds the text->image term back",
    ),
    _m(
        _T,
        ("tests/test_distributed.py::test_loss_is_the_mean_per_image_cross_entropy_over_val",),
        "if key in output.metrics:",
        "if False:",
        "evaluation loss left to Trainer's batch mean (under DDP the padded repeats of the last batch count)",
    ),
    _m(
        _BA,
        BATCHING,
        "return per_device, accumulation, processes * per_device * accumulation",
        "return per_device, accumulation, processes * per_device",
        "global batch without a --global_batch_size forgets the accumulation",
    ),
    _m(
        _BA,
        BATCHING,
        "        processes * accumulation,\n",
        "        processes,\n",
        "per-device batch = global / processes, ignoring the accumulation",
    ),
    _m(
        _BA,
        (*BATCHING, "tests/test_batching.py"),
        "per_epoch = max(1, steps_per_epoch(num_examples, processes * per_device * accumulation, drop_last))",
        "per_epoch = max(1, num_examples // (processes * per_device * accumulation))",
        "optimizer-step count drops the last partial batch (off by one)",
    ),
    _m(
        _IM,
        IMAGES,
        "if max(width, height) > MAX_ASPECT_RATIO * min(width, height):",
        "if max(width, height) >= MAX_ASPECT_RATIO * min(width, height):",
        "aspect-ratio bound itself refused (>= for >)",
    ),
    _m(
        _IM,
        IMAGES,
        "if max(width, height) > MAX_ASPECT_RATIO * min(width, height):",
        "if False:",
        "aspect-ratio bound removed",
    ),
    _m(
        _CK,
        RUN_DIR,
        "if path.stat().st_size != size or _sha256(path) != sha256:",
        "if path.stat().st_size != size:",
        "checkpoint verification skips the hash (a same-size corrupt file is resumed from)",
    ),
    _m(
        _RD,
        RUN_DIR,
        '    "learning_rate",\n    "weight_decay",',
        '    "weight_decay",',
        "resume compares every result flag but learning_rate",
    ),
    # ---------------------------------------------------------------- one adapter at any scale (the launched program)
    _m(
        _SA,
        SAMPLING,
        "yield chunks[micro * self.processes + self.rank]",
        "yield chunks[self.rank * self.accumulation + micro]",
        "a process takes consecutive chunks of the step, not accelerate's round-robin (other images than before)",
    ),
    _m(
        _SA,
        SAMPLING,
        "end = start + base + (part < extra)",
        "end = start + base",
        "a short step's remainder images are never trained on",
    ),
    _m(
        _SA,
        SAMPLING,
        "return steps_per_epoch(self.num_examples, self.global_batch, self.drop_last)",
        "return steps_per_epoch(self.num_examples, self.global_batch, True)",
        "the short last step of an epoch is always dropped",
    ),
    _m(
        _SA,
        SAMPLING,
        "generator.manual_seed(seed + epoch)",
        "generator.manual_seed(seed)",
        "every epoch trains in the same order",
    ),
    _m(
        _SA,
        LAUNCHED,
        "self.sampler.set_epoch(state.global_step // self.sampler.steps_per_epoch)",
        "pass",
        "the sampler is never told the epoch: a resumed run restarts in epoch 0's order",
    ),
    _m(
        _DI,
        LAUNCHED,
        '        prepared.__dict__.pop("_is_accelerate_prepared", None)',
        "        pass",
        "the zero-shot evaluation's preparation is kept: no DDP, one adapter per process",
    ),
    _m(
        _SY,
        SYNC_CHECK,
        "dist.all_reduce(low, op=dist.ReduceOp.MAX)",
        "dist.all_reduce(low, op=dist.ReduceOp.MIN)",
        "the replica check compares the max with itself (never sees a difference)",
    ),
    _m(
        _SY,
        SYNC_CHECK,
        "if gradient_spread > RELATIVE_TOLERANCE:",
        "if gradient_spread > 1:",
        "the replica check only fires when gradients differ by over 100%",
    ),
    _m(
        _T,
        ("tests/test_scale.py::test_a_short_step_with_empty_micro_batches_equals_one_batch", *LAUNCHED),
        "images, own_rows = gather_rows(outputs.image_embeds[:rows])",
        "images, own_rows = gather_rows(outputs.image_embeds)",
        "an empty micro-batch's blank placeholder image is trained on",
    ),
    _m(
        _TR,
        (
            "tests/test_train.py::test_training_starts_from_the_seeded_random_state_whatever_was_evaluated_before",
        ),
        "    with rng, adapter_off:",
        "    with adapter_off:",
        "the zero-shot baseline's random draws shift training's random state",
    ),
    # ---------------------------------------------------------------- selection: ties broken by the dev loss
    _m(
        _SE,
        TIES,
        "return new_tie > old_tie if self.tie_greater_is_better else new_tie < old_tie",
        "return new_tie > old_tie if self.tie_greater_is_better else new_tie > old_tie",
        "a tie on dev accuracy goes to the higher dev loss",
    ),
    _m(
        _SE,
        TIES,
        "return new_tie > old_tie if self.tie_greater_is_better else new_tie < old_tie",
        "return new_tie > old_tie if self.tie_greater_is_better else new_tie <= old_tie",
        "a tie of accuracy and loss goes to the later evaluation",
    ),
    _m(
        _SE,
        TIES,
        "if old is None or new != old:",
        "if True:",
        "a tie never reaches the tie-breaker: the first of a tie is kept (Trainer's rule)",
    ),
    _m(
        _SE,
        TIES,
        'tie = "accuracy" if metric == "loss" else "loss"',
        'tie = "loss"',
        "selecting on the loss breaks its ties by the loss itself (never)",
    ),
    _m(
        _T,
        TIES,
        "best = kept_evaluation(self.state.log_history, self.state.best_global_step, rule.metric)",
        "best = kept_evaluation(self.state.log_history, self.state.global_step, rule.metric)",
        "each dev evaluation is ranked against itself, not the best so far",
    ),
    _m(
        _CT,
        TIES,
        "other = max(values) if not rule.tie_greater_is_better else min(values)",
        "other = min(values) if not rule.tie_greater_is_better else max(values)",
        "the card's range of the tied dev losses names the wrong end",
    ),
    _m(
        _CT,
        TIES,
        '"by_rule": kept is not None and chosen is not None and tied[chosen] is kept,',
        '"by_rule": kept is not None,',
        "a run from before the tie-breaker is described as if the loss had chosen its epoch",
    ),
    # ---------------------------------------------------------------- provenance: the data fingerprint, the commit
    _m(
        _PV,
        FINGERPRINT,
        'digest.update((json.dumps(entry) + "\\n").encode())',
        'digest.update((json.dumps(entry[0]) + "\\n").encode())',
        "file sizes left out of the data fingerprint",
    ),
    _m(
        _PV,
        FINGERPRINT,
        "        every += files\n",
        "        every = files\n",
        "files_sha256 covers only the last split",
    ),
    _m(
        _PV,
        FINGERPRINT,
        "for entry in sorted(files, key=lambda f: f[0]):",
        "for entry in files:",
        "the fingerprint depends on the order of the rows (another seed: other data)",
    ),
    _m(
        _PV,
        FINGERPRINT,
        "if not toplevel or Path(toplevel).resolve() != root.resolve():",
        "if not toplevel:",
        "an installed copy inside another repository reports that repository's commit",
    ),
    # ---------------------------------------------------------------- clip-lora compare
    _m(
        _CP,
        COMPARE,
        "if val_same is False:",
        "if False:",
        "McNemar pairs val images of different data by their ids",
    ),
    _m(
        _CP,
        COMPARE,
        '"same": prints[0]["files_sha256"] == prints[1]["files_sha256"],',
        '"same": prints[0]["images"] == prints[1]["images"],',
        "data with as many images are called the same data",
    ),
    _m(
        _CP,
        COMPARE,
        '"right": dict(zip(ids, (labels == predictions).tolist(), strict=True)),',
        '"right": dict(zip(sorted(ids), (labels == predictions).tolist(), strict=True)),',
        "predictions attached to the wrong image ids (paired by position)",
    ),
    _m(
        _CP,
        COMPARE,
        'b_right = np.array([b["right"][i] for i in common], dtype=np.int64)',
        'b_right = np.array([a["right"][i] for i in common], dtype=np.int64)',
        "McNemar compares run A with itself",
    ),
    _m(
        _CP,
        COMPARE,
        "    keys = _training_keys()\n",
        "    keys = set()\n",
        "every Trainer setting listed as a differing flag",
    ),
    # ---------------------------------------------------------------- fixtures of every shape (issue 21)
    _m(
        _DI,
        GATHER_UNEVEN,
        "    start = sum(sizes[: rank()])",
        "    start = rank() * tensor.shape[0]",
        "own rows located as if every process held as many (uneven gather)",
    ),
    _m(
        _LO,
        LOSS,
        "if labels.numel() == 0:",
        "if labels.numel() <= 1:",
        "a step of one image (a short last batch) trains nothing",
    ),
    _m(
        _MET,
        METRICS_SHAPES,
        'rows.append(["macro avg", *cells(report["macro avg"])])',
        'rows.append(["macro avg", *cells(report["weighted avg"])])',
        "the Markdown report's macro row shows the weighted average (equal on balanced data)",
    ),
    _m(
        _CK,
        CHECKPOINTS,
        "(int(m.group(1)), path)",
        "(m.group(1), path)",
        "checkpoints ordered as text: checkpoint-9 resumed over checkpoint-10",
    ),
    _m(
        _CT,
        CARD,
        'elif len(chosen["tied_epochs"]) > 1:',
        'elif len(chosen["tied_epochs"]) >= 1:',
        "a single best epoch described as a tie",
    ),
    _m(
        "clip_lora/model_card.py",
        CARD,
        'if not spec or spec == "single":',
        'if not spec or spec != "single":',
        "the card lists the single template for a run scored with a template file",
    ),
    _m(
        _T,
        TRAINER_CHECKPOINTS,
        "best is None and self.state.best_metric is not None",
        "best is None and self.state.best_metric is None",
        "a state with a best metric but no best step (an older run) ranks nothing: any evaluation wins",
    ),
    _m(
        _T,
        TRAINER_CHECKPOINTS,
        "if self.args.save_strategy in (SaveStrategy.STEPS, SaveStrategy.EPOCH, SaveStrategy.BEST):",
        "if self.args.save_strategy in (SaveStrategy.EPOCH, SaveStrategy.BEST):",
        "the best step not tracked under --save_strategy steps: rotation deletes the best checkpoint",
    ),
]
