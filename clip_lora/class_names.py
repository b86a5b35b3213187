"""Class names: ONE layer between whatever names the classes (folders, --class_names_file, a Hub ClassLabel,
--labels, an adapter's card) and the prompts the text tower reads. Train, eval, predict, export and the app use it.

    names = normalise(raw, origins=folders, where="the class folders of data/train")   # ClassNameError if unusable
    tokens = prompt_tokens(tokenizer, names, templates, max_length=text_limit(model, tokenizer))

- Unicode NFC, surrounding blanks stripped: `café` typed (NFC) and `café` in a folder name written by macOS (NFD)
  are one name, and the prompts, the reports and the card all carry the same string.
- At least two classes: a one-class "classifier" trains nothing and reports accuracy 1.0.
- No two classes with the same name after normalisation, nor with the same prompt tokens: CLIP's tokenizer
  lowercases, so `Cat` and `cat` folders give identical prompts and the model cannot tell them apart. Refused,
  naming the pair (and the folders they come from).
- Every prompt fits the text tower: its length in tokens is checked against the model's limit (CLIP: 77 positions,
  read from the model's text config and the tokenizer), never truncated silently or crashing in the tokenizer.
"""

from __future__ import annotations

import unicodedata

from clip_lora.errors import ClassNameError

MIN_CLASSES = 2
UNBOUNDED = 10**6  # tokenizers without a configured limit report ~1e30 as model_max_length


def _shown(a: str, b: str) -> tuple[str, str]:
    """Two names for a message: ascii() when they differ only in Unicode form (printed, they would look the same)."""
    nfc = unicodedata.normalize
    return (ascii(a), ascii(b)) if a != b and nfc("NFC", a) == nfc("NFC", b) else (repr(a), repr(b))


def normalise(
    names, origins=None, where: str = "the class names", min_classes: int = MIN_CLASSES
) -> list[str]:
    """NFC-normalised, stripped class names; ClassNameError (one line, naming `where` and the origins) for an empty
    name, two names that are one after normalisation, or fewer than `min_classes`."""
    names = [str(n) for n in names]
    origins = [str(o) for o in origins] if origins is not None else None
    out = [unicodedata.normalize("NFC", n).strip() for n in names]
    seen: dict[str, int] = {}
    for i, name in enumerate(out):
        origin = f" (from {origins[i]!r})" if origins and origins[i] != names[i] else ""
        if not name:
            raise ClassNameError(
                f"{where}: class name {names[i]!r}{origin} is empty; give every class a name."
            )
        if name in seen:
            j = seen[name]
            first, second = (origins[j], origins[i]) if origins else (names[j], names[i])
            if first == second:
                raise ClassNameError(f"{where}: {name!r} is there twice; name each class once.")
            a, b = _shown(first, second)
            how = "map to" if origins and (origins[i] != names[i] or origins[j] != names[j]) else "are"
            raise ClassNameError(
                f"{where}: {a} and {b} {how} the same class name {name!r} (after Unicode NFC normalisation); "
                "give each class its own name."
            )
        seen[name] = i
    if len(out) < min_classes:
        found = f"only {len(out)} class" + (f" ({out[0]!r})" if out else "es")
        raise ClassNameError(
            f"{where}: {found}; a classifier needs at least {min_classes} (with one, every image is 'right')."
        )
    return out


def text_limit(model=None, tokenizer=None) -> int | None:
    """The most tokens a prompt may have: the text tower's position embeddings (the model config) and the
    tokenizer's model_max_length, whichever is known and smaller; None when neither says."""
    limits = []
    text_config = getattr(getattr(model, "config", model), "text_config", None)
    if getattr(text_config, "max_position_embeddings", None):
        limits.append(int(text_config.max_position_embeddings))
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if tokenizer_limit and tokenizer_limit < UNBOUNDED:
        limits.append(int(tokenizer_limit))
    return min(limits) if limits else None


def prompt_tokens(tokenizer, class_names: list[str], templates: list[str], max_length: int | None = None):
    """The C*T prompts (class-major) tokenized and padded, as tensors; ClassNameError when a prompt is longer than
    the text tower takes, or when two classes' prompts are the same token ids (the model could not tell them apart)."""
    names = normalise(class_names)
    prompts = [template.format(name) for name in names for template in templates]
    ids = [[int(i) for i in row] for row in tokenizer(prompts)["input_ids"]]  # unpadded, untruncated
    limit = max_length or text_limit(None, tokenizer)
    for i, tokens in enumerate(ids):
        if limit and len(tokens) > limit:
            name = names[i // len(templates)]
            raise ClassNameError(
                f"the prompt {prompts[i][:120]!r} is {len(tokens)} tokens but the text tower takes at most {limit}; "
                f"shorten the class name {name[:80]!r} (or the template)."
            )
    first: dict[tuple, int] = {}
    for c, name in enumerate(names):
        key = tuple(tuple(ids[c * len(templates) + t]) for t in range(len(templates)))
        if key in first:
            other = names[first[key]]
            a, b = _shown(other, name)
            raise ClassNameError(
                f"class names {a} and {b} give the same prompt tokens ({prompts[c * len(templates)]!r}); the "
                "model cannot tell them apart (the tokenizer lowercases and normalises): merge the two classes or "
                "rename one."
            )
        first[key] = c
    return tokenizer(prompts, padding=True, return_tensors="pt")
