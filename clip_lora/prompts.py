"""Class-prompt templates: one template, the CLIP paper's 80 ImageNet templates, or a file of your own.

    templates = resolve_templates("openai_imagenet", single="a photo of a {}.")   # 80 templates
    templates = resolve_templates("single", single="a photo of a {}.")            # ["a photo of a {}."]
    templates = resolve_templates("my_templates.txt", single=...)                 # one template per line

With T templates per class the collator builds C*T prompts (class-major) and `trainer.class_embeddings` averages the
normalised prompt embeddings of each class and renormalises: the prompt ensemble of Radford et al. (2021),
"Learning Transferable Visual Models From Natural Language Supervision", section 3.1.4.
"""

from __future__ import annotations

import dataclasses
import string
from pathlib import Path

from clip_lora.errors import PromptError  # noqa: F401 - re-exported: raised here, caught in cli

# The 80 ImageNet templates of the CLIP paper, in the order of OpenAI's released notebook
# "Prompt_Engineering_for_ImageNet.ipynb" (github.com/openai/CLIP, notebooks/); copied verbatim.
OPENAI_IMAGENET_TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
)
DEFAULT_TEMPLATE = "a photo of a {}"  # the seed's prompt, no period: --prompt_template's default
TEMPLATE_SETS = ("single", "openai_imagenet")


def template_problem(template: str) -> str | None:
    """Why `template` cannot take a class name through str.format (None when it can): exactly one bare '{}'."""
    try:
        fields = [
            (name, spec, conv)
            for _, name, spec, conv in string.Formatter().parse(template)
            if name is not None
        ]
    except ValueError:
        return "has an unmatched '{' or '}' (write '{{' or '}}' for a literal brace)"
    if not fields:
        return "has no '{}' for the class name"
    named = [name for name, _, _ in fields if name != ""]
    if named:
        return f"has a field {{{named[0]}}}; only '{{}}' (the class name) is allowed"
    if len(fields) > 1:
        return "must contain '{}' exactly once (the class name goes there)"
    if fields[0][1] or fields[0][2]:
        return "has a format spec or conversion in '{}'; write a bare '{}'"
    return None


def resolve_templates(spec: str, single: str = "a photo of a {}.") -> list[str]:
    """'single' -> [single]; 'openai_imagenet' -> the paper's 80; anything else is a file, one template per line."""
    if spec == "single":
        templates = [single]
    elif spec == "openai_imagenet":
        templates = list(OPENAI_IMAGENET_TEMPLATES)
    else:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise PromptError(
                f"--prompt_templates {spec!r} is neither {' nor '.join(TEMPLATE_SETS)} nor a file"
            )
        # Blank lines and '#' comments are skipped, so a template file can document itself.
        try:
            lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        except UnicodeDecodeError as err:
            raise PromptError(
                f"--prompt_templates {path} is not UTF-8 text (byte {err.object[err.start]:#04x} at offset "
                f"{err.start}); save it as UTF-8"
            ) from None
        except OSError as err:
            raise PromptError(f"cannot read --prompt_templates {path} ({err.strerror or err})") from None
        templates = [line for line in lines if line and not line.startswith("#")]
        if not templates:
            raise PromptError(f"{path} holds no templates; write one per line, e.g. 'a photo of a {{}}.'")
    for template in templates:
        problem = template_problem(template)
        if problem:
            raise PromptError(f"template {template!r} {problem}")
    return templates


def single_template_metrics(
    trainer, dataset, tokenizer, class_names: list[str], template: str, prefix: str
) -> dict:
    """Evaluate `dataset` with one template instead of the trainer's ensemble (the 'single vs ensemble' report)."""
    from collator import ClipClassificationCollator  # here: this module is read before torch is imported

    ensemble = trainer.data_collator
    single = ClipClassificationCollator.from_class_names(tokenizer, class_names, [template])
    # Only the prompts change: everything else (e.g. the normalisation of cached uint8 pixels) stays as it was.
    trainer.data_collator = dataclasses.replace(
        ensemble, prompt_input_ids=single.prompt_input_ids, prompt_attention_mask=single.prompt_attention_mask
    )
    try:
        metrics = trainer.predict(dataset, metric_key_prefix=prefix).metrics
    finally:
        trainer.data_collator = ensemble
    return {k: v for k, v in metrics.items() if k.endswith(("_accuracy", "_macro_f1", "_loss"))}
