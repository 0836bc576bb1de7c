"""`derived_id` builds its RFC 4122 version-5 string without `uuid.UUID` (a tenth of a command's step
went to it): it must give exactly the ids `uuid.uuid5` gave — every event already in a log was
stamped with those, and dedup and replays recognise an event again by its id (R-X-2)."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from flexchain.messages import ID_NAMESPACE, derived_id


@given(cause=st.text(), index=st.integers(min_value=0, max_value=10**9), scope=st.text())
def test_derived_id_is_uuid5_of_scope_cause_and_index(cause: str, index: int, scope: str) -> None:
    assert derived_id(cause, index, scope) == str(uuid.uuid5(ID_NAMESPACE, f"{scope}/{cause}/{index}"))


def test_a_known_id_stays_the_same() -> None:
    # the id uuid.uuid5 gave for this cause, as written into logs before (a literal: it cannot drift)
    assert derived_id("0f8fad5b-d9cb-469f-a165-70867728950e", 0, "inventory") == "29023a10-4909-59bf-acb1-554ee00a7252"
    got = uuid.UUID(derived_id("c", 1))
    assert got.version == 5 and got.variant == uuid.RFC_4122
