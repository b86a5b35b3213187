"""The data behind the `clip-lora app` page: the run's classifier (fine-tuned and zero-shot) and what the page shows.

clip_lora/app.py (the verb) builds these and hands them to clip_lora/app_page.py (the Gradio page), so both import
this module and neither imports the other's caller: the page never imports the verb.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clip_lora import artifacts, changes, run_files


class Classifier:
    """The run's adapter on its base model; the same model with the adapter switched off is the zero-shot one."""

    def __init__(self, adapter: str, device: str = "cpu"):
        from clip_lora.calibration import read_temperature
        from clip_lora.predict import load_classifier

        self.model, self.processor, self.class_names, self.templates = load_classifier(
            None, adapter, None, None, device
        )
        # The fine-tuned probabilities with the T the run fitted on dev (temperature.json); zero-shot keeps T = 1.
        self.temperature = read_temperature(adapter) or 1.0

    def top_k(self, image, k: int = 5) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """(fine-tuned, zero-shot) top-k (class name, probability) for one PIL image."""
        from clip_lora.images import to_rgb
        from clip_lora.predict import predict_images, top_k

        image = to_rgb(image)
        fine_tuned = predict_images(
            self.model,
            self.processor,
            self.class_names,
            self.templates,
            [image],
            temperature=self.temperature,
        )
        with self.model.disable_adapter():
            zero_shot = predict_images(self.model, self.processor, self.class_names, self.templates, [image])
        return top_k(fine_tuned, self.class_names, k)[0], top_k(zero_shot, self.class_names, k)[0]


@dataclass
class RunView:
    """Everything the page shows, read from a run's folder; files a run (or a hub repo) lacks are None."""

    run_dir: Path
    results: dict
    fixed: list[changes.ChangedImage] | None
    broken: list[changes.ChangedImage] | None
    report_md: str | None
    confusion_matrix: Path | None
    zero_shot_confusion_matrix: Path | None

    @property
    def image_files(self) -> list[Path]:
        """The changed images' files found on this machine: the only images the page reads (inline thumbnails)."""
        return [c.path for c in (self.fixed or []) + (self.broken or []) if c.path]


def load_view(run_dir: Path, data_dir: str | None = None) -> RunView:
    def optional(name: str) -> Path | None:
        return run_dir / name if (run_dir / name).is_file() else None

    fixed = broken = None
    if optional(artifacts.ZERO_SHOT_PREDICTIONS) and optional(artifacts.PREDICTIONS):
        changed = changes.changed_images(run_dir, data_dir)
        fixed, broken = [c for c in changed if c.fixed], [c for c in changed if not c.fixed]
    report = optional(artifacts.CLASSIFICATION_REPORT_MD)
    return RunView(
        run_dir=run_dir,
        results=run_files.read_json_object(run_dir / artifacts.ALL_RESULTS)
        if (run_dir / artifacts.ALL_RESULTS).exists()
        else {},
        fixed=fixed,
        broken=broken,
        report_md=report.read_text() if report else None,
        confusion_matrix=optional(artifacts.CONFUSION_MATRIX),
        zero_shot_confusion_matrix=optional(artifacts.ZERO_SHOT_CONFUSION_MATRIX),
    )
