"""A Trainer that fine-tunes CLIP as a classifier against its own class prompts.

    trainer = ClipLoraTrainer(model=peft_model, args=training_args, data_collator=collator, num_classes=10, ...)

Training: every step encodes the batch's images and the C*T class prompts (the text tower is adapted too, so its
features change with every step) and scores each image against each class. Evaluation: the class prompts are encoded
once per evaluation pass and reused for every batch; `prediction_step` returns logits over classes, so Trainer's
`compute_metrics` and `predict` work unchanged. Best-model selection breaks ties on the metric (selection.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from transformers import Trainer
from transformers.trainer_utils import (
    PREFIX_CHECKPOINT_DIR,
    EvalLoopOutput,
    SaveStrategy,
    has_length,
    rotate_checkpoints,
)

from clip_lora.device_inputs import nonempty_pixels
from clip_lora.distributed import forget_inference_preparation, gather_rows, scale_gradient, share_of
from clip_lora.health import StopRequestCallback
from clip_lora.lean_step import LeanStepMixin
from clip_lora.loss import (  # noqa: F401 - MAX_LOGIT_SCALE and capped_logit_scale re-exported
    MAX_LOGIT_SCALE,
    capped_logit_scale,
    class_embeddings,
    class_logits,
    clip_class_loss,
)
from clip_lora.placeholders import IGNORE_INDEX, readable, readable_metrics
from clip_lora.run_dir import (
    CHECKPOINT_COMPLETE as CHECKPOINT_COMPLETE,  # re-exported: checkpoints live in run_dir
)
from clip_lora.run_dir import last_complete_checkpoint as last_complete_checkpoint
from clip_lora.run_dir import write_checkpoint_marker
from clip_lora.sampling import SamplerEpoch, step_dataloader
from clip_lora.selection import SelectionRule, kept_evaluation
from clip_lora.sync_check import ReplicaSyncCheck

logger = logging.getLogger(__name__)


# compute_loss returns each micro-batch's share of the step's loss. transformers 5.25 lets a Trainer say so
# (`loss_is_scaled_for_ga`, below); older ones (5.17, the GPU machine's) have no such attribute and divide the
# result by the number of micro-batches whenever the model does not count `num_items_in_batch` itself (counting
# would cost a device read per step), so there compute_loss multiplies its share by that number first: the same
# loss and gradients under both (tests/test_distributed.py and make test-oldest; docs/library_internals.md).
TRAINER_DIVIDES_BY_MICRO_BATCHES = not hasattr(Trainer, "loss_is_scaled_for_ga")


@dataclass
class AccumulationWindow:
    """The micro-batches of one optimizer step on this process, and (contrastive, k > 1) their cached features."""

    batches: list
    next_index: int = 0
    images: list[torch.Tensor] | None = None  # per micro-batch, every process's rows, no gradient
    labels: list[torch.Tensor] | None = None


class ClipLoraTrainer(LeanStepMixin, Trainer):
    """Trainer subclass: CLIP class-prompt loss in `compute_loss`, class logits in `prediction_step`.

    The loss is the one of the global batch (every process, every accumulated micro-batch), so k micro-batches of b
    images on W processes give the loss and the gradients of one batch of W*k*b images:
    - image embeddings are gathered across processes (distributed.gather_rows), gradients flowing to their owner;
    - `ce` is a mean over images: each micro-batch contributes its images' summed cross-entropy over the window's
      image count;
    - `contrastive` couples the images (the text->image term), so it follows open_clip's --accum-freq: the image
      features of every micro-batch of the step are computed once without gradients, then each micro-batch is
      recomputed with gradients and scored against that cached rest. Its returned loss is the whole loss / k in
      value (the k shares add up to the logged loss) with the whole loss's gradient for its own images; the class
      prompts pass through the text tower in every micro-batch, so their gradient is taken 1/k of each time.
    Exact with lora_dropout 0; with dropout the cached features are another dropout sample, as in open_clip.
    """

    # compute_loss returns each micro-batch's share of the step's loss: Trainer must not divide it by k again.
    loss_is_scaled_for_ga = True

    def __init__(self, *args, num_classes: int, loss_kind: str = "contrastive", **kwargs):
        super().__init__(*args, **kwargs)
        # CLIPModel.forward takes **kwargs, so Trainer assumes the model scales its own loss for accumulation (and
        # counts num_items_in_batch for it); here compute_loss does all the scaling.
        self.model_accepts_loss_kwargs = False
        self.num_classes = num_classes
        self.loss_kind = loss_kind
        self._eval_class_embeds: torch.Tensor | None = None
        self._window: AccumulationWindow | None = None
        self.text_encoder_calls = 0  # how often the class prompts went through the text tower in evaluation
        self._vision_config = self.model.config.vision_config
        # set by main(): images unreadable during training, checked before checkpoints (lost_images.py)
        self.lost_images = None
        self.kept_rows = None  # after an evaluation: which of its dataset rows were readable (numpy bool)
        if self.compute_metrics is not None:
            self.compute_metrics = readable_metrics(self.compute_metrics)
        self._sampler_epoch = SamplerEpoch()
        # N processes must hold one adapter: checked at step 1 and before every checkpoint.
        self.sync_check = ReplicaSyncCheck()
        # A stop requested by Ctrl-C / SIGTERM acts at the next step even if a library swallowed it (faults.py).
        for callback in (self._sampler_epoch, self.sync_check, StopRequestCallback()):
            self.add_callback(callback)
        self._setup_lean_step()  # health record, device inputs, frozen weights in the autocast dtype (lean_step.py)

    def train(self, *args, **kwargs):
        # The zero-shot baseline ran before training: without this, accelerate would keep the model it prepared
        # for that evaluation and never wrap it in DistributedDataParallel (distributed.py).
        forget_inference_preparation(self)
        return super().train(*args, **kwargs)

    def get_train_dataloader(self) -> DataLoader:
        # This process's micro-batches of every optimizer step: the same images per step at any process count and
        # accumulation, the short last step without repeats (sampling.py). Not through accelerate, which would
        # shard the batches a second time and pad the last step with images from the start of the epoch.
        if not has_length(self.train_dataset):
            return super().get_train_dataloader()
        loader, self._sampler_epoch.sampler = step_dataloader(
            self.train_dataset, self.data_collator, self.args, self._train_batch_size
        )
        return loader

    def _save_checkpoint(self, model, trial):
        # Trainer writes checkpoint-N file by file. A checkpoint counts only once its .complete marker exists (made
        # by rename after every file is written), and older ones are rotated out only after that, so a kill at
        # any moment leaves the previous complete checkpoint in place for resuming.
        self.health.check(self.args)  # never a checkpoint of a diverged run
        if self.lost_images is not None:  # nor of a run that lost a class's images (lost_images.py)
            self.lost_images.check(self.is_world_process_zero(), self.state.global_step)
        self.sync_check.verify_checkpoint(self.state.global_step)  # one adapter, not N
        limit, self.args.save_total_limit = self.args.save_total_limit, None
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.save_total_limit = limit
        self.accelerator.wait_for_everyone()  # every process has written its RNG state into the checkpoint
        if self.args.should_save:
            run_dir = self._get_output_dir(trial=trial)
            folder = Path(run_dir) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            write_checkpoint_marker(folder, self.state.global_step)
            rotate_checkpoints(run_dir, limit, self.state.best_model_checkpoint, use_mtime=True)

    def _determine_best_metric(self, metrics: dict[str, float], trial) -> bool:
        # Trainer keeps the first of tied evaluations; selection.py breaks a tie on the metric by the dev loss (the
        # accuracy when selecting on the loss). best_global_step names the kept evaluation, so the best checkpoint,
        # load_best_model_at_end and the rotation in _save_checkpoint follow the rule. The best's values are read
        # back from the log history (this evaluation is already logged), so a resumed run ranks as before.
        if self.args.metric_for_best_model is None:
            return super()._determine_best_metric(metrics, trial)
        rule = SelectionRule.of(self.args.metric_for_best_model, self.args.greater_is_better)
        key = f"eval_{rule.metric}"
        if key not in metrics:  # Trainer's own error, listing the metrics there are
            return super()._determine_best_metric(metrics, trial)
        best = kept_evaluation(self.state.log_history, self.state.best_global_step, rule.metric)
        if (
            best is None and self.state.best_metric is not None
        ):  # no step recorded (no checkpoints): the metric
            best = {key: self.state.best_metric}
        if not rule.better(metrics, best):
            return False
        self.state.best_metric = metrics[key]
        if self.args.save_strategy in (SaveStrategy.STEPS, SaveStrategy.EPOCH, SaveStrategy.BEST):
            self.state.best_global_step = self.state.global_step
        return True

    def logit_scale(self, model) -> torch.Tensor:
        return capped_logit_scale(self._logit_scale_param)

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batches, num_items = super().get_batch_samples(epoch_iterator, num_batches, device)
        # Trainer fetches one optimizer step's micro-batches at once.
        self._window = AccumulationWindow(batches)
        return batches, num_items

    def _take_micro_batch(self, model) -> tuple[AccumulationWindow | None, int]:
        """The current optimizer step's window and this micro-batch's place in it (None outside training steps)."""
        window = self._window
        if not model.training or window is None or window.next_index >= len(window.batches):
            return None, 0
        window.next_index += 1
        return window, window.next_index - 1

    @torch.no_grad()
    def _cache_window(self, model, window: AccumulationWindow) -> None:
        """Image embeddings and labels of every micro-batch of the window, gathered over processes, no gradients."""
        clip = self.accelerator.unwrap_model(model)
        window.images, window.labels = [], []
        for batch in window.batches:
            batch = self._prepare_inputs(batch)  # training: placeholder rows already left out, on the host
            pixels, rows = nonempty_pixels(batch["pixel_values"], self._vision_config)
            with self.accelerator.autocast():
                images = clip.get_image_features(pixel_values=pixels).pooler_output[:rows]
            window.images.append(gather_rows(images.float())[0])
            window.labels.append(gather_rows(batch["labels"])[0])

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        window, index = self._take_micro_batch(model)
        # One forward through the (possibly DDP-wrapped) model, so gradient sync sees every adapted weight.
        pixels, rows = nonempty_pixels(inputs["pixel_values"], self._vision_config)
        outputs = model(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], pixel_values=pixels
        )
        class_embeds = class_embeddings(outputs.text_embeds, self.num_classes)
        images, own_rows = gather_rows(outputs.image_embeds[:rows])
        labels, _ = gather_rows(inputs["labels"])
        scale = self.logit_scale(model)
        parts = len(window.batches) if window is not None else 1
        if self.loss_kind == "ce" and parts > 1:
            if window.labels is None:  # the window's image count over all processes (labels only: no pixels)
                window.labels = [
                    gather_rows(readable(b)["labels"].to(self.args.device, non_blocking=True))[0]
                    for b in window.batches
                ]
            logits = class_logits(images, class_embeds, scale)
            # The window's images over every process (0 only if every one of them became unreadable).
            images_in_window = max(1, sum(len(x) for x in window.labels))
            loss = F.cross_entropy(logits, labels, reduction="sum") / images_in_window
        elif parts > 1:
            if window.images is None:
                self._cache_window(model, window)
            before = window.images[:index]
            whole_images = torch.cat([*before, images, *window.images[index + 1 :]])
            whole_labels = torch.cat([*window.labels[:index], labels, *window.labels[index + 1 :]])
            whole, whole_logits = clip_class_loss(
                whole_images, scale_gradient(class_embeds, 1 / parts), whole_labels, scale, self.loss_kind
            )
            loss = share_of(whole, parts)
            offset = sum(len(x) for x in before)
            logits = whole_logits[offset : offset + len(labels)]
        else:
            loss, logits = clip_class_loss(images, class_embeds, labels, scale, self.loss_kind)
        if parts > 1 and TRAINER_DIVIDES_BY_MICRO_BATCHES:
            loss = loss * parts  # undone by training_step's division: the same share
        return (loss, {"logits": logits[own_rows]}) if return_outputs else loss

    def evaluation_loop(self, *args, **kwargs):
        # The prompts are encoded once per pass: the adapter may have changed since the last one.
        self._eval_class_embeds = None
        try:
            output = super().evaluation_loop(*args, **kwargs)
        finally:
            self._eval_class_embeds = None
        if output.predictions is not None and output.label_ids is not None:
            # One row per dataset row came back (gathered in order, the padding repeats cut); the rows of images
            # that became unreadable are dropped here, and kept_rows says which ones remain (the CSVs name them).
            self.kept_rows = np.asarray(output.label_ids) != IGNORE_INDEX
            output = EvalLoopOutput(
                predictions=np.asarray(output.predictions)[self.kept_rows],
                label_ids=np.asarray(output.label_ids)[self.kept_rows],
                metrics=output.metrics,
                num_samples=output.num_samples,
            )
            # Trainer averages per-batch losses, and under DDP the last batch of a process is padded with repeated
            # images; the logits it returns are every image's exactly once, on every process.
            logits = torch.as_tensor(output.predictions, dtype=torch.float64)
            loss = F.cross_entropy(logits, torch.as_tensor(output.label_ids, dtype=torch.long)).item()
            key = f"{kwargs.get('metric_key_prefix', 'eval')}_loss"  # Trainer passes it by keyword
            if key in output.metrics:
                output.metrics[key] = loss
        return output

    @torch.no_grad()
    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        clip = self.accelerator.unwrap_model(model)
        # get_*_features bypass the autocast accelerate wraps around forward: evaluate in the training's precision.
        with self.accelerator.autocast():
            if self._eval_class_embeds is None:
                text = clip.get_text_features(
                    input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
                )
                self._eval_class_embeds = class_embeddings(text.pooler_output, self.num_classes)
                self.text_encoder_calls += 1
            pixels, rows = nonempty_pixels(inputs["pixel_values"], self._vision_config)
            image = clip.get_image_features(pixel_values=pixels).pooler_output[:rows]
        logits = class_logits(image, self._eval_class_embeds, self.logit_scale(model))
        # Placeholder rows (unreadable images: blank pixels, label IGNORE_INDEX) ran with the others and keep their
        # place with zero logits, so every process returns one row per dataset row and the gather lines up. Masked
        # by `where`, not by boolean indexing, which would read the mask back to the host at every batch.
        labels = inputs["labels"]
        real = labels != IGNORE_INDEX
        logits = torch.where(real[:, None], logits, 0.0)
        # Image->text cross-entropy only: defined per image, so the evaluation loss does not depend on the batch
        # size, the order or the number of processes (the text->image term would). The mean over readable rows.
        readable_rows = real.sum().clamp(min=1)
        loss = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum") / readable_rows
        return loss.detach(), (None if prediction_loss_only else logits.detach()), labels
