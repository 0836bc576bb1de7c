"""What the ops commands print: a table for people, JSON for scripts (``--json``).

Every ops command builds a list of rows (dicts with the same keys, in column order) and hands it to
:func:`emit`; nothing else prints results. Progress (anything over a second) goes to stderr through
:func:`progress`, so ``--json`` output on stdout stays parseable.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON (for scripts) instead of a table")]

_err = Console(stderr=True)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False, default=str)
    return str(v)


def emit(rows: Sequence[Mapping[str, Any]], *, as_json: bool, title: str | None = None, empty: str = "nothing") -> None:
    """Print rows: a JSON array with ``--json``, else a table (columns = keys of the first row)."""
    if as_json:
        typer.echo(json.dumps(list(rows), ensure_ascii=False, default=str, indent=2))
        return
    if not rows:
        typer.echo(empty)
        return
    table = Table(title=title)
    for key in rows[0]:
        table.add_column(key.replace("_", " "))
    for row in rows:
        table.add_row(*(_cell(row.get(k)) for k in rows[0]))
    Console(soft_wrap=True).print(table)


def emit_one(doc: Mapping[str, Any], *, as_json: bool) -> None:
    """Print one document: JSON with ``--json``, else ``key: value`` lines."""
    if as_json:
        typer.echo(json.dumps(dict(doc), ensure_ascii=False, default=str, indent=2))
        return
    width = max((len(k) for k in doc), default=0)
    for k, v in doc.items():
        typer.echo(f"{k.ljust(width)}  {_cell(v)}")


@contextmanager
def progress(description: str, total: float | None) -> Iterator[Any]:
    """A progress bar on stderr; yields ``advance(completed)`` to set how far it is (absolute)."""
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_err,
        transient=not sys.stderr.isatty(),
    )
    with bar:
        task = bar.add_task(description, total=total)

        def advance(completed: float, total: float | None = None, description: str | None = None) -> None:
            kw: dict[str, Any] = {"completed": completed}
            if total is not None:
                kw["total"] = total
            if description is not None:
                kw["description"] = description
            bar.update(task, **kw)

        yield advance
