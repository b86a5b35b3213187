"""Class names: ONE layer between whatever names the classes (folders, --class_names_file, a Hub ClassLabel,
--labels, an adapter's card) and the prompts the text tower reads. Train, eval, predict, export and the app use it.

    names = normalise(raw, origins=folders, where="the class folders of data/train")   # ClassNameError if unusable
    tokens = prompt_tokens(tokenizer, names, templates, max_length=text_limit(model, tokenizer))

- Names a person cannot tell apart are one name: Unicode default-ignorable code points (zero-width space and joiners,
  variation selectors, soft hyphen, BOM, bidi marks, tags, Hangul fillers) are removed, then Unicode NFC, then
  surrounding blanks stripped (`canonical`): `café` typed (NFC) and `café` in a folder name written by macOS (NFD),
  `cat` and `cat` + U+200B, an emoji with and without U+FE0F are one name each, and the prompts, the reports and the
  card all carry the same string. (An emoji ZWJ sequence loses its joiners too: its parts stay, in order.)
- At least two classes: a one-class "classifier" trains nothing and reports accuracy 1.0.
- No two classes with the same name after normalisation, nor with the same prompt tokens: CLIP's tokenizer
  lowercases, so `Cat` and `cat` folders give identical prompts and the model cannot tell them apart. Refused,
  naming the pair (and the folders they come from).
- Every prompt fits the text tower: its length in tokens is checked against the model's limit (CLIP: 77 positions,
  read from the model's text config and the tokenizer), never truncated silently or crashing in the tokenizer.
"""

from __future__ import annotations

import re
import unicodedata

from clip_lora.errors import ClassNameError

MIN_CLASSES = 2
UNBOUNDED = 10**6  # tokenizers without a configured limit report ~1e30 as model_max_length

# Default_Ignorable_Code_Point, from the Unicode Character Database's DerivedCoreProperties.txt (Unicode 15.1/16.0;
# https://www.unicode.org/Public/UCD/latest/ucd/DerivedCoreProperties.txt): code points that render as nothing
# unless a font chooses otherwise, so two names differing only in them print the same. Unassigned ones in these
# ranges are included, as the property does, so a name cannot start to differ when a later Unicode assigns them.
DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD),  # SOFT HYPHEN
    (0x034F, 0x034F),  # COMBINING GRAPHEME JOINER
    (0x061C, 0x061C),  # ARABIC LETTER MARK
    (0x115F, 0x1160),  # HANGUL CHOSEONG FILLER..HANGUL JUNGSEONG FILLER
    (0x17B4, 0x17B5),  # KHMER VOWEL INHERENT AQ..AA
    (0x180B, 0x180F),  # MONGOLIAN FREE VARIATION SELECTORS, VOWEL SEPARATOR
    (0x200B, 0x200F),  # ZERO WIDTH SPACE, ZWNJ, ZWJ, LRM, RLM
    (0x202A, 0x202E),  # bidi embeddings and overrides
    (0x2060, 0x206F),  # WORD JOINER, invisible operators, bidi isolates, deprecated format characters
    (0x3164, 0x3164),  # HANGUL FILLER
    (0xFE00, 0xFE0F),  # VARIATION SELECTOR-1..16 (U+FE0F: emoji presentation)
    (0xFEFF, 0xFEFF),  # ZERO WIDTH NO-BREAK SPACE (BOM)
    (0xFFA0, 0xFFA0),  # HALFWIDTH HANGUL FILLER
    (0xFFF0, 0xFFF8),  # unassigned
    (0x1BCA0, 0x1BCA3),  # SHORTHAND FORMAT controls
    (0x1D173, 0x1D17A),  # MUSICAL SYMBOL BEGIN BEAM..END PHRASE
    (0xE0000, 0xE0FFF),  # tags, VARIATION SELECTOR-17..256, unassigned
)
_IGNORABLE = re.compile("[" + "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in DEFAULT_IGNORABLE) + "]")


def canonical(name: str) -> str:
    """The one form of a name: default-ignorable code points removed, NFC, surrounding blanks stripped (removal
    first: `e` U+200B U+0301 becomes `é`, as it prints)."""
    return unicodedata.normalize("NFC", _IGNORABLE.sub("", str(name))).strip()


def _shown(a: str, b: str) -> tuple[str, str]:
    """Two names for a message: ascii() when they differ only in invisible characters or Unicode form (printed,
    they would look the same; ascii() spells out each code point, e.g. 'cat\\u200b')."""
    return (ascii(a), ascii(b)) if a != b and canonical(a) == canonical(b) else (repr(a), repr(b))


def normalise(
    names, origins=None, where: str = "the class names", min_classes: int = MIN_CLASSES
) -> list[str]:
    """Class names in their canonical form; ClassNameError (one line, naming `where` and the origins) for an empty
    name, two names that are one after normalisation, or fewer than `min_classes`."""
    names = [str(n) for n in names]
    origins = [str(o) for o in origins] if origins is not None else None
    out = [canonical(n) for n in names]
    seen: dict[str, int] = {}
    for i, name in enumerate(out):
        origin = f" (from {ascii(origins[i])})" if origins and origins[i] != names[i] else ""
        if not name:
            raise ClassNameError(
                f"{where}: class name {ascii(names[i])}{origin} is empty (blank or invisible characters only); "
                "give every class a name."
            )
        if name in seen:
            j = seen[name]
            first, second = (origins[j], origins[i]) if origins else (names[j], names[i])
            if first == second:
                raise ClassNameError(f"{where}: {name!r} is there twice; name each class once.")
            a, b = _shown(first, second)
            how = "map to" if origins and (origins[i] != names[i] or origins[j] != names[j]) else "are"
            raise ClassNameError(
                f"{where}: {a} and {b} {how} the same class name {name!r} (invisible characters removed, Unicode "
                "NFC); give each class its own name."
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
