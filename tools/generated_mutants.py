"""What `make mutation-generated` mutates (tools/mutagen.py): the number-making modules and their fast tests (the
reasons the survivors are equivalent: tools/generated_equivalent.py).

A target names a file, the functions in it that make reported numbers or guard outputs (None: all of them), and the
fast tests that cover it, the most likely to fail first (pytest runs with -x). A survivor that no test can kill,
because it changes no observable behaviour, gets an entry in tools/generated_equivalent.py; every other survivor is a
test to write.
"""

from __future__ import annotations

from mutagen import Target

METRICS = ("tests/test_metrics_reference.py", "tests/test_metrics_shapes.py", "tests/test_metrics.py")
SELECTION = (
    "tests/test_card_selection.py",
    "tests/test_selection.py::test_a_tie_on_dev_accuracy_goes_to_the_lower_dev_loss_in_trainer_and_on_the_card",
    "tests/test_selection.py::test_accuracy_comes_first_and_a_loss_metric_is_broken_by_accuracy",
    "tests/test_selection.py::test_a_run_from_before_the_tie_breaker_is_described_as_it_was_made",
)
BATCH_RULES = (
    "tests/test_batching.py",
    "tests/test_scale.py::test_global_batch_is_derived",
    "tests/test_scale.py::test_optimizer_steps_follow_the_trainers_arithmetic",
    "tests/test_scale.py::test_global_batch_that_cannot_divide_is_refused",
)
COMPARE_REPORT = (
    "tests/test_compare.py::test_the_paired_counts_and_their_lines_from_hand_built_runs",
    "tests/test_compare.py::test_the_same_versions_and_commit_and_an_uncomputed_test_are_said_so",
)
RUN_DIR = (
    "tests/test_run_dir_checkpoints.py",
    "tests/test_run_dir.py::test_a_checkpoint_with_a_same_size_corrupt_file_is_damaged",
    "tests/test_run_dir.py::test_every_result_flag_change_is_listed",
)

TARGETS = (
    Target(
        "metrics.py",
        METRICS,
        (
            "Accuracy._compute",
            "MacroF1.__init__",
            "MacroF1._compute",
            "ClassificationReport._compute",
            "_as_int_arrays",
            "confusion_matrix",
            "_safe_div",
            "_per_class_stats",
            "_present_mean",
            "compute_metrics",
            "classification_report",
            "format_report",
            "report_to_markdown",
            "save_report",
        ),
    ),
    Target(
        "collator.py",
        ("tests/test_collator_shapes.py", "tests/test_collator.py", "tests/test_collator_values.py"),
    ),
    Target("clip_lora/stats.py", ("tests/test_stats.py", "tests/test_stats_properties.py")),
    Target("clip_lora/loss.py", ("tests/test_loss_reference.py", "tests/test_trainer.py")),
    Target("clip_lora/sampling.py", ("tests/test_sampling.py",)),
    Target(
        "clip_lora/batching.py",
        (*BATCH_RULES, "tests/test_sampling.py"),
        ("_exact", "resolve_batch", "steps_per_epoch", "optimizer_steps", "describe", "batch_line"),
    ),
    Target("clip_lora/selection.py", SELECTION),
    Target("clip_lora/card_text.py", SELECTION, ("selection", "_epochs", "_tie_outcome", "selection_text")),
    Target("clip_lora/model_card.py", ("tests/test_card_selection.py",), ("_templates",)),
    Target(
        "clip_lora/distributed.py",
        ("tests/test_distributed_gather.py",),
        (
            "world_size",
            "rank",
            "_all_gather_cat",
            "_AllGatherSum.forward",
            "_AllGatherSum.backward",
            "gather_rows",
            "scale_gradient",
            "share_of",
        ),
    ),
    Target(
        "clip_lora/run_dir.py",
        RUN_DIR,
        (
            "is_finished",
            "result_flags",
            "changed_flags",
        ),
    ),
    Target(
        "clip_lora/checkpoints.py",
        RUN_DIR,
        (
            "write_checkpoint_marker",
            "_sha256",
            "checkpoint_damage",
            "last_complete_checkpoint",
        ),
    ),
    Target(
        "clip_lora/trainer.py",
        ("tests/test_trainer_checkpoints.py", *SELECTION),
        ("ClipLoraTrainer._save_checkpoint", "ClipLoraTrainer._determine_best_metric"),
    ),
    # The modules that landed since (issue 29), each with its fast unit tests.
    Target(
        "clip_lora/sync_check.py",
        ("tests/test_sync_check.py",),
        ("fingerprint", "spread", "ReplicaSyncCheck.verify_checkpoint", "ReplicaSyncCheck.verify"),
    ),
    Target(
        "clip_lora/compare.py",
        COMPARE_REPORT,
        ("paired_test",),
    ),
    Target("clip_lora/compare_report.py", COMPARE_REPORT, ("format_report",)),
    Target(
        "clip_lora/provenance.py",
        (
            "tests/test_provenance.py::test_the_recorded_batch_counts_every_process",
            "tests/test_provenance.py::test_a_streamed_split_is_recorded_as_streamed_without_counts",
            "tests/test_provenance.py::test_fingerprint_counts_every_split_and_sees_the_same_images_whatever_the_seed",
            "tests/test_provenance.py::test_fingerprint_changes_when_one_val_file_does",
        ),
        ("_file_size", "_files", "_sha256", "data_fingerprint", "run_provenance"),
    ),
    Target(
        "clip_lora/faults.py",
        (
            "tests/test_faults.py::test_each_family_is_one_line_with_its_status",
            "tests/test_faults.py::test_a_torch_save_error_without_errno_is_a_failed_write_and_bugs_stay_tracebacks",
            "tests/test_faults.py::test_the_resume_hint_names_the_newest_complete_checkpoint_by_number",
            "tests/test_faults.py::test_a_failed_save_is_a_full_disk_below_64_mib_free",
            "tests/test_faults.py::test_a_safetensors_io_error_without_an_errno_is_a_failed_write_and_other_errors_stay_bugs",
            "tests/test_faults.py::test_a_runtime_error_from_torch_load_is_no_failed_write",
        ),
        ("_chain", "_errno_of", "_failed_save", "resume_clause", "_free_bytes", "_write_failed", "describe"),
    ),
    Target(
        "clip_lora/health.py",
        ("tests/test_health.py::test_the_first_non_finite_record_is_named_with_its_step",),
        ("TrainingHealth._record", "TrainingHealth.check", "TrainingHealth.on_optimizer_step"),
    ),
    Target("clip_lora/sources.py", ("tests/test_sources.py",), ("_hub_spelling", "looks_local", "resolve")),
    Target(
        "clip_lora/class_names.py",
        ("tests/test_class_names.py",),
        ("normalise", "text_limit"),
    ),
    Target("clip_lora/placeholders.py", ("tests/test_placeholders.py",), ("readable", "kept_ids")),
)
