#!/usr/bin/env python3
"""Codemod of issue 17 items 6 and 7: messages built by keyword, events named for what happened.

Run from the repository root with the project's venv (re-runnable; a second run changes nothing):

    PYTHONPATH=$PWD/libs:$PWD .venv/bin/python scripts/codemods/kw_messages.py          # rewrite
    PYTHONPATH=$PWD/libs:$PWD .venv/bin/python scripts/codemods/kw_messages.py --check  # exit 1 if it would

Three passes, in this order:

1. **Renames** (``RENAMES`` below): the old event name becomes the new one in every Python file of
   ``services/ libs/ tests/ bench/ examples/ scripts/`` (identifiers, and whole words inside strings and
   comments) and in the Markdown files that list event names. A line that mentions ``formerly`` (the
   class attribute ``FORMERLY`` that keeps old records readable, a test writing an old-name record,
   the README's note to subscribers) is left alone, and so is ``schemas/history/`` (released schemas
   never change). The current ``schemas/<service>/<Old>.avsc`` is removed; the schema writer
   (``flexchain schemas``) then writes the new one and records it as version 1 of the new name.
2. **kw_only**: every dataclass defined in a message module (``services/*/messages.py``,
   ``flexchain.messages``: ``Envelope``, ``Enveloped``), every dataclass deriving ``Message`` anywhere in
   ``services/`` or ``libs/flexchain`` (so a class moved by another refactoring is still found) and every
   record nested in one gets ``kw_only=True`` in its ``@dataclass(...)``.
3. **Keywords**: every call of such a class with positional arguments gets ``field=`` before each
   of them, the field names read from ``dataclasses.fields`` of the imported class. The class is
   resolved from the file's imports (``from services.order.messages import OrderPlaced as P``,
   ``from services.order import messages as m`` … ``m.OrderPlaced(...)``, a re-export from another
   module, a class used in its own module). Only source text before each argument is inserted:
   layout, comments and parentheses stay as they were.

Then every changed Python file is run through ``ruff format`` (the keywords make long lines); a file
that was not ruff-formatted before is formatted whole, and the script says which. Last, ``flexchain
schemas write`` writes the renamed types' schemas and records them (a no-op when nothing changed: the
``.avsc`` of a class does not change with ``kw_only``).

What it cannot rewrite, it reports (file:line) and leaves alone: a call with ``*args``, a class
reached through a variable (``cls(...)``, ``type(m)(...)``), more positional arguments than fields.
Hypothesis' ``st.builds(Class, a, b)`` is rewritten like a call (``st.builds(Class, f1=a, f2=b)``); other
ways of calling a class positionally (``map(Class, ...)``, ``functools.partial``) are not seen, and a
statement under ``# fmt: skip`` keeps its (now longer) line: wrap it by hand if ruff's E501 says so.
Tests decide: a positional construction it missed fails with ``TypeError: ... positional``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import io
import re
import subprocess
import sys
import tokenize
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CODE_DIRS = ("services", "libs", "tests", "bench", "examples", "scripts")
DOC_GLOBS = ("README.md", "*/README.md", "services/*/README.md", "docs/**/*.md", "examples/**/*.md", "bench/**/*.md")
SKIP_PARTS = {".venv", ".cache", ".git", "node_modules", "__pycache__", ".mypy_cache", "history"}
KEEP = re.compile(r"formerly", re.IGNORECASE)

# event (service, old name) → new name: events say what happened (STYLE "Names"; issue 17 item 7)
RENAMES: dict[tuple[str, str], str] = {
    ("order", "GiftRuleHealthy"): "GiftRuleRecovered",
    ("presale", "SupplierPenaltyDue"): "SupplierPenaltyIncurred",
    ("inventory", "StockBackInStock"): "StockBecameAvailable",
}
MESSAGE_MODULES = ("flexchain.messages",)  # plus services.<name>.messages, found on disk


def files(dirs: tuple[str, ...], pattern: str) -> Iterator[Path]:
    for d in dirs:
        for path in sorted((ROOT / d).rglob(pattern)):
            if not SKIP_PARTS & set(path.relative_to(ROOT).parts) and path.resolve() != Path(__file__).resolve():
                yield path


# --- 1. renames ------------------------------------------------------------------------------------


def _word(old: str) -> re.Pattern[str]:
    return re.compile(rf"\b{old}\b")


_WORDY = {tokenize.NAME, tokenize.STRING, tokenize.COMMENT, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}


def rename_python(src: str) -> str:
    names = {old: new for (_, old), new in RENAMES.items()}
    words = {old: _word(old) for old in names}
    lines = src.splitlines(keepends=True)
    edits: list[tuple[tuple[int, int], tuple[int, int], str]] = []
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type not in _WORDY:
            continue
        touched = "".join(lines[tok.start[0] - 1 : tok.end[0]])
        if KEEP.search(touched):
            continue
        text = tok.string
        if tok.type == tokenize.NAME:
            new = names.get(text, text)
        else:
            new = text
            for old, pattern in words.items():
                new = pattern.sub(names[old], new)
        if new != text:
            edits.append((tok.start, tok.end, new))
    return _apply(lines, edits)


def _apply(lines: list[str], edits: list[tuple[tuple[int, int], tuple[int, int], str]]) -> str:
    """Replace (start, end) token spans (row 1-based, col in characters) from the end backwards."""
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    text = "".join(lines)
    for start, end, new in sorted(edits, reverse=True):
        a, b = offsets[start[0] - 1] + start[1], offsets[end[0] - 1] + end[1]
        text = text[:a] + new + text[b:]
    return text


def rename_markdown(src: str) -> str:
    out = []
    for line in src.splitlines(keepends=True):
        if not KEEP.search(line):
            for (_, old), new in RENAMES.items():
                line = _word(old).sub(new, line)
        out.append(line)
    return "".join(out)


# --- 2. and 3. kw_only messages ----------------------------------------------------------------------


def message_modules() -> list[str]:
    return [*MESSAGE_MODULES, *(f"services.{p.parent.name}.messages" for p in sorted((ROOT / "services").glob("*/messages.py")))]


def message_classes() -> dict[str, dict[str, type]]:
    """module → {class name → class}: every dataclass defined in a message module, and — wherever a
    refactoring moved it — every dataclass deriving ``Message`` in ``services/`` or ``libs/flexchain``
    (``ClockTicked`` into the kernel, a service's messages split), with the records nested in them."""
    from flexchain.messages import Message

    found: list[type] = []
    for name in message_modules():
        module = importlib.import_module(name)
        found += [
            v for v in vars(module).values() if isinstance(v, type) and dataclasses.is_dataclass(v) and v.__module__ == name
        ]
    for path in [*files(("services",), "*.py"), *files(("libs/flexchain",), "*.py")]:
        name = module_name(path)
        if name is None or name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(name)
        except Exception:  # a module that needs what this machine lacks: no message class of ours in it
            continue
        found += [
            v for v in vars(module).values() if isinstance(v, type) and issubclass(v, Message) and dataclasses.is_dataclass(v)
        ]
    out: dict[str, dict[str, type]] = {}
    todo = list(found)
    while todo:
        cls = todo.pop()
        if cls.__name__ in out.get(cls.__module__, {}):
            continue
        out.setdefault(cls.__module__, {})[cls.__name__] = cls
        hints = typing.get_type_hints(cls)
        todo += [r for f in dataclasses.fields(cls) for r in _records(hints.get(f.name))]
    return out


def _records(tp: Any) -> list[type]:
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return [tp]
    return [r for arg in typing.get_args(tp) for r in _records(arg)]


def module_name(path: Path) -> str | None:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[1:] if rel.parts[0] == "libs" else rel.parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or None


def add_kw_only(src: str, classes: dict[str, type]) -> str:
    """``kw_only=True`` in the @dataclass(...) of each of ``classes`` defined in this source."""
    tree = ast.parse(src)
    lines = src.splitlines(keepends=True)
    edits: list[tuple[tuple[int, int], tuple[int, int], str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef) or node.name not in classes:
            continue
        for dec in node.decorator_list:
            func = dec.func if isinstance(dec, ast.Call) else dec
            if not (isinstance(func, ast.Name) and func.id == "dataclass") and not (
                isinstance(func, ast.Attribute) and func.attr == "dataclass"
            ):
                continue
            if isinstance(dec, ast.Call):
                if any(k.arg == "kw_only" for k in dec.keywords):
                    break
                end = _pos(lines, dec.end_lineno, dec.end_col_offset)
                close = (end[0], end[1] - 1)  # the closing parenthesis
                sep = ", " if dec.args or dec.keywords else ""
                edits.append((close, close, f"{sep}kw_only=True"))
            else:
                end = _pos(lines, dec.end_lineno, dec.end_col_offset)
                edits.append((end, end, "(kw_only=True)"))
            break
    return _apply(lines, edits)


def _pos(lines: list[str], row: int | None, byte_col: int | None) -> tuple[int, int]:
    """An ast position (UTF-8 byte column) as a tokenize one (character column)."""
    assert row is not None and byte_col is not None
    return row, len(lines[row - 1].encode("utf-8")[:byte_col].decode("utf-8"))


class Resolver:
    """Which message class a call's function names, from the imports of one file."""

    def __init__(self, tree: ast.Module, this_module: str | None, classes: dict[str, dict[str, type]]) -> None:
        self.classes = classes
        self.by_identity = {id(c): c for mod in classes.values() for c in mod.values()}
        self.names: dict[str, type] = {}
        self.modules: dict[str, str] = {}  # local dotted name → message module
        self.others: dict[str, str] = {}  # local dotted name → another module (it may re-export a message class)
        if this_module in classes:
            self.names.update(classes[this_module])
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    local = alias.asname or alias.name
                    full = f"{node.module}.{alias.name}"
                    if full in classes:
                        self.modules[local] = full
                    elif (cls := self._exported(node.module, alias.name)) is not None:
                        self.names[local] = cls
                    else:
                        self.others[local] = full
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in classes:
                        self.modules[alias.asname or alias.name] = alias.name
                    else:
                        self.others[alias.asname or alias.name] = alias.name

    def _exported(self, module: str, name: str) -> type | None:
        if module in self.classes:
            return self.classes[module].get(name)
        if module.split(".")[0] not in ("services", "flexchain", "tests", "bench", "examples"):
            return None
        try:
            value = getattr(importlib.import_module(module), name, None)
        except Exception:  # a module that does not import here: not a message re-export we can see
            return None
        return value if isinstance(value, type) and id(value) in self.by_identity else None

    def resolve(self, func: ast.expr) -> type | None:
        if isinstance(func, ast.Name):
            return self.names.get(func.id)
        if isinstance(func, ast.Attribute):
            dotted = _dotted(func.value)
            if dotted in self.modules:
                return self.classes[self.modules[dotted]].get(func.attr)
            if dotted in self.others:  # `import tests.unit.x as props` … `props.RegisterSku(...)`, re-exported
                return self._exported(self.others[dotted], func.attr)
        return None


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None


def keywords(src: str, path: Path, classes: dict[str, dict[str, type]], problems: list[str], spans: list[tuple[int, int]]) -> str:
    """``field=`` before every positional argument of a message construction; the lines of each
    rewritten call go to ``spans`` (inserting text keeps every line where it was)."""
    tree = ast.parse(src)
    resolver = Resolver(tree, module_name(path), classes)
    lines = src.splitlines(keepends=True)
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(src).readline) if t.type not in _TRIVIA]
    edits: list[tuple[tuple[int, int], tuple[int, int], str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        cls, args, after = resolver.resolve(node.func), node.args, node.func
        if cls is None and _is_builds(node.func):  # hypothesis: st.builds(Class, *field strategies)
            cls, args, after = resolver.resolve(node.args[0]), node.args[1:], node.args[0]
        if cls is None or not args:
            continue
        where = f"{path.relative_to(ROOT)}:{node.lineno}"
        if any(isinstance(a, ast.Starred) for a in args):
            problems.append(f"{where}: {cls.__name__}(*...) left positional")
            continue
        fields = [f.name for f in dataclasses.fields(cls) if f.init]
        if len(args) > len(fields):
            problems.append(f"{where}: {cls.__name__} given {len(args)} positional arguments, has {len(fields)} fields")
            continue
        assert after.end_lineno is not None
        opener = "(" if after is node.func else ","  # the call's (, or the comma after st.builds' class
        start = _next(tokens, _pos(lines, after.end_lineno, after.end_col_offset), opener)
        arg_end = (0, 0)
        for i, arg in enumerate(args):
            if i:
                start = _next(tokens, _pos(lines, arg_end[0], arg_end[1]), ",")
            at = _first_after(tokens, start)  # the argument's first token (maybe a parenthesis around it)
            edits.append((at, at, f"{fields[i]}="))
            spans.append((node.lineno, node.end_lineno or node.lineno))
            assert arg.end_lineno is not None
            arg_end = (arg.end_lineno, arg.end_col_offset)
    return _apply(lines, edits)


def _is_builds(func: ast.expr) -> bool:
    return (isinstance(func, ast.Name) and func.id == "builds") or (isinstance(func, ast.Attribute) and func.attr == "builds")


_TRIVIA = {tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT}


def _next(tokens: list[tokenize.TokenInfo], at: tuple[int, int], op: str) -> tuple[int, int]:
    """The end of the first ``op`` token at or after position ``at``."""
    for tok in tokens:
        if tok.start >= at and tok.type == tokenize.OP and tok.string == op:
            return tok.end
    raise ValueError(f"no {op!r} after {at}")


def _first_after(tokens: list[tokenize.TokenInfo], at: tuple[int, int]) -> tuple[int, int]:
    for tok in tokens:
        if tok.start >= at:
            return tok.start
    raise ValueError(f"nothing after {at}")


# --- driver ---------------------------------------------------------------------------------------------


def ruff(*args: str, check: bool = True) -> int:
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, check=check).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file would change")
    args = parser.parse_args()
    changed: list[Path] = []
    formatted: dict[Path, bool] = {}  # a changed .py file: was it as `ruff format` writes it, before?

    def update(path: Path, new: str, old: str) -> None:
        if new != old:
            changed.append(path)
            if path.suffix == ".py" and path not in formatted:
                formatted[path] = ruff("format", "--check", "--quiet", str(path), check=False) == 0
            if not args.check:
                path.write_text(new, encoding="utf-8")

    # 1. renames, before any message module is imported (pass 2 imports the renamed classes)
    for path in files(CODE_DIRS, "*.py"):
        src = path.read_text(encoding="utf-8")
        update(path, rename_python(src), src)
    for pattern in DOC_GLOBS:
        for path in sorted(ROOT.glob(pattern)):
            if not SKIP_PARTS & set(path.relative_to(ROOT).parts):
                src = path.read_text(encoding="utf-8")
                update(path, rename_markdown(src), src)
    stale = [ROOT / "schemas" / svc / f"{old}.avsc" for (svc, old) in RENAMES]
    stale = [p for p in stale if p.exists()]
    changed += stale
    if args.check and changed:
        for path in changed:
            print(f"would change {path.relative_to(ROOT)}")
        return 1
    for path in stale:
        path.unlink()

    # 2. kw_only on every message dataclass; 3. keywords in every construction
    for name in ("libs", str(ROOT)):
        if name not in sys.path:
            sys.path.insert(0, str(ROOT / name) if name == "libs" else name)
    classes = message_classes()
    for mod, defined in classes.items():
        spec = importlib.import_module(mod).__file__
        assert spec is not None
        path = Path(spec)
        src = path.read_text(encoding="utf-8")
        update(path, add_kw_only(src, defined), src)
    problems: list[str] = []
    spans: dict[Path, list[tuple[int, int]]] = {}
    for path in files(CODE_DIRS, "*.py"):
        src = path.read_text(encoding="utf-8")
        update(path, keywords(src, path, classes, problems, spans.setdefault(path, [])), src)
    for problem in problems:
        print(f"not rewritten: {problem}")
    if args.check:
        for path in changed:
            print(f"would change {path.relative_to(ROOT)}")
        return 1 if changed else 0
    # the long lines keywords make, wrapped as ruff does (the repository is `ruff format`ted but for a
    # few files; a changed one of those is formatted whole: `ruff format --range` leaves long calls be)
    for path, was_formatted in formatted.items():
        ruff("format", "--quiet", str(path))
        ruff("check", "--quiet", "--fix", "--select", "RUF100", str(path), check=False)  # a `noqa: E501` now unused
        if not was_formatted:
            print(f"formatted whole (was not ruff-formatted before): {path.relative_to(ROOT)}")
    # the renamed classes' schemas: written, and recorded as version 1 of the new names (a no-op when
    # nothing changed: kw_only and keywords leave every schema as it was)
    subprocess.run([sys.executable, "-m", "flexchain.cli", "schemas", "write"], cwd=ROOT, check=True)
    print(f"{len(set(changed))} file(s) changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
