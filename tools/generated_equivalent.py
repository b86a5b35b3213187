"""The generated mutants that survive every test, and why each is equivalent: it changes no observable behaviour.

Keyed like its row in MUTATION.md: (file, function, line before, line after). tools/mutation.py fails a run in which a
generated mutant survives without an entry here; the fix is a test that kills it, or a reason that holds.
"""

from __future__ import annotations

from generated_equivalent_since import EQUIVALENT_SINCE

# Why each surviving generated mutant changes no observable behaviour (one reason, several mutants).
_WHY = {
    "SYMMETRIC_SWAP": (
        "accuracy and macro F1 are symmetric in predictions and references: swapping them transposes the confusion matrix, which swaps each class's precision and recall, and F1 (their harmonic mean), the classes counted (with support or predictions) and the accuracy stay the same"
    ),
    "INITIAL": (
        "`initial` only matters for no images at all: then `n` is max(-1 or -0 or -2, -1) + 1 = 0 or 1 classes, none with support or predictions, and the macro F1 is 0.0 either way (tests/test_metrics_shapes.py checks it); with images the largest id wins"
    ),
    "EXTRA_CLASS": (
        "an extra class id has no support and no prediction, and MacroF1 averages over the classes that have either (as sklearn does), so the value is the same"
    ),
    "RESHAPE": (
        "NumPy reads any negative size in `reshape` as the one size to infer, as it reads -1: the same array"
    ),
    "INDENT": (
        "only the whitespace of the JSON file changes; every reader parses it (artifacts.read_json, json.load) to the same keys and numbers"
    ),
    "NON_BLOCKING": (
        "`non_blocking` lets a host-to-device copy overlap with the host; the values are the same, and on CPU it is no copy at all"
    ),
    "N_ONE": (
        "for n = 1 the general formula gives min(1, 2 * C(1, 0) / 2) = 1.0, and for n = 0 min(1, 2 * C(0, 0) / 1) = 1.0: the early return only skips the sum, it returns what the formula would"
    ),
    "P_SYMMETRIC": (
        "the exact two-sided p-value depends on min(b, c) and b + c only, so it is symmetric in b and c (tests/test_stats_properties.py checks it against scipy both ways)"
    ),
    "NORMALIZE_DIM": (
        "the tensor normalised here is 2-D (rows, embedding), where F.normalize's default dim=1 is dim=-1"
    ),
    "SUM_MEAN": (
        "the sum of a class's T template embeddings is T times their mean, and the normalisation right after removes any positive factor"
    ),
    "EMPTY_SUM": (
        "this branch runs only when the step has no labels, so `logits` has no rows: its sum is exactly 0 and it has no element to pass a gradient to, times 0 or times 1"
    ),
    "ABSENT_FILL": (
        "the rows of classes absent from the batch are multiplied by `present` (0) right after; any finite fill gives 0 and, being a constant, no gradient"
    ),
    "DENOMINATOR": (
        "the denominator is processes x per-device batch or processes x accumulation, each at least 1 (checked before), so `< 1` and `< 0` are both never true"
    ),
    "STRICT_IN_BRANCH": (
        "this line runs only when the new value differs from the old one (or there is no old one), so `>=` / `<=` decide as `>` / `<`"
    ),
    "RUN_START": (
        "a run of two or more epochs holds whole epochs only (an epoch is appended only when it and the previous one are whole), so its first and last epochs are both whole or, for a run of one, the same epoch"
    ),
    "PAD_ZERO": (
        "when this process holds the most rows the padding is of 0 rows: F.pad returns the same values"
    ),
    "SORT_KEYS": (
        "the flags are compared as dicts (key order does not matter) and listed sorted by changed_flags"
    ),
    "RMTREE": (
        "only the main process removes these folders, inside its own locked output dir; removal fails only if a folder vanished meanwhile, which the lock (one run per folder) rules out"
    ),
    "MTIME": (
        "Trainer's mtime order (with its fallback to step numbers when mtimes are under 1 s apart) is the step order here: steps only grow within a run, and a resumed run first deletes every checkpoint after the one it resumes from"
    ),
    "METRIC_NONE": (
        "this call runs only when --metric_for_best_model is unset, where Trainer's method reads neither argument and returns False"
    ),
}
# (file, function, line before, line after) -> why no test can tell the mutant from the original.
EQUIVALENT: dict[tuple[str, str, str, str], str] = {
    (
        "metrics.py",
        "Accuracy._compute",
        "preds, refs = _as_int_arrays(predictions, references)",
        "preds, refs = _as_int_arrays(references, predictions)",
    ): _WHY["SYMMETRIC_SWAP"],
    (
        "metrics.py",
        "MacroF1._compute",
        "preds, refs = _as_int_arrays(predictions, references)",
        "preds, refs = _as_int_arrays(references, predictions)",
    ): _WHY["SYMMETRIC_SWAP"],
    (
        "metrics.py",
        "MacroF1._compute",
        "n = int(max(preds.max(initial=-1), refs.max(initial=-1))) + 1",
        "n = int(max(preds.max(initial=-0), refs.max(initial=-1))) + 1",
    ): _WHY["INITIAL"],
    (
        "metrics.py",
        "MacroF1._compute",
        "n = int(max(preds.max(initial=-1), refs.max(initial=-1))) + 1",
        "n = int(max(preds.max(initial=-2), refs.max(initial=-1))) + 1",
    ): _WHY["INITIAL"],
    (
        "metrics.py",
        "MacroF1._compute",
        "n = int(max(preds.max(initial=-1), refs.max(initial=-1))) + 1",
        "n = int(max(preds.max(initial=-1), refs.max(initial=-0))) + 1",
    ): _WHY["INITIAL"],
    (
        "metrics.py",
        "MacroF1._compute",
        "n = int(max(preds.max(initial=-1), refs.max(initial=-1))) + 1",
        "n = int(max(preds.max(initial=-1), refs.max(initial=-2))) + 1",
    ): _WHY["INITIAL"],
    (
        "metrics.py",
        "MacroF1._compute",
        "n = int(max(preds.max(initial=-1), refs.max(initial=-1))) + 1",
        "n = int(max(preds.max(initial=-1), refs.max(initial=-1))) + 2",
    ): _WHY["EXTRA_CLASS"],
    (
        "metrics.py",
        "MacroF1._compute",
        "stats = _per_class_stats(confusion_matrix(refs, preds, n))",
        "stats = _per_class_stats(confusion_matrix(preds, refs, n))",
    ): _WHY["SYMMETRIC_SWAP"],
    (
        "metrics.py",
        "_as_int_arrays",
        "preds = np.asarray(predictions, dtype=np.int64).reshape(-1)",
        "preds = np.asarray(predictions, dtype=np.int64).reshape(-2)",
    ): _WHY["RESHAPE"],
    (
        "metrics.py",
        "_as_int_arrays",
        "refs = np.asarray(references, dtype=np.int64).reshape(-1)",
        "refs = np.asarray(references, dtype=np.int64).reshape(-2)",
    ): _WHY["RESHAPE"],
    (
        "metrics.py",
        "compute_metrics",
        "refs = np.asarray(labels).reshape(-1)",
        "refs = np.asarray(labels).reshape(-2)",
    ): _WHY["RESHAPE"],
    (
        "metrics.py",
        "save_report",
        'atomic_write_text(out / CLASSIFICATION_REPORT_JSON, json.dumps(described, indent=2) + "\\n")',
        'atomic_write_text(out / CLASSIFICATION_REPORT_JSON, json.dumps(described, indent=1) + "\\n")',
    ): _WHY["INDENT"],
    (
        "metrics.py",
        "save_report",
        'atomic_write_text(out / CLASSIFICATION_REPORT_JSON, json.dumps(described, indent=2) + "\\n")',
        'atomic_write_text(out / CLASSIFICATION_REPORT_JSON, json.dumps(described, indent=3) + "\\n")',
    ): _WHY["INDENT"],
    (
        "collator.py",
        "ClipClassificationCollator.__call__",
        "pixels -= np.asarray(self.image_mean, dtype=np.float32).reshape(-1, 1, 1)",
        "pixels -= np.asarray(self.image_mean, dtype=np.float32).reshape(-2, 1, 1)",
    ): _WHY["RESHAPE"],
    (
        "collator.py",
        "ClipClassificationCollator.__call__",
        "pixels /= np.asarray(self.image_std, dtype=np.float32).reshape(-1, 1, 1)",
        "pixels /= np.asarray(self.image_std, dtype=np.float32).reshape(-2, 1, 1)",
    ): _WHY["RESHAPE"],
    (
        "collator.py",
        "ClipClassificationCollator.normalize",
        ".to(pixels.device, non_blocking=True)",
        ".to(pixels.device, non_blocking=False)",
    ): _WHY["NON_BLOCKING"],
    (
        "collator.py",
        "ClipClassificationCollator.normalize",
        "torch.tensor(self.image_std, dtype=torch.float32).view(shape).to(pixels.device, non_blocking=True)",
        "torch.tensor(self.image_std, dtype=torch.float32).view(shape).to(pixels.device, non_blocking=False)",
    ): _WHY["NON_BLOCKING"],
    ("clip_lora/stats.py", "mcnemar_exact_p", "if n == 0:", "if n == 1:"): _WHY["N_ONE"],
    (
        "clip_lora/stats.py",
        "mcnemar",
        "np.asarray(x, dtype=np.int64).reshape(-1) for x in (labels, baseline_predictions, model_predictions)",
        "np.asarray(x, dtype=np.int64).reshape(-2) for x in (labels, baseline_predictions, model_predictions)",
    ): _WHY["RESHAPE"],
    (
        "clip_lora/stats.py",
        "mcnemar",
        '"p_value": mcnemar_exact_p(b, c),',
        '"p_value": mcnemar_exact_p(c, b),',
    ): _WHY["P_SYMMETRIC"],
    (
        "clip_lora/loss.py",
        "class_embeddings",
        "per_class = F.normalize(text_embeds.float(), dim=-1).view(num_classes, -1, text_embeds.shape[-1])",
        "per_class = F.normalize(text_embeds.float()).view(num_classes, -1, text_embeds.shape[-1])",
    ): _WHY["NORMALIZE_DIM"],
    (
        "clip_lora/loss.py",
        "class_embeddings",
        "return F.normalize(per_class.mean(dim=1), dim=-1)",
        "return F.normalize(per_class.sum(dim=1), dim=-1)",
    ): _WHY["SUM_MEAN"],
    (
        "clip_lora/loss.py",
        "class_embeddings",
        "return F.normalize(per_class.mean(dim=1), dim=-1)",
        "return F.normalize(per_class.mean(dim=1))",
    ): _WHY["NORMALIZE_DIM"],
    (
        "clip_lora/loss.py",
        "class_logits",
        "return logit_scale * F.normalize(image_embeds.float(), dim=-1) @ class_embeds.float().T",
        "return logit_scale * F.normalize(image_embeds.float()) @ class_embeds.float().T",
    ): _WHY["NORMALIZE_DIM"],
    (
        "clip_lora/loss.py",
        "clip_class_loss",
        "return logits.sum() * 0, logits",
        "return logits.sum() * 1, logits",
    ): _WHY["EMPTY_SUM"],
    (
        "clip_lora/loss.py",
        "clip_class_loss",
        "positive_log_probs = log_probs.masked_fill(~positives, -math.inf).masked_fill(~present[:, None], 0.0)",
        "positive_log_probs = log_probs.masked_fill(~positives, -math.inf).masked_fill(~present[:, None], 1.0)",
    ): _WHY["ABSENT_FILL"],
    (
        "clip_lora/batching.py",
        "_exact",
        "if denominator < 1 or numerator % denominator or numerator < denominator:",
        "if denominator < 0 or numerator % denominator or numerator < denominator:",
    ): _WHY["DENOMINATOR"],
    (
        "clip_lora/selection.py",
        "SelectionRule.better",
        "return old is None or (new > old if self.greater_is_better else new < old)",
        "return old is None or (new >= old if self.greater_is_better else new < old)",
    ): _WHY["STRICT_IN_BRANCH"],
    (
        "clip_lora/selection.py",
        "SelectionRule.better",
        "return old is None or (new > old if self.greater_is_better else new < old)",
        "return old is None or (new > old if self.greater_is_better else new <= old)",
    ): _WHY["STRICT_IN_BRANCH"],
    (
        "clip_lora/card_text.py",
        "_epochs",
        "and float(parts[-1][-1]).is_integer()",
        "and float(parts[-1][-0]).is_integer()",
    ): _WHY["RUN_START"],
    (
        "clip_lora/distributed.py",
        "gather_rows",
        "padded = F.pad(tensor, padding) if longest > tensor.shape[0] else tensor",
        "padded = F.pad(tensor, padding) if longest >= tensor.shape[0] else tensor",
    ): _WHY["PAD_ZERO"],
    (
        "clip_lora/run_dir.py",
        "result_flags",
        "normal = json.loads(json.dumps(run_config, sort_keys=True, default=str))",
        "normal = json.loads(json.dumps(run_config, sort_keys=False, default=str))",
    ): _WHY["SORT_KEYS"],
    (
        "clip_lora/checkpoints.py",
        "write_checkpoint_marker",
        'folder / CHECKPOINT_COMPLETE, json.dumps({"step": step, "files": files}, indent=1)',
        'folder / CHECKPOINT_COMPLETE, json.dumps({"step": step, "files": files}, indent=0)',
    ): _WHY["INDENT"],
    (
        "clip_lora/checkpoints.py",
        "write_checkpoint_marker",
        'folder / CHECKPOINT_COMPLETE, json.dumps({"step": step, "files": files}, indent=1)',
        'folder / CHECKPOINT_COMPLETE, json.dumps({"step": step, "files": files}, indent=2)',
    ): _WHY["INDENT"],
    (
        "clip_lora/checkpoints.py",
        "last_complete_checkpoint",
        "shutil.rmtree(path, ignore_errors=True)",
        "shutil.rmtree(path, ignore_errors=False)",
    ): _WHY["RMTREE"],
    (
        "clip_lora/trainer.py",
        "ClipLoraTrainer._save_checkpoint",
        "rotate_checkpoints(run_dir, limit, self.state.best_model_checkpoint, use_mtime=True)",
        "rotate_checkpoints(run_dir, limit, self.state.best_model_checkpoint)",
    ): _WHY["MTIME"],
    (
        "clip_lora/trainer.py",
        "ClipLoraTrainer._save_checkpoint",
        "rotate_checkpoints(run_dir, limit, self.state.best_model_checkpoint, use_mtime=True)",
        "rotate_checkpoints(run_dir, limit, self.state.best_model_checkpoint, use_mtime=False)",
    ): _WHY["MTIME"],
    (
        "clip_lora/trainer.py",
        "ClipLoraTrainer._determine_best_metric",
        "return super()._determine_best_metric(metrics, trial)",
        "return super()._determine_best_metric(trial, metrics)",
    ): _WHY["METRIC_NONE"],
}
EQUIVALENT.update(EQUIVALENT_SINCE)  # the modules added since issue 29
