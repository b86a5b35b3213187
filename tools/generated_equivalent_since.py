"""The surviving generated mutants of the modules added to tools/generated_mutants.py in issue 29 (sync_check,
compare, provenance, faults, health, sources, class_names, placeholders), and why each changes no observable
behaviour; merged into generated_equivalent.EQUIVALENT (that file holds the older modules' reasons)."""

from __future__ import annotations

_SC, _CMP, _PROV = "clip_lora/sync_check.py", "clip_lora/compare_report.py", "clip_lora/provenance.py"
_SRC = "clip_lora/sources.py"
_LEN = "0 < len(parts) <= 2"
_LOCAL = 'if value in (".", "..") or value.startswith(("./", "../", "/", "~")) or os.sep != "/" and os.sep in value:'
_WHY = {
    "COMMUTATIVE": "torch.maximum is symmetric in its two arguments: the same tensor",
    "ONE_PROCESS": (
        "world_size() is at least 1, so `== 0` never returns early; with one process `spread` is 0.0 without any "
        "collective, so the check passes as before and only the operator's cost counters move"
    ),
    "COST_LOG": (
        "_seconds only feeds the info line that reports what the check cost (a share of training time); no result, "
        "artifact or decision reads it (bench/sync_check_cost.py measures the cost itself)"
    ),
    "TOLERANCE_EDGE": (
        "`spread` returns a float32 value as a Python float, and 1e-5 has no float32 representation, so a spread "
        "never equals RELATIVE_TOLERANCE: `>` and `>=` decide alike"
    ),
    "SAME_VERSIONS": (
        "this branch runs only when no library differs, and version_differences compares over the union of both "
        "runs' names, so both runs' version dicts are equal there"
    ),
    "ITER_CHUNK": (
        "the batch size of Dataset.iter only sets how many rows each chunk holds; the rows, their order and so the "
        "fingerprint are the same"
    ),
    "SAME_BATCH": "both columns come from the same Arrow batch, so they always have the same length",
    "SPLIT_NONEMPTY": "str.split always returns at least one part, so `0 < len(parts)` and `0 <= len(parts)` agree",
    "TWO_SLASHES": (
        "looks_local calls _hub_spelling only for values with at most one slash (two or more are local before it), "
        "and a value with exactly two slashes is refused by _hub_spelling's part count or by this check alike"
    ),
    "PREFIX_REDUNDANT": (
        "every value this clause catches is also no Hub spelling on the next line: '.', '..', a part that is empty "
        "('/m'), '.' or '..' ('./m', '../m') or starts with '~' fails HUB_NAME, so it is local either way"
    ),
    "POSIX": "os.sep is '/' on the POSIX systems this project runs on, so the Windows clause is False either way",
    "FIRST_PART": "the first part of a split is the same whatever the maximum number of splits (at least one)",
    "HOST_COPY": (
        "on a host tensor `labels.cpu()` is the tensor itself, so either branch hands the same array to the one "
        "comparison; the branch only spares the host a torch call"
    ),
    "LENGTH_CHECKED": (
        "the line before raises when the two lengths differ, so zip never meets lists of unequal length and strict "
        "changes nothing"
    ),
}


def _pair(path, function, before, after, why) -> tuple[tuple[str, str, str, str], str]:
    return (path, function, before, after), _WHY[why]


