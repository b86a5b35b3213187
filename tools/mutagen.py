"""Generated mutants: every operator-level one-line bug in the functions that make reported numbers.

    mutants = generate(TARGETS)           # tools/generated_mutants.py says which files, functions and tests
    python tools/mutation.py --generated  # runs them (make mutation-generated); `--list` counts them

The curated list (tools/mutants.py) holds the bugs its authors imagined; these come from rules, so nobody chose them.
Operators, each applied alone at one place of one function: a comparison (< <=, > >=, == !=, in / not in, is / is
not), an arithmetic or bitwise operator (+ -, * /, // /, % //, ** *, | &, augmented assignments too), `and` / `or`,
a dropped `not` / unary minus / `~`, an int constant +-1 (a float +1, True / False), a dropped slice bound, two
positional call arguments swapped, a constant keyword argument dropped, and min/max, any/all, argmax/argmin,
sum/mean, floor/ceil swapped. Never mutated: messages (f-strings, `raise`, logging, warnings, print), asserts,
docstrings, annotations and decorators, which change no number.

A mutant is named by its file, function, the edited line before and after, and its rank among equal edits in that
function, so its result and the reason it is equivalent survive edits elsewhere in the file. Why not mutmut 3: it
installs and runs here, but it picks the tests of a mutant from the functions each test called in the pytest process,
so code the tests run in forked processes (gather_rows over gloo, the replica check) counts as untested and its
mutants are never run (measured: 135 of sync_check.py's 187 mutants "no tests"); here a mutant edits the source, which
every process imports.
"""

from __future__ import annotations

import ast
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path


def _both_ways(*pairs) -> dict:
    return {a: b for x, y in pairs for a, b in ((x, y), (y, x))}


COMPARE = _both_ways(
    (ast.Lt, ast.LtE), (ast.Gt, ast.GtE), (ast.Eq, ast.NotEq), (ast.In, ast.NotIn), (ast.Is, ast.IsNot)
)
BINARY = {
    **_both_ways((ast.Add, ast.Sub), (ast.Mult, ast.Div), (ast.BitOr, ast.BitAnd)),
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
}
# How each operator is written in the source ("_" stands for a space).
_SYMBOLS = (
    "Lt:< LtE:<= Gt:> GtE:>= Eq:== NotEq:!= In:in NotIn:not_in Is:is IsNot:is_not Add:+ Sub:- Mult:* Div:/ "
    "FloorDiv:// Mod:% Pow:** BitOr:| BitAnd:& And:and Or:or"
)
SYMBOL = {
    getattr(ast, name): text.replace("_", " ") for name, text in (p.split(":") for p in _SYMBOLS.split(" "))
}
SWAPPED_NAMES = _both_ways(("min", "max"), ("any", "all"))
SWAPPED_METHODS = _both_ways(
    ("argmax", "argmin"), ("max", "min"), ("sum", "mean"), ("floor", "ceil"), ("any", "all")
)

# Keywords about files, processes and checks, not numbers: dropping one is no bug in a reported number.
_PLUMBING = (
    "strict exist_ok parents missing_ok ignore_errors non_blocking indent flush check capture_output text"
)
PLUMBING_KEYWORDS = set(
    _PLUMBING.split(" ") + ["follow_symlinks", "sort_keys", "errors", "newline", "encoding"]
)
_QUIET = "print warn debug info warning error exception critical"
QUIET_CALLS = set(_QUIET.split(" "))


@dataclass(frozen=True)
class Target:
    path: str  # relative to the repository root
    tests: tuple[str, ...]  # fast tests that cover it, most likely to fail first (pytest -x)
    functions: tuple[str, ...] | None = None  # qualified names to mutate; None: every function


