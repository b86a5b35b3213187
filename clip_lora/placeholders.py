"""Images that became unreadable after the pre-training check: placeholder rows, so batches never change shape.

    batch = collator(rows)                 # an unreadable image's row: blank pixels, label IGNORE_INDEX
    inputs = readable(batch)               # the loss sees the readable rows only (training)
    compute_metrics = readable_metrics(compute_metrics)   # metrics too; evaluation keeps every row's place
    ids = kept_ids(val_ids, trainer.kept_rows)            # the predictions CSV names exactly the rows it holds

A file deleted or rewritten between the check and its batch is logged and listed in skipped_images.txt when its
batch is built (images.make_transform, preprocessing's cache). Dropping it from the batch would make batches of
different sizes on different processes: evaluation's gather would then fail (or hang) and accelerate would cut
its padding repeats at the wrong rows. So the row stays, flagged with the label every Hugging Face loss ignores
(-100), until the loss (training) or the gathered predictions (evaluation) drop it. A batch left with no readable
image still runs (device_inputs.nonempty_pixels) and counts nothing.
"""

from __future__ import annotations

import numpy as np

from clip_lora.artifacts import SKIPPED_IMAGES
from clip_lora.errors import DataError

IGNORE_INDEX = -100  # the label of a placeholder row (= collator.IGNORE_INDEX, torch's default ignore_index)


def readable(inputs: dict) -> dict:
    """The batch without its placeholder rows: what the training loss sees. Meant for the batch on the host, before
    it is copied to the device (ClipLoraTrainer._prepare_inputs): there telling the rows apart reads nothing back."""
    labels = inputs["labels"]
    # one comparison for both: labels already on a device (a streamed train set, placed by accelerate) come back
    # first (one small copy); on the host .numpy() dispatches no torch op
    keep = (labels.numpy() if labels.device.type == "cpu" else labels.cpu().numpy()) != IGNORE_INDEX
    if keep.all():
        return inputs
    rows = np.flatnonzero(keep)
    return {**inputs, "pixel_values": inputs["pixel_values"][rows], "labels": labels[rows]}


def readable_metrics(compute_metrics):
    """compute_metrics over the readable rows only (Trainer calls it with every gathered row, placeholders too);
    a split whose every image became unreadable is one error line, not metrics of nothing."""
    from transformers import EvalPrediction

    def metrics(prediction) -> dict:
        keep = np.asarray(prediction.label_ids) != IGNORE_INDEX
        if keep.size and not keep.any():
            raise DataError(
                f"every one of the {keep.size} images being evaluated became unreadable after the pre-training "
                f"check (listed in {SKIPPED_IMAGES}); nothing to evaluate: restore or replace them and rerun."
            )
        return compute_metrics(
            EvalPrediction(
                predictions=np.asarray(prediction.predictions)[keep],
                label_ids=np.asarray(prediction.label_ids)[keep],
            )
        )

    return metrics


def kept_ids(image_ids: list[str], kept_rows) -> list[str]:
    """The ids of the rows an evaluation kept, in order (kept_rows: one flag per dataset row, or None: all kept)."""
    if kept_rows is None:
        return list(image_ids)
    if len(kept_rows) != len(image_ids):  # never name rows by guesswork
        raise ValueError(f"{len(kept_rows)} evaluated rows for {len(image_ids)} images")
    return [image_id for image_id, kept in zip(image_ids, kept_rows, strict=True) if kept]
