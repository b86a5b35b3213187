"""Files shipped inside the package: recipes and accelerate configs, found by name or by path.

recipe_path("smoke")                 # clip_lora/recipes/smoke.yaml
accelerate_config_path("1gpu")       # clip_lora/accelerate_configs/1gpu.yaml
"""

from __future__ import annotations

from pathlib import Path

from clip_lora.errors import ArgumentError

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
    raise ArgumentError(f"no {what} {name!r}: pass a file path or one of {', '.join(names(folder))}.")


def looks_like_recipe(arg: str) -> bool:
    """A first positional argument that names a recipe: a .yaml/.yml/.json path, or a packaged recipe's name."""
    if arg.startswith("-"):
        return False
    return Path(arg).suffix in RECIPE_SUFFIXES or (RECIPES_DIR / f"{arg}.yaml").is_file()


def recipe_path(name: str) -> Path:
    return _find(name, RECIPES_DIR, "recipe")


def accelerate_config_path(name: str) -> Path:
    return _find(name, ACCELERATE_CONFIGS_DIR, "accelerate config")