EQUIVALENT_SINCE = dict(
    [
        _pair(
            _SC,
            "spread",
            "scale = torch.maximum(high.abs(), low.abs()).clamp_min(torch.finfo(torch.float32).tiny)",
            "scale = torch.maximum(low.abs(), high.abs()).clamp_min(torch.finfo(torch.float32).tiny)",
            "COMMUTATIVE",
        ),
        _pair(
            _SC,
            "ReplicaSyncCheck.verify_checkpoint",
            "if world_size() == 1:",
            "if world_size() == 0:",
            "ONE_PROCESS",
        ),
        _pair(
            _SC,
            "ReplicaSyncCheck.verify_checkpoint",
            "self._seconds += time.perf_counter() - start",
            "self._seconds -= time.perf_counter() - start",
            "COST_LOG",
        ),
        _pair(
            _SC,
            "ReplicaSyncCheck.verify_checkpoint",
            "self._seconds += time.perf_counter() - start",
            "self._seconds += time.perf_counter() + start",
            "COST_LOG",
        ),
        _pair(
            _SC,
            "ReplicaSyncCheck.verify",
            "if gradient_spread > RELATIVE_TOLERANCE:",
            "if gradient_spread >= RELATIVE_TOLERANCE:",
            "TOLERANCE_EDGE",
        ),
        _pair(
            _SC,
            "ReplicaSyncCheck.verify",
            "elif weight_spread > RELATIVE_TOLERANCE:",
            "elif weight_spread >= RELATIVE_TOLERANCE:",
            "TOLERANCE_EDGE",
        ),
        _pair(
            _SC,
            "ReplicaSyncCheck.verify",
            'held = "gradients" if gradient_spread > RELATIVE_TOLERANCE else "LoRA weights"',
            'held = "gradients" if gradient_spread >= RELATIVE_TOLERANCE else "LoRA weights"',
            "TOLERANCE_EDGE",
        ),
        _pair(
            _CMP,
            "format_report",
            'f"{n} {versions[\'versions\'][0][n]}" for n in ordered(versions["versions"][0], LIBRARY_ORDER)',
            'f"{n} {versions[\'versions\'][0][n]}" for n in ordered(versions["versions"][1], LIBRARY_ORDER)',
            "SAME_VERSIONS",
        ),
        _pair(
            _PROV,
            "_files",
            "for batch in raw.iter(batch_size=1024)",
            "for batch in raw.iter(batch_size=1023)",
            "ITER_CHUNK",
        ),
        _pair(
            _PROV,
            "_files",
            "for batch in raw.iter(batch_size=1024)",
            "for batch in raw.iter(batch_size=1025)",
            "ITER_CHUNK",
        ),
        _pair(
            _PROV,
            "_files",
            'for image, image_id in zip(batch["image"], batch["image_id"], strict=True)',
            'for image, image_id in zip(batch["image"], batch["image_id"], strict=False)',
            "SAME_BATCH",
        ),
        _pair(_SRC, "_hub_spelling", _LEN, _LEN.replace("0 <", "0 <="), "SPLIT_NONEMPTY"),
        _pair(_SRC, "_hub_spelling", _LEN, _LEN.replace("<= 2", "<= 3"), "TWO_SLASHES"),
        _pair(_SRC, "looks_local", _LOCAL, _LOCAL.replace('"..") or', '"..") and', 1), "PREFIX_REDUNDANT"),
        _pair(_SRC, "looks_local", _LOCAL, _LOCAL.replace('"~")) or os.sep', '"~")) and os.sep'), "POSIX"),
        _pair(_SRC, "looks_local", _LOCAL, _LOCAL.replace("os.sep in value", "os.sep not in value"), "POSIX"),
        _pair(
            _SRC,
            "looks_local",
            'if value.count("/") > 1 or not _hub_spelling(value):',
            'if value.count("/") > 2 or not _hub_spelling(value):',
            "TWO_SLASHES",
        ),
        _pair(
            "clip_lora/placeholders.py",
            "readable",
            'keep = (labels.numpy() if labels.device.type == "cpu" else labels.cpu().numpy()) != IGNORE_INDEX',
            'keep = (labels.numpy() if labels.device.type != "cpu" else labels.cpu().numpy()) != IGNORE_INDEX',
            "HOST_COPY",
        ),
        _pair(
            "clip_lora/placeholders.py",
            "kept_ids",
            "return [image_id for image_id, kept in zip(image_ids, kept_rows, strict=True) if kept]",
            "return [image_id for image_id, kept in zip(image_ids, kept_rows, strict=False) if kept]",
            "LENGTH_CHECKED",
        ),
        _pair(
            _SRC,
            "looks_local",
            'first = value.split("/", 1)[0]',
            'first = value.split("/", 2)[0]',
            "FIRST_PART",
        ),
    ]
)
