"""Strict recipe parsing: a key given twice is refused, naming the key and both lines.

PyYAML's safe_load and json.loads keep the last of two equal keys silently (`learning_rate: 0.5` then
`learning_rate: 0.001` trained at 0.001 with no word); a recipe is read by people, so either value may be the meant one.
"""

from __future__ import annotations

import json

import yaml


class DuplicateKey(ValueError):
    """key, and the 1-based lines of its first and second occurrence (None where the format has no lines: JSON)."""

    def __init__(self, key, first_line: int | None, second_line: int | None):
        self.key, self.first_line, self.second_line = key, first_line, second_line
        where = f" (lines {first_line} and {second_line})" if first_line is not None else ""
        super().__init__(f"key {key!r} appears twice{where}")


class _StrictLoader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise DuplicateKey(key, seen[key], line)
                seen[key] = line
            except TypeError:  # an unhashable key: SafeLoader's own error names it below
                continue
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str):
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass


def load_json(text: str):
    def pairs(items):
        keys = [k for k, _ in items]
        for i, k in enumerate(keys):
            if k in keys[:i]:
                raise DuplicateKey(k, None, None)
        return dict(items)

    return json.loads(text, object_pairs_hook=pairs)