@dataclass(frozen=True)
class Generated:
    path: str
    function: str
    line: int
    original: str  # the edited line(s), stripped
    mutated: str
    rank: int  # among the same (function, original, mutated) in this file
    start: int  # character offsets of the edit in the file
    end: int
    text: str
    tests: tuple[str, ...]

    @property
    def key(self) -> str:
        return json.dumps([self.path, self.function, self.original, self.mutated, self.rank])

    def apply(self, source: str) -> str:
        return source[: self.start] + self.text + source[self.end :]


class _Edits(ast.NodeVisitor):
    """(start, end, replacement) character edits of one function body; nested functions are visited on their own."""

    def __init__(self, source: str, offsets: list[int]):
        self.source, self.offsets, self.edits = source, offsets, []

    def pos(self, line: int, col: int) -> int:
        # ast columns count UTF-8 bytes, the offsets here characters
        text = self.source[self.offsets[line - 1] : self.offsets[line]]
        return self.offsets[line - 1] + len(text.encode()[:col].decode(errors="ignore"))

    def span(self, node) -> tuple[int, int]:
        return self.pos(node.lineno, node.col_offset), self.pos(node.end_lineno, node.end_col_offset)

    def text(self, node) -> str:
        start, end = self.span(node)
        return self.source[start:end]

    def between(self, left, right, old: str, new: str) -> None:
        """Replace the operator `old` in the source between two sibling nodes (parentheses and comments allowed)."""
        start, end = self.span(left)[1], self.span(right)[0]
        gap = self.source[start:end]
        tokens = gap.replace("(", " ").replace(")", " ").split()
        if " ".join(tokens[: len(old.split())]) != old:
            return
        at = gap.index(old.split()[0])
        stop = at + len(old) if " " not in old else gap.index(old.split()[-1], at) + len(old.split()[-1])
        self.edits.append((start + at, start + stop, new))

    # ---- nodes never mutated (they make no number): messages, guards, nested definitions
    def visit_FunctionDef(self, node):
        pass

    visit_AsyncFunctionDef = visit_ClassDef = visit_Lambda = visit_FunctionDef

    def visit_JoinedStr(self, node):
        pass

    visit_Raise = visit_Assert = visit_JoinedStr

    def visit_Expr(self, node):
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return  # a docstring
        self.generic_visit(node)

    def visit_AnnAssign(self, node):
        if node.value is not None:
            self.visit(node.value)

    def visit_Call(self, node):
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name in QUIET_CALLS:
            return
        if isinstance(func, ast.Name) and name in SWAPPED_NAMES:
            start, end = self.span(func)
            self.edits.append((start, end, SWAPPED_NAMES[name]))
        elif isinstance(func, ast.Attribute) and name in SWAPPED_METHODS:
            end = self.span(func)[1]
            self.edits.append((end - len(name), end, SWAPPED_METHODS[name]))
        positional = [a for a in node.args if not isinstance(a, ast.Starred)]
        # min/max of two values are symmetric: swapping their arguments is no bug
        symmetric = isinstance(func, ast.Name) and name in ("min", "max")
        if len(positional) >= 2 and len(positional) == len(node.args) and not symmetric:
            first, second = positional[:2]
            if self.text(first) != self.text(second):
                start, end = self.span(first)[0], self.span(second)[1]
                gap = self.source[self.span(first)[1] : self.span(second)[0]]
                self.edits.append((start, end, self.text(second) + gap + self.text(first)))
        everything = [*node.args, *node.keywords]
        for keyword in node.keywords:
            value = keyword.value.operand if isinstance(keyword.value, ast.UnaryOp) else keyword.value
            if (
                keyword.arg
                and keyword.arg not in PLUMBING_KEYWORDS
                and isinstance(value, ast.Constant)
                and value.value is not None
                and not isinstance(value.value, str)
            ):
                index = everything.index(keyword)
                if index > 0:
                    start, end = self.span(everything[index - 1])[1], self.span(keyword)[1]
                elif len(everything) > 1:
                    start, end = self.span(keyword)[0], self.span(everything[1])[0]
                else:
                    start, end = self.span(keyword)
                self.edits.append((start, end, ""))
        self.generic_visit(node)

    # ---- operators
    def visit_Compare(self, node):
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            if type(op) in COMPARE:
                self.between(left, right, SYMBOL[type(op)], SYMBOL[COMPARE[type(op)]])
            left = right
        self.generic_visit(node)

    def visit_BinOp(self, node):
        text = any(
            isinstance(s, ast.JoinedStr) or (isinstance(s, ast.Constant) and isinstance(s.value, str))
            for s in (node.left, node.right)
        )
        if not text:  # "+" of strings builds a message or a name
            new = BINARY.get(type(node.op))
            if new is not None:
                self.between(node.left, node.right, SYMBOL[type(node.op)], SYMBOL[new])
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        new = BINARY.get(type(node.op))
        if new is not None:
            self.between(node.target, node.value, SYMBOL[type(node.op)] + "=", SYMBOL[new] + "=")
        self.generic_visit(node)

    def visit_BoolOp(self, node):
        other = "or" if isinstance(node.op, ast.And) else "and"
        for left, right in zip(node.values, node.values[1:], strict=False):
            self.between(left, right, SYMBOL[type(node.op)], other)
        self.generic_visit(node)

    def visit_UnaryOp(self, node):
        if isinstance(node.op, (ast.Not, ast.USub, ast.Invert)) and not isinstance(
            node.operand, ast.Constant
        ):
            start, end = self.span(node)
            self.edits.append((start, end, self.text(node.operand)))
        self.generic_visit(node)

    def visit_Constant(self, node):
        value, (start, end) = node.value, self.span(node)
        if isinstance(value, bool):
            self.edits.append((start, end, str(not value)))
        elif isinstance(value, int):
            self.edits += [(start, end, str(value + 1))] + (
                [(start, end, str(value - 1))] if value > 0 else []
            )
        elif isinstance(value, float):
            self.edits.append((start, end, repr(value + 1)))

    def visit_Slice(self, node):
        for bound in (node.lower, node.upper):
            if bound is not None:
                start, end = self.span(bound)
                self.edits.append((start, end, ""))
        self.generic_visit(node)


