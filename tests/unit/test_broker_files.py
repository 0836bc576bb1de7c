"""The local broker provisions itself from files of the checkout: a clean clone has no jars cached, so
the Maven pom that fetches them must be where `flexchain.tools.broker` looks (it moved once, with the
module, and only a run without the jar cache noticed)."""

from __future__ import annotations

from flexchain.settings import PROJECT_ROOT
from flexchain.tools import broker


def test_the_broker_finds_the_pom_of_its_jars_in_the_checkout() -> None:
    assert broker._DEFAULT_POM == PROJECT_ROOT / "deploy" / "kafka" / "pom.xml"
    assert broker._DEFAULT_POM.is_file()
