"""scripts/codemods/kw_messages.py (issue 17 items 6 and 7): the rewrites it makes, on small sources."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def codemod() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kw_messages", ROOT / "scripts" / "codemods" / "kw_messages.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["kw_messages"] = module
    spec.loader.exec_module(module)
    return module


SOURCE = """\
from hypothesis import strategies as st
from services.order import messages as m
from services.order.messages import OrderLine as Line, PlaceOrder

note = "价格"; line = Line("mask", (1 + 1), 1990)  # 注释
order = PlaceOrder(
    "o1",  # the id
    "m1",
    "live",
    [Line("serum", 1, unit_price=4900)],
)
other = m.OrderLine(*parts)
lines = st.builds(Line, st.text(), st.integers())
import tests.unit.inventory.test_inventory_properties as props
sku = props.RegisterSku("s1", "mask")
"""

EXPECTED = """\
from hypothesis import strategies as st
from services.order import messages as m
from services.order.messages import OrderLine as Line, PlaceOrder

note = "价格"; line = Line(sku="mask", qty=(1 + 1), unit_price=1990)  # 注释
order = PlaceOrder(
    order_id="o1",  # the id
    member_id="m1",
    channel="live",
    lines=[Line(sku="serum", qty=1, unit_price=4900)],
)
other = m.OrderLine(*parts)
lines = st.builds(Line, sku=st.text(), qty=st.integers())
import tests.unit.inventory.test_inventory_properties as props
sku = props.RegisterSku(sku="s1", name="mask")
"""


def test_positional_arguments_become_keywords_wherever_the_class_comes_from(codemod: ModuleType) -> None:
    classes = codemod.message_classes()
    problems: list[str] = []
    path = ROOT / "tests" / "unit" / "sample.py"
    out = codemod.keywords(SOURCE, path, classes, problems, [])
    assert out == EXPECTED
    assert problems == ["tests/unit/sample.py:12: OrderLine(*...) left positional"]
    assert codemod.keywords(out, path, classes, [], []) == out  # a second run changes nothing


def test_kw_only_is_added_once(codemod: ModuleType) -> None:
    src = "@dataclass(frozen=True, slots=True)\nclass A:\n    x: int\n\n\n@dataclass\nclass B:\n    y: int\n"
    out = codemod.add_kw_only(src, {"A": object, "B": object})
    assert out.splitlines()[0] == "@dataclass(frozen=True, slots=True, kw_only=True)"
    assert out.splitlines()[5] == "@dataclass(kw_only=True)"
    assert codemod.add_kw_only(out, {"A": object, "B": object}) == out


def test_renames_reach_names_strings_and_comments_but_not_a_line_that_says_formerly(codemod: ModuleType) -> None:
    src = (
        "from services.order.messages import GiftRuleHealthy\n"  # formerly
        'x = {"StockBackInStock": 1}  # a StockBackInStock\n'  # formerly
        'FORMERLY = ("SupplierPenaltyDue",)  # formerly\n'  # formerly
        "y = GiftRuleHealthyish\n"  # formerly
    )
    assert codemod.rename_python(src) == (
        "from services.order.messages import GiftRuleRecovered\n"
        'x = {"StockBecameAvailable": 1}  # a StockBecameAvailable\n'
        'FORMERLY = ("SupplierPenaltyDue",)  # formerly\n'  # formerly
        "y = GiftRuleHealthyish\n"  # formerly
    )
