#!/usr/bin/env python
"""Record the published versions of the Avro schemas (what a registry would keep), for the
BACKWARD_TRANSITIVE check of tests/deploy/test_schema_compat.py.

    .venv/bin/python scripts/record-schema-versions.py [SERVICE ...]   (default: order inventory clock)

For every message of the given services, the current schema (schemas/<service>/<Name>.avsc with the
envelope inlined — the self-contained form a registry stores) is compared with the latest version in
deploy/schema-history/<service>/<Name>.v<n>.avsc. If it differs it must be BACKWARD compatible with
EVERY recorded version (Avro resolution rules, tests/deploy/avro_compat.py); then it is written as
v<n+1>. An incompatible schema is refused and nothing is written: make the change compatible (a
default for a new field, keep old union branches) or publish a new message type.
Run it when a service's schemas are released (e.g. at merge); CI checks the working tree against
what is recorded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flexchain.asyncapi import _inline_envelope  # noqa: E402
from flexchain.catalog import all_messages  # noqa: E402
from flexchain.schemas import SCHEMAS_DIR, load_json, schema_path  # noqa: E402
from tests.deploy.avro_compat import incompatibilities, resolve_samples  # noqa: E402

HISTORY = ROOT / "deploy" / "schema-history"


def versions(service: str, name: str) -> list[Path]:
    found = sorted((HISTORY / service).glob(f"{name}.v*.avsc"), key=lambda p: int(p.name.rsplit(".v", 1)[1][:-5]))
    return found


def main(argv: list[str]) -> int:
    services = argv or ["order", "inventory", "clock"]
    refused = 0
    written = 0
    for cls in all_messages():
        if cls.SERVICE not in services:
            continue
        current = _inline_envelope(load_json(schema_path(cls, SCHEMAS_DIR)), SCHEMAS_DIR)
        past = versions(cls.SERVICE, cls.__name__)
        if past and load_json(past[-1]) == current:
            continue
        problems = []
        for old in past:
            why = incompatibilities(load_json(old), current) + resolve_samples(load_json(old), current)
            problems += [f"{old.name}: {w}" for w in why]
        if problems:
            refused += 1
            print(f"REFUSED {cls.full_name()}:\n  " + "\n  ".join(problems))
            continue
        target = HISTORY / cls.SERVICE / f"{cls.__name__}.v{len(past) + 1}.avsc"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(current, indent=2) + "\n", encoding="utf-8")
        written += 1
        print(f"recorded {target.relative_to(ROOT)}")
    print(f"{written} new version(s), {refused} refused")
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
