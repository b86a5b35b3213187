"""The training flags without torch: `clip-lora train`'s parser described in JSON, so a mistyped flag or value and
`--help` are answered before torch, transformers, peft and datasets load (well under a second instead of 5-20 s).

    answered = precheck(argv)                  # prints --help (True), raises ArgumentError, or False: go on
    python -m clip_lora.flag_schema --write    # regenerate clip_lora/flag_schema.json after changing a flag

The description is taken from the real parser (HfArgumentParser over the four argument dataclasses): each option
string, type (int, float, str, transformers' string_to_bool), nargs, choices, each field's validity rules and
default, the metric names and the help text. It is keyed by what produced it (transformers' and Python's versions,
the argument modules' sources). The packaged file is used when its key matches this install; otherwise a copy that
the first full parse under this key wrote to ~/.cache/clip_lora; otherwise there is no quick check. The full parse
always runs afterwards, so the quick check answers earlier, never differently (tests/test_flag_schema.py).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

from clip_lora import train_help, validation
from clip_lora.errors import ArgumentError, OneLineParserMixin, unknown_arguments_line
from clip_lora.resources import recipe_argv

SCHEMA_FILE = Path(__file__).with_name("flag_schema.json")
GROUPS = ("model", "data", "lora", "training")  # = arguments.ARGUMENT_CLASSES, in order
HELP_COLUMNS = "110"  # the width the help text is laid out at (argparse reads COLUMNS)


def _sources() -> list[Path]:
    here = Path(__file__).resolve().parent
    metrics = importlib.util.find_spec(
        "metrics"
    )  # the top-level module next to train_clip_lora (not imported)
    files = [
        here / name
        for name in (
            "arguments.py",
            "training_arguments.py",
            "validation.py",
            "prompts.py",
            "flag_schema.py",
            "train_help.py",
        )
    ]
    return files + ([Path(metrics.origin)] if metrics and metrics.origin else [])


def key() -> dict:
    digest = hashlib.sha256()
    for path in _sources():
        digest.update(path.read_bytes())
    return {
        "transformers": importlib.metadata.version("transformers"),
        "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "sources": digest.hexdigest()[:16],
    }


def cache_file(schema_key: dict) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "clip_lora"
    return base / f"flag_schema-{hashlib.sha256(json.dumps(schema_key).encode()).hexdigest()[:16]}.json"


def load() -> dict | None:
    want = key()
    for path in (SCHEMA_FILE, cache_file(want)):
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if schema.get("key") == want:
            return schema
    return None


# ---------------------------------------------------------------- built from the real parser (heavy imports)
def _plain(value):
    if hasattr(value, "value"):  # enums
        return value.value
    if isinstance(value, (set, frozenset, type({}.keys()))):
        return list(value)
    return str(value)


def _jsonable(value):
    """As JSON keeps it: enums by value, views and sets as lists, anything else as its str."""
    return json.loads(json.dumps(getattr(value, "value", value), default=_plain))


def _type_name(kind) -> str:
    name = getattr(kind, "__name__", "")
    return (
        name if name in TYPES else "lenient"
    )  # a type the quick parse does not redo: the full parse judges it


def build() -> dict:
    import dataclasses

    from clip_lora import arguments

    parser = arguments.build_parser()
    actions = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        actions.append(
            {
                "options": action.option_strings,
                "dest": action.dest,
                "kind": {
                    argparse._StoreFalseAction: "store_false",
                    argparse._StoreTrueAction: "store_true",
                }.get(type(action), "store"),
                "nargs": action.nargs,
                "const": _jsonable(action.const),
                "type": "str" if action.choices else _type_name(action.type),
                "choices": [str(choice) for choice in action.choices] if action.choices else None,
            }
        )
    fields = []
    for group, cls in zip(GROUPS, arguments.ARGUMENT_CLASSES, strict=True):
        for field in dataclasses.fields(cls):
            if not field.init:
                continue
            if field.default is not dataclasses.MISSING:
                default = field.default
            elif field.default_factory is not dataclasses.MISSING:
                default = field.default_factory()
            else:
                default = None
            rules = validation.rules_for(field, validation.training_rules() if group == "training" else None)
            fields.append([group, field.name, _jsonable(default), _jsonable(rules)])
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        helps = {view: train_help.help_text(parser, view) for view in train_help.VIEWS}
    finally:
        os.environ.pop("COLUMNS") if columns is None else os.environ.__setitem__("COLUMNS", columns)
    return {
        "key": key(),
        "actions": actions,
        "fields": fields,
        "metrics": validation.metric_names(),
        "help": helps,
    }


def remember() -> None:
    """After a full parse that found no usable schema: write one to the user cache, so the next mistake is quick."""
    if load() is not None:
        return
    schema = build()
    path = cache_file(schema["key"])
    try:
        from clip_lora import artifacts

        path.parent.mkdir(parents=True, exist_ok=True)
        artifacts.atomic_write_text(path, json.dumps(schema))
    except OSError:  # a read-only home: only the speed-up is lost
        pass


# ---------------------------------------------------------------- the quick parse (light imports only)
def string_to_bool(v):  # transformers.hf_argparser.string_to_bool, same name and message
    if isinstance(v, bool):
        return v
    if v.lower() in ("yes", "true", "t", "y", "1"):
        return True
    if v.lower() in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(
        f"Truthy value expected: got {v} but expected one of yes/no, true/false, t/f, y/n, 1/0 (case insensitive)."
    )


TYPES = {
    "int": int,
    "float": float,
    "str": str,
    "dict": dict,
    "string_to_bool": string_to_bool,
    "lenient": str,
}


class _Help(Exception):
    """--help or --help-all reached while parsing (where argparse would print the help and exit)."""

    def __init__(self, every_flag: bool):
        super().__init__()
        self.every_flag = every_flag


class _HelpAction(argparse.Action):
    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS)

    def __call__(self, parser, namespace, values, option_string=None):
        raise _Help(every_flag=option_string == "--help-all")


class QuickParser(OneLineParserMixin, argparse.ArgumentParser):
    pass


def quick_parser(schema: dict, prog: str) -> QuickParser:
    """The real parser's options, types and choices; defaults suppressed, so the result holds the given flags only."""
    parser = QuickParser(prog=prog, allow_abbrev=False, add_help=False)
    parser.add_argument("-h", "--help", "--help-all", action=_HelpAction)
    for action in schema["actions"]:
        common = {"dest": action["dest"], "default": argparse.SUPPRESS}
        if action["kind"] != "store":
            parser.add_argument(*action["options"], action=action["kind"], **common)
            continue
        extra = {"const": action["const"]} if action["nargs"] == "?" else {}
        parser.add_argument(
            *action["options"],
            type=TYPES[action["type"]],
            nargs=action["nargs"],
            choices=action["choices"],
            **extra,
            **common,
        )
    return parser


