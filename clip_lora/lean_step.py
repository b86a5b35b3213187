"""The training step without the host work it does not need (ClipLoraTrainer mixes this in).

On a GPU this job's step is bound by the host (bench/RESULTS.md: ~110 ms of a ~130 ms step went to dispatching
~7,400 operations and waiting): the kernels are small, so every operation and every read-back counts. Counted per
step by `python bench/host_step.py`. Each change keeps every number the same:
- no read of a device value on a step that does not log: the health record stays on the device (health.py),
  Trainer's NaN/inf filter of the loss is off (`logging_nan_inf_filter`, arguments.py), the contrastive loss
  finds the classes present without `unique()` (loss.py), the text tower gets its attention mask prepared once
  (device_inputs.py);
- no walk over every weight of the model: gradients are clipped over the trainable tensors only (the frozen
  150M have none), the FLOP count takes the parameter count once, the logit scale is looked up once;
- under bf16/fp16 the frozen Linear and Conv2d weights are stored in that dtype once: autocast casts them to it at
  every forward anyway (the same rounding, so the same values), ~700 casts a step and half their memory;
- batches reach the device without blocking, uint8 pixels as uint8 (device_inputs.py).
"""

from __future__ import annotations

import dataclasses

import torch
from transformers import TrainerCallback

from clip_lora.device_inputs import DeviceInputs
from clip_lora.health import TrainingHealth
from clip_lora.placeholders import readable

# The aten operations that make the host wait for the device: a value read back (`.item()`, `float()`, `bool()`
# of a tensor) or an output sized by the data. None may run in a training step that does not log.
HOST_READ_OPS = frozenset(
    {
        "_local_scalar_dense",
        "is_nonzero",
        "_unique2",
        "unique_dim",
        "unique_consecutive",
        "nonzero",
        "masked_select",
        "equal",
        "allclose",
    }
)


def reads_device(func, args) -> bool:
    """True for a dispatched aten call that makes the host wait for the device: one of HOST_READ_OPS, or indexing
    with a boolean mask (`x[mask]`, `x[mask] = y`), whose kernel counts the mask's True values on the host first."""
    name = func.overloadpacket.__name__
    if name in HOST_READ_OPS:
        return True
    if name in ("index", "index_put", "index_put_") and len(args) > 1:
        return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1] or ())
    return False


def store_frozen_weights_in(model: torch.nn.Module, dtype: torch.dtype) -> int:
    """Frozen nn.Linear / nn.Conv2d weights and biases -> `dtype` (the autocast dtype); returns how many modules.
    Trainable tensors (the LoRA matrices) keep their fp32 master copy; layer norms and embeddings, which autocast
    runs in fp32, are left as they are."""
    changed = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear | torch.nn.Conv2d) and not module.weight.requires_grad:
            module.to(dtype)
            changed += 1
    return changed


