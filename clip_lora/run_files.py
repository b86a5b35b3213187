"""ONE reader for the JSON files a verb reads from a run or an export (run_config.json, all_results.json,
trainer_state.json, class_prompts.json, onnx/classifier.json, a card's metadata): what is wrong is said in one
`error:` line naming the file and the key, never a KeyError or AttributeError three calls later.

    config = read_json_object(run / "run_config.json", optional={"provenance.data": OBJECT})
    check_keys(config["provenance"]["data"], {"splits": OBJECT}, where="run_config.json: provenance.data")

Keys are dotted paths into nested objects. `required` keys must be there with a value of the type given; an
`optional` key may be absent, but when it is there (and every object on its path) it has the type given. A file
that is missing, a folder, unreadable, not JSON, or JSON but not an object is refused the same way (RunError; pass
`error` for another ClipLoraError subclass).
"""

from __future__ import annotations

import json
from pathlib import Path

from clip_lora.errors import RunError

OBJECT = dict
LIST = list
STRING = str
NUMBER = (int, float)  # never a bool, though Python counts True as an int
OPTIONAL_NUMBER = (int, float, type(None))
OPTIONAL_STRING = (str, type(None))
OPTIONAL_OBJECT = (dict, type(None))


class ListOf:
    """A list whose every item has the type given: ListOf(str), ListOf(dict)."""

    def __init__(self, item):
        self.item = item

    def __eq__(self, other):
        return isinstance(other, ListOf) and other.item == self.item

    def __hash__(self):
        return hash(self.item)


STRING_LIST = ListOf(str)
OBJECT_LIST = ListOf(dict)

_NAMES = {
    dict: "an object {...}",
    list: "a list [...]",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}


def kind_of(value) -> str:
    """What a JSON value is, in the words the messages use."""
    return _NAMES.get(type(value), type(value).__name__)


def _expected(expected) -> str:
    if isinstance(expected, ListOf):
        return f"a list of {_NAMES[expected.item].removeprefix('a ').removeprefix('an ').split(' ')[0]}s"
    kinds = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(dict.fromkeys(_NAMES[k] for k in kinds))


def _fits(value, expected) -> bool:
    if isinstance(expected, ListOf):
        return isinstance(value, list) and all(_fits(item, expected.item) for item in value)
    kinds = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool):
        return bool in kinds
    return isinstance(value, kinds)


def check_keys(
    record: dict, required=None, optional=None, where: str = "", error=RunError, hint: str = ""
) -> dict:
    """`record` with its dotted `required` and `optional` keys checked; `error` naming `where` and the key."""
    hint = hint or "is it a complete, unedited file of a clip-lora run?"
    for keys, must in ((required or {}, True), (optional or {}, False)):
        for dotted, expected in keys.items():
            value, path = record, []
            for part in dotted.split("."):
                if not isinstance(value, dict):
                    held = repr(".".join(path)) if path else "it"
                    raise error(
                        f"{where}: {held} is {kind_of(value)}, expected an object holding {part!r}; {hint}"
                    )
                path.append(part)
                if part not in value:
                    if not must:
                        break
                    raise error(f"{where} has no {dotted!r} (expected {_expected(expected)}); {hint}")
                value = value[part]
            else:
                if not _fits(value, expected):
                    raise error(
                        f"{where}: {dotted!r} is {kind_of(value)}, expected {_expected(expected)}; {hint}"
                    )
    return record


def read_trainer_state(path: str | Path) -> dict:
    """trainer_state.json as the plots and the card read it: its log a list of objects, the kept step a number."""
    keys = {"log_history": OBJECT_LIST, "best_global_step": OPTIONAL_NUMBER, "best_metric": OPTIONAL_NUMBER}
    return read_json_object(path, optional=keys)


def read_json_object(
    path: str | Path, required=None, optional=None, error=RunError, shown: str | None = None, hint: str = ""
) -> dict:
    """The JSON object in `path`, its keys checked (check_keys); `error` naming the file for anything else."""
    path = Path(path)
    shown = shown or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{shown} does not exist; {hint or 'is the run complete?'}") from None
    except IsADirectoryError:
        raise error(f"{shown} is a folder, not a JSON file; {hint or 'is the run complete?'}") from None
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or type(err).__name__
        raise error(f"cannot read {shown} ({reason}); {hint or 'is the run complete?'}") from None
    try:
        record = json.loads(text)
    except (ValueError, RecursionError) as err:  # RecursionError: nesting deeper than the parser goes
        raise error(f"{shown} is not valid JSON ({err}); {hint or 'was it cut off or edited?'}") from None
    if not isinstance(record, dict):
        raise error(
            f"{shown} holds {kind_of(record)}, expected a JSON object {{...}}; {hint or 'is it a run file?'}"
        )
    return check_keys(record, required, optional, where=shown, error=error, hint=hint)