def _functions(tree) -> list[tuple[str, ast.AST]]:
    found = []

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((prefix + child.name, child))
                walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.")

    walk(tree, "")
    return found


def _shown(source: str, start: int, end: int, replacement: str | None = None) -> str:
    """The whole line(s) an edit touches, one line, before (replacement None) or after the edit."""
    first, last = source.rfind("\n", 0, start) + 1, source.find("\n", end)
    last = len(source) if last < 0 else last
    text = source[first:last] if replacement is None else source[first:start] + replacement + source[end:last]
    return " ".join(part.strip() for part in text.splitlines())


def generate(targets, root: Path) -> list[Generated]:
    """Every mutant of every target, in file order; edits that would not compile or change nothing are left out."""
    mutants = []
    for target in targets:
        source = (root / target.path).read_text()
        offsets = [0]
        for line in source.splitlines(keepends=True):
            offsets.append(offsets[-1] + len(line))
        tree, ranks, seen = ast.parse(source), Counter(), set()
        for qualname, function in _functions(tree):
            if target.functions is not None and qualname not in target.functions:
                continue
            visitor = _Edits(source, offsets)
            for statement in function.body:
                visitor.visit(statement)
            for start, end, text in sorted(visitor.edits):
                if (start, end, text) in seen or source[start:end] == text:
                    continue
                seen.add((start, end, text))
                mutated = source[:start] + text + source[end:]
                try:
                    if ast.dump(ast.parse(mutated)) == ast.dump(tree):
                        continue
                except SyntaxError:
                    continue
                before, after = _shown(source, start, end), _shown(source, start, end, text)
                ranks[(qualname, before, after)] += 1
                line = source.count("\n", 0, start) + 1
                rank = ranks[(qualname, before, after)]
                mutants.append(
                    Generated(
                        target.path, qualname, line, before, after, rank, start, end, text, target.tests
                    )
                )
    return mutants