class NoWalksPerStep(TrainerCallback):
    """For the length of a train() call, the two whole-model walks Trainer makes at every step become cheap:
    `model.train()` at every micro-batch (a walk over ~1,000 modules to set a flag that is already set) and
    `model.zero_grad()` after every optimizer step (a walk over every parameter, frozen ones included, which never
    have a gradient). Measured with cProfile at ViT-B/16 depth: ~15 and ~11 ms of a ~170 ms CPU step.
    `train()` still walks whenever the model is not in training mode (after an evaluation set it to eval)."""

    def __init__(self, trainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        wrapped, inner = self.trainer.model_wrapped, self.trainer.model
        trainable = self.trainer.trainable_tensors()

        def train(mode: bool = True):
            if not (mode and inner.training and wrapped.training):  # eval() on either one: walk as usual
                type(wrapped).train(wrapped, mode)
            return wrapped

        def zero_grad(set_to_none: bool = True):
            for tensor in trainable:
                tensor.grad = None

        # One full walk now: a model fresh from from_pretrained is in eval mode below a PeftModel wrapper that is
        # not, so the top-level flag alone says nothing until every module has been set once.
        type(wrapped).train(wrapped, True)
        wrapped.train, wrapped.zero_grad = train, zero_grad

    def on_train_end(self, args, state, control, **kwargs):
        for name in ("train", "zero_grad"):
            self.trainer.model_wrapped.__dict__.pop(name, None)


class LeanStepMixin:
    """Trainer overrides that keep the host off the critical path; `_setup_lean_step()` from __init__."""

    checks_health_itself = True  # bench/host_step.py: main() passes no health callback any more

    def _setup_lean_step(self) -> None:
        self.health = TrainingHealth()
        for callback in (self.health, NoWalksPerStep(self)):
            self.add_callback(callback)
        self._trainable: list[torch.Tensor] | None = None
        self._num_parameters: int | None = None
        self._logit_scale_param = self.model.logit_scale  # through PeftModel's attribute lookup, once
        if self.args.bf16 or self.args.fp16:
            store_frozen_weights_in(self.model, torch.bfloat16 if self.args.bf16 else torch.float16)
        if (
            self.args.torch_compile
        ):  # a backend that cannot compile (no compiler, an unsupported op) runs eager
            torch._dynamo.config.suppress_errors = True
        collator = self.data_collator
        if (
            self.args.device.type == "cuda"
            and dataclasses.is_dataclass(collator)
            and hasattr(collator, "normalize")
        ):
            # uint8 pixels cross to the GPU as uint8 and are normalised there (on CPU the loader workers do it)
            self.data_collator = dataclasses.replace(collator, defer_normalization=True)
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        self._to_device = DeviceInputs(
            self.args.device, base.text_model.config, getattr(self.data_collator, "normalize", None)
        )

    def _prepare_inputs(self, inputs):
        # Training: the loss sees the readable rows only, told apart here on the host, before the copy (on the
        # device, that would read the labels back at every step).
        if self.model.training:
            inputs = readable(inputs)
        return self._to_device(inputs)

    def trainable_tensors(self) -> list[torch.Tensor]:
        if self._trainable is None:
            self._trainable = [p for p in self.model.parameters() if p.requires_grad]
        return self._trainable

    def _clip_grad_norm(self, model):
        if self.is_fsdp_enabled or self.is_deepspeed_enabled:
            return super()._clip_grad_norm(model)
        return self.accelerator.clip_grad_norm_(self.trainable_tensors(), self.args.max_grad_norm)

    def _get_grad_norm(self, model, grad_norm=None):
        if grad_norm is None and not (self.is_fsdp_enabled or self.is_deepspeed_enabled):
            # --max_grad_norm 0: no clipping, but the norm is still logged and recorded
            grad_norm = self.accelerator.clip_grad_norm_(self.trainable_tensors(), float("inf"))
        grad_norm = super()._get_grad_norm(model, grad_norm=grad_norm)
        if isinstance(grad_norm, torch.Tensor):
            self.health.record_gradient_norm(self.state.global_step + 1, grad_norm)
        return grad_norm

    def floating_point_ops(self, inputs) -> int:
        # Trainer's estimate, 6 x input tokens x parameters, with the parameters counted once, not every step.
        main_input = getattr(self.model, "main_input_name", "input_ids")
        if main_input not in inputs or not hasattr(self.model, "num_parameters"):
            return 0
        if self._num_parameters is None:
            self._num_parameters = self.model.num_parameters(exclude_embeddings=True)
        return 6 * inputs[main_input].numel() * self._num_parameters

    def log(self, logs, *args, **kwargs):
        self.health.check(
            self.args
        )  # the host reads values now anyway: a non-finite run stops before it logs
        return super().log(logs, *args, **kwargs)

    def evaluate(self, *args, **kwargs):
        self.health.check(self.args)
        return super().evaluate(*args, **kwargs)

    def get_eval_dataloader(self, eval_dataset=None):
        dataset = self.eval_dataset if eval_dataset is None else eval_dataset
        return self._loader_of(dataset, "Evaluation") or super().get_eval_dataloader(eval_dataset)

    def get_test_dataloader(self, test_dataset):
        return self._loader_of(test_dataset, "test") or super().get_test_dataloader(test_dataset)

    def _loader_of(self, dataset, description: str):
        """With persistent workers: one loader per (dataset, collator), built once, its workers alive across
        passes. (Trainer keeps a single one under the key 'eval': `evaluate(another_dataset)` would read the first
        dataset, and a swapped collator, as the single-template report does, would go unseen.)"""
        if not self.args.dataloader_persistent_workers or dataset is None or isinstance(dataset, str):
            return None
        loaders = self.__dict__.setdefault("_loaders", {})
        key = (id(dataset), id(self.data_collator))
        if key not in loaders:  # the objects are kept with their loader, so their ids cannot be reused
            loader = self._get_dataloader(
                dataset=dataset,
                description=description,
                batch_size=self.args.eval_batch_size,
                sampler_fn=self._get_eval_sampler,
            )
            loaders[key] = (dataset, self.data_collator, loader)
        return loaders[key][2]
