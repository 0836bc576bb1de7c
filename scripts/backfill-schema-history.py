#!/usr/bin/env python
"""Derive schemas/history/ from git: every distinct content that schemas/<service>/<Type>.avsc had in
the log of a branch (default main), oldest first, is a released version — v1, v2, … — stored
self-contained with the envelope of the same commit inlined (so each file's id is the id records
were written with then). The current schema is the last version of each type.

    .venv/bin/python scripts/backfill-schema-history.py [--ref main] [--check]

Idempotent; it only adds files (an existing vN must hold the content it derives for vN, or it stops).
`--check` writes nothing and exits 1 if a file would be added. `flexchain schemas` records versions
from then on; this script is how the history before it was reconstructed (issue 12).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flexchain.history import version_path  # noqa: E402
from flexchain.schemas import inline_envelope, load_json  # noqa: E402

SCHEMAS = ROOT / "schemas"


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout


def derive(ref: str) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(service, type) → its distinct self-contained schemas in the order they first appeared."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for commit in git("log", "--reverse", "--format=%H", ref, "--", "schemas").split():
        files = git("ls-tree", "-r", "--name-only", commit, "schemas").split()
        if "schemas/common/Envelope.avsc" not in files:
            continue
        envelope = json.loads(git("show", f"{commit}:schemas/common/Envelope.avsc"))
        for f in files:
            parts = f.split("/")
            if len(parts) != 3 or parts[1] in ("common", "history") or not f.endswith(".avsc"):
                continue
            schema = inline_envelope(json.loads(git("show", f"{commit}:{f}")), envelope)
            versions = out.setdefault((parts[1], parts[2].removesuffix(".avsc")), [])
            if schema not in versions:
                versions.append(schema)
    # the working tree's schema is the current one: it must be the last version
    for (service, name), versions in out.items():
        path = SCHEMAS / service / f"{name}.avsc"
        if path.is_file():
            current = inline_envelope(load_json(path), load_json(SCHEMAS / "common" / "Envelope.avsc"))
            if versions[-1] != current:
                versions.append(current)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref", default="main")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    added = 0
    for (service, name), versions in sorted(derive(args.ref).items()):
        for n, schema in enumerate(versions, start=1):
            path = version_path(service, name, n, SCHEMAS)
            if path.is_file():
                if load_json(path) != schema:
                    print(f"{path.relative_to(ROOT)} holds another content than git's v{n}: stop")
                    return 1
                continue
            added += 1
            if args.check:
                print(f"missing {path.relative_to(ROOT)}")
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
            print(f"recorded {path.relative_to(ROOT)}")
    print(f"{added} version(s) {'missing' if args.check else 'added'}")
    return 1 if args.check and added else 0


if __name__ == "__main__":
    sys.exit(main())