def precheck(argv: list[str], prog: str = "clip-lora train") -> bool:
    """The argument checks of `parse_args` that need no heavy library, on argv as `clip-lora train` gets it.
    True: the help was printed (the command is done); ArgumentError: a mistake; False: nothing found (or no
    schema for this install), the full parse follows."""
    schema = load()
    if schema is None:
        return False
    argv = recipe_argv(list(argv), {name for _, name, _, _ in schema["fields"]})
    parser = quick_parser(schema, prog)
    try:
        given, unknown = parser.parse_known_args(argv)
    except _Help as asked:
        view = "all" if asked.every_flag else ("eval" if prog == "clip-lora eval" else "train")
        print(schema["help"][view], end="")
        return True
    if unknown:
        raise ArgumentError(unknown_arguments_line(unknown, parser))
    given = vars(given)
    groups = {group: {} for group in GROUPS}
    for group, name, default, rules in schema["fields"]:  # the dataclasses' order: the same first error
        value = given.get(name, default)
        if name in given:
            problem = validation.field_problem(name, value, rules, default)
            if problem:
                raise ArgumentError(f"--{name} {problem}")
        groups[group][name] = value
    validation.check_run(*(SimpleNamespace(**groups[g]) for g in GROUPS), metrics=schema["metrics"])
    return False


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m clip_lora.flag_schema --write")
    SCHEMA_FILE.write_text(json.dumps(build(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {SCHEMA_FILE}")
