"""The class-prompt loss's VALUE, pinned against an explicit-loop reference, and the laws it obeys (hypothesis).

The reference is written from clip_class_loss's docstring, in plain Python floats, with no torch.nn.functional:
if the loss definition changes, `reference_clip_class_loss` is the one place to update.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from clip_lora.loss import capped_logit_scale, clip_class_loss
from testing_utils import make_tiny_trainer

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True, database=None)


def reference_terms(image_embeds, class_embeds, labels, scale) -> tuple[float, float]:
    """(image->text, text->image) terms of the loss, by explicit loops over images and classes.

    image->text: the mean over images of the cross-entropy of image i over all C classes.
    text->image: the mean over the classes present in the batch of -log of the summed probability, over the batch's
    images, of that class's images (every image of the class is a positive at once).
    """
    images = [[float(v) for v in row] for row in image_embeds]
    classes = [[float(v) for v in row] for row in class_embeds]
    ys = [int(y) for y in labels]
    logits = []
    for image in images:
        norm = math.sqrt(sum(v * v for v in image))
        logits.append([scale * sum(a * b for a, b in zip(image, cls, strict=True)) / norm for cls in classes])
    image_to_text = 0.0
    for row, y in zip(logits, ys, strict=True):
        image_to_text += math.log(sum(math.exp(v) for v in row)) - row[y]
    image_to_text /= len(ys)
    present = sorted(set(ys))
    text_to_image = 0.0
    for c in present:
        column = [row[c] for row in logits]
        denominator = sum(math.exp(v) for v in column)
        positive = sum(math.exp(v) for v, y in zip(column, ys, strict=True) if y == c)
        text_to_image += -math.log(positive / denominator)
    text_to_image /= len(present)
    return image_to_text, text_to_image


def reference_clip_class_loss(image_embeds, class_embeds, labels, scale, kind) -> float:
    image_to_text, text_to_image = reference_terms(image_embeds, class_embeds, labels, scale)
    return image_to_text if kind == "ce" else (image_to_text + text_to_image) / 2


def _inputs(seed: int, batch: int = 7, num_classes: int = 4, dim: int = 6):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, dim, generator=generator) * 3  # unnormalised on purpose
    classes = F.normalize(torch.randn(num_classes, dim, generator=generator), dim=-1)
    return images, classes


# Repeated classes (multi-positive text->image), a class absent from the batch (class 3), unequal class sizes.
LABELS = torch.tensor([0, 0, 0, 1, 2, 2, 1])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", ["contrastive", "ce"])
def test_loss_value_equals_the_explicit_loop_reference(seed, kind):
    images, classes = _inputs(seed)
    scale = 5.0
    image_to_text, text_to_image = reference_terms(images, classes, LABELS, scale)
    # Inputs on which a dropped or misdirected term shows: both terms far from 0 and far from each other.
    assert image_to_text > 0.5 and text_to_image > 0.5 and abs(image_to_text - text_to_image) > 0.05
    loss, logits = clip_class_loss(images, classes, LABELS, torch.tensor(scale), kind)
    expected = reference_clip_class_loss(images, classes, LABELS, scale, kind)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert logits.shape == (7, 4)


def test_the_reference_tells_the_likely_bugs_apart():
    # The value test above fails on each of these, because on its inputs they give other numbers.
    images, classes = _inputs(0)
    logits = 5.0 * F.normalize(images, dim=-1) @ classes.T
    right = reference_clip_class_loss(images, classes, LABELS, 5.0, "contrastive")
    present = LABELS.unique()
    positives = LABELS[None, :] == present[:, None]
    wrong_axis = logits[:, present].T.log_softmax(dim=0)  # softmax over classes instead of images
    wrong_t2i = -wrong_axis.masked_fill(~positives, -math.inf).logsumexp(dim=1).mean()
    image_only = F.cross_entropy(logits, LABELS)
    assert abs(right - image_only.item()) > 0.02
    assert abs(right - (image_only.item() + wrong_t2i.item()) / 2) > 0.02


def test_the_gradient_is_that_of_the_present_classes_only():
    # The loss computes every class's row and masks the absent ones out (no labels.unique(), which would read the
    # labels back from the device); an absent row is all -inf and must not leak a NaN into the gradient.
    images, classes = _inputs(3)
    images.requires_grad_(True)
    loss, _ = clip_class_loss(images, classes, LABELS, torch.tensor(5.0), "contrastive")
    (ours,) = torch.autograd.grad(loss, images)
    reference_images = images.detach().clone().requires_grad_(True)
    logits = 5.0 * F.normalize(reference_images, dim=-1) @ classes.T
    present = LABELS.unique()  # class 3 is absent
    positives = LABELS[None, :] == present[:, None]
    log_probs = logits[:, present].T.log_softmax(dim=1)
    text_to_image = -log_probs.masked_fill(~positives, -math.inf).logsumexp(dim=1).mean()
    reference = (F.cross_entropy(logits, LABELS) + text_to_image) / 2
    (expected,) = torch.autograd.grad(reference, reference_images)
    assert torch.isfinite(ours).all()
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-7)


labels_strategy = st.lists(st.integers(0, 3), min_size=2, max_size=8)


@SETTINGS
@given(labels=labels_strategy, seed=st.integers(0, 2**16), data=st.data())
def test_loss_is_invariant_to_the_order_of_the_batch(labels, seed, data):
    images, classes = _inputs(seed, batch=len(labels))
    labels = torch.tensor(labels)
    order = torch.tensor(data.draw(st.permutations(range(len(labels)))))
    for kind in ("contrastive", "ce"):
        loss, _ = clip_class_loss(images, classes, labels, torch.tensor(4.0), kind)
        shuffled, _ = clip_class_loss(images[order], classes, labels[order], torch.tensor(4.0), kind)
        assert shuffled.item() == pytest.approx(loss.item(), rel=1e-5, abs=1e-6)


@SETTINGS
@given(num_classes=st.integers(2, 6), seed=st.integers(0, 2**16), data=st.data())
def test_every_class_once_gives_cross_entropy_and_the_symmetric_clip_loss(num_classes, seed, data):
    images, classes = _inputs(seed, batch=num_classes, num_classes=num_classes)
    labels = torch.tensor(data.draw(st.permutations(range(num_classes))))
    logits = 3.0 * F.normalize(images, dim=-1) @ classes.T
    # `ce` is the cross-entropy over all classes, computed here as -log softmax by hand.
    ce = (
        sum(
            math.log(sum(math.exp(v) for v in row.tolist())) - row[y].item()
            for row, y in zip(logits, labels, strict=True)
        )
        / num_classes
    )
    loss, _ = clip_class_loss(images, classes, labels, torch.tensor(3.0), "ce")
    assert loss.item() == pytest.approx(ce, rel=1e-5)
    # One image per class: the multi-positive term is CLIP's own text->image cross-entropy.
    pairs = logits[:, labels]  # pairs[i, j]: image i against the class of image j
    targets = torch.arange(num_classes)
    clip_loss = (F.cross_entropy(pairs, targets) + F.cross_entropy(pairs.T, targets)) / 2
    loss, _ = clip_class_loss(images, classes, labels, torch.tensor(3.0), "contrastive")
    assert loss.item() == pytest.approx(clip_loss.item(), rel=1e-5)


@SETTINGS
@given(
    labels=st.lists(st.integers(0, 3), min_size=1, max_size=9),
    seed=st.integers(0, 2**16),
    kind=st.sampled_from(["contrastive", "ce"]),
)
def test_a_batch_of_any_size_equals_the_reference(labels, seed, kind):
    # Every shape a step can have: the short last batch of an epoch (down to one image), one class only, classes
    # absent, classes repeated; the loss and its logits are those of the explicit loops.
    images, classes = _inputs(seed, batch=len(labels))
    loss, logits = clip_class_loss(images, classes, torch.tensor(labels), torch.tensor(4.0), kind)
    assert loss.item() == pytest.approx(
        reference_clip_class_loss(images, classes, labels, 4.0, kind), rel=1e-5
    )
    assert logits.shape == (len(labels), 4)


@pytest.mark.parametrize("kind", ["contrastive", "ce"])
def test_an_empty_batch_is_a_zero_loss_with_zero_gradients(kind):
    # Every image of a micro-batch became unreadable: it still runs (DDP needs the graph) and must add nothing.
    images, classes = _inputs(0, batch=0)
    images.requires_grad_(True)
    classes.requires_grad_(True)
    loss, logits = clip_class_loss(images, classes, torch.zeros(0, dtype=torch.long), torch.tensor(4.0), kind)
    assert loss.item() == 0.0 and logits.shape == (0, 4)
    loss.backward()
    assert torch.equal(classes.grad, torch.zeros_like(classes))


@SETTINGS
@given(
    labels=st.lists(st.integers(0, 3), min_size=2, max_size=6),
    seed=st.integers(0, 2**16),
    angles=st.tuples(st.floats(0.05, 1.5), st.floats(0.05, 1.5)).filter(lambda a: abs(a[0] - a[1]) > 0.05),
)
def test_moving_an_image_toward_its_class_lowers_the_loss(labels, seed, angles):
    # Orthonormal classes; image 0 = cos(phi) * its class + sin(phi) * u, with u >= 0 on the other classes, so a
    # smaller phi raises its own class's similarity and lowers every other one: each term of the loss can only drop.
    labels = torch.tensor(labels)
    num_classes, dim = 4, 6
    classes = torch.eye(num_classes, dim)
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(len(labels), dim, generator=generator)
    u = torch.rand(dim, generator=generator)
    u[labels[0]] = 0.0
    u = F.normalize(u, dim=0)
    near, far = sorted(angles)

    def loss_at(phi: float, kind: str) -> float:
        moved = images.clone()
        moved[0] = math.cos(phi) * classes[labels[0]] + math.sin(phi) * u
        return clip_class_loss(moved, classes, labels, torch.tensor(5.0), kind)[0].item()

    for kind in ("contrastive", "ce"):
        assert loss_at(near, kind) < loss_at(far, kind)


@torch.no_grad()
def test_the_trainer_optimises_the_loss_it_was_given(tiny_model_dir, tmp_path):
    trainer = make_tiny_trainer(tiny_model_dir, tmp_path, num_images=6)
    model = trainer.model.eval()
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(6)])
    outputs = model(**batch)
    # One template per class: each class embedding is its prompt's embedding, normalised.
    classes = F.normalize(outputs.text_embeds, dim=-1)
    scale = min(model.base_model.model.logit_scale.exp().item(), 100.0)
    for kind in ("contrastive", "ce"):
        trainer.loss_kind = kind
        expected = reference_clip_class_loss(outputs.image_embeds, classes, batch["labels"], scale, kind)
        assert trainer.compute_loss(model, batch).item() == pytest.approx(expected, rel=1e-4)


def test_the_trainer_defaults_to_the_contrastive_loss(tiny_model_dir, tmp_path):
    assert make_tiny_trainer(tiny_model_dir, tmp_path, num_images=3).loss_kind == "contrastive"


@pytest.mark.parametrize(("temperature", "used"), [(1000.0, 100.0), (100.0, 100.0), (50.0, 50.0)])
def test_the_temperature_is_capped_at_clips_100(temperature, used):
    clip = SimpleNamespace(logit_scale=torch.tensor(math.log(temperature)))
    assert capped_logit_scale(clip).item() == pytest.approx(used)
