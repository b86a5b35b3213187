"""Files shipped inside the package: recipes and accelerate configs, found by name or by path; a recipe as flags.

recipe_path("smoke")                 # clip_lora/recipes/smoke.yaml
accelerate_config_path("1gpu")       # clip_lora/accelerate_configs/1gpu.yaml
recipe_argv(["smoke", "--seed", "1"], known_flags)   # the recipe's values as flags, then the flags that override them
recipe_argv(["--config", "my.yaml", "--seed", "1"], known_flags)   # the same, trl's way
"""

from __future__ import annotations

import json
from pathlib import Path

from clip_lora.errors import ArgumentError, did_you_mean

PACKAGE_DIR = Path(__file__).resolve().parent
RECIPES_DIR = PACKAGE_DIR / "recipes"
ACCELERATE_CONFIGS_DIR = PACKAGE_DIR / "accelerate_configs"
RECIPE_SUFFIXES = (".yaml", ".yml", ".json")


def names(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml"))


def _find(name: str, folder: Path, what: str) -> Path:
    path = Path(name)
    if path.is_file():  # a path (relative to the current folder) wins over a packaged name
        return path
    packaged = folder / (name if path.suffix in RECIPE_SUFFIXES else f"{name}.yaml")
    if path.parent == Path(".") and packaged.is_file():
        return packaged
    raise ArgumentError(
        f"no {what} {name!r}{did_you_mean(name, names(folder))}: pass a file path or one of "
        f"{', '.join(names(folder))}."
    )


def looks_like_recipe(arg: str) -> bool:
    """A first positional argument that names a recipe: a .yaml/.yml/.json path, or a packaged recipe's name."""
    if arg.startswith("-"):
        return False
    return Path(arg).suffix in RECIPE_SUFFIXES or (RECIPES_DIR / f"{arg}.yaml").is_file()


def recipe_path(name: str) -> Path:
    return _find(name, RECIPES_DIR, "recipe")


def accelerate_config_path(name: str) -> Path:
    return _find(name, ACCELERATE_CONFIGS_DIR, "accelerate config")


def recipe_to_flags(path: Path, known_flags) -> list[str]:
    """A YAML/JSON recipe as command-line flags, so flags after it override any value. Its keys must be exact flag
    names (without --): argparse would otherwise take `learning_rat:` for --learning_rate."""
    import yaml

    from clip_lora import recipe_yaml, validation

    try:
        text = validation.read_utf8(path, "recipe")
        values = recipe_yaml.load_json(text) if path.suffix == ".json" else recipe_yaml.load_yaml(text)
    except recipe_yaml.DuplicateKey as err:
        raise ArgumentError(f"recipe {path}: {err}; keep one of them.") from None
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ArgumentError(
            f"cannot read recipe {path}: {first_line}; fix the file or pass flags instead."
        ) from None
    if not isinstance(values, dict):
        raise ArgumentError(
            f"recipe {path} must be a mapping of argument: value, got {type(values).__name__}."
        )
    unknown = [key for key in values if key not in known_flags]
    if unknown:
        raise ArgumentError(
            f"recipe {path}: unknown key {unknown[0]!r}{did_you_mean(str(unknown[0]), known_flags)}; a key is a "
            "flag's exact name without -- (see `clip-lora train --help`)."
        )
    flags = []
    for key, value in values.items():
        if isinstance(value, list):
            value = ",".join(map(str, value)) if key == "lora_target_modules" else value
        if isinstance(value, list):
            flags += [f"--{key}", *map(str, value)]
        elif isinstance(value, bool):
            flags += [f"--{key}", str(value).lower()]
        elif value is not None:
            flags += [f"--{key}", str(value)]
    return flags


CONFIG_FLAG = "--config"  # trl's name for a recipe file: `--config FILE.yaml` = the positional FILE.yaml


def split_config_flag(argv: list[str]) -> tuple[str | None, list[str]]:
    """(the value of --config, argv without it); refused when given twice or without a value."""
    found, rest, index = [], [], 0
    while index < len(argv):
        arg = argv[index]
        if arg == CONFIG_FLAG:
            if index + 1 >= len(argv) or argv[index + 1].startswith("-"):
                raise ArgumentError(
                    f"{CONFIG_FLAG} needs a recipe: a .yaml/.json file or one of {', '.join(names(RECIPES_DIR))}."
                )
            found.append(argv[index + 1])
            index += 2
            continue
        if arg.startswith(f"{CONFIG_FLAG}="):
            found.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
        index += 1
    if len(found) > 1:
        raise ArgumentError(f"{CONFIG_FLAG} given {len(found)} times ({', '.join(found)}); pass one recipe.")
    return (found[0] if found else None), rest


def recipe_argv(argv: list[str], known_flags) -> list[str]:
    """argv with its recipe (a packaged name or a file path, first or after --config) replaced by its flags, which
    the flags given override wherever they stand. Training takes no other positional argument, so a first argument
    that is not a flag must be a recipe: a misspelt one lists them. One recipe per run: a positional recipe and
    --config together are refused (which of the two should win is not a guess to make for the user)."""
    config, argv = split_config_flag(list(argv))
    positional = argv[0] if argv and not argv[0].startswith("-") else None
    if config is not None and positional is not None:
        raise ArgumentError(
            f"two recipes: {positional!r} and {CONFIG_FLAG} {config}; pass one (the first argument or {CONFIG_FLAG})."
        )
    if config is not None:
        return recipe_to_flags(recipe_path(config), known_flags) + argv
    if positional is None:
        return argv
    return recipe_to_flags(recipe_path(positional), known_flags) + argv[1:]
