"""The simulation report renders from its numbers alone (issue 15), also for a run too short for every figure
to exist: `tests/unit/data/simulate-3-days-seed-7.json` is the numbers.json of `flexchain simulate --days 3
--seed 7`, where no gift rule has shipped a gift yet, so GET /gift-rules/{id} answers ROI "" (R-ORD-6)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from flexchain.tools import report

NUMBERS = Path(__file__).parent / "data" / "simulate-3-days-seed-7.json"


def test_a_short_run_without_gift_cost_still_renders_every_plot(tmp_path: Path) -> None:
    n = json.loads(NUMBERS.read_text())
    assert any(g["roi"] == "" for g in n["gifts"].values())  # the case this test is about
    page = report.write(tmp_path, n, "three days").read_text()
    images = re.findall(r"<img alt='([^']+)' src='data:image/png;base64,", page)
    assert "Gift rules" in images
    pngs = sorted((tmp_path / "plots").glob("*.png"))
    assert len(pngs) == len(images) >= 5
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in pngs)
