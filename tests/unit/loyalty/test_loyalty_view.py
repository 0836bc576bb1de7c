"""The members' read model (`LoyaltyView`): the ledger is held packed on disk (`LedgerStore`), and
a page of it must say exactly what the events said, for every movement type (R-LOY-2); the totals
sum them; the indexes keep one string per member whichever event brought it."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flexchain.messages import Envelope, Enveloped, Message, to_record
from services.loyalty.messages import (
    BatchPoints,
    MemberJoined,
    PointsEarned,
    PointsExpired,
    PointsRedeemed,
    PointsReleased,
    PointsReversed,
    RfmSegmentChanged,
    StageChanged,
)
from services.loyalty.views import LoyaltyView, ledger_page, member_totals

MEMBERS = ["m-1", "m-2", "会员-3"]
ints = st.integers(min_value=0, max_value=2**31)
text = st.text(min_size=0, max_size=12)
batches = st.lists(st.builds(BatchPoints, expires_at=ints, points=ints), max_size=3)


def movements(member: str) -> st.SearchStrategy[Message]:
    m = st.just(member)
    return st.one_of(
        st.builds(
            PointsEarned,
            member_id=m,
            points=ints,
            reason=text,
            source=text,
            pending=st.booleans(),
            expires_at=st.none() | ints,
        ),
        st.builds(PointsReleased, member_id=m, order_id=text, points=ints, source=text, expires_at=ints),
        st.builds(PointsRedeemed, member_id=m, redemption_id=text, points=ints, reward=text, source=text, taken=batches),
        st.builds(PointsExpired, member_id=m, points=ints, source=text, batches=batches),
        st.builds(
            PointsReversed,
            member_id=m,
            order_id=text,
            refund_id=text,
            points=ints,
            from_pending=ints,
            shortfall=ints,
            source=text,
            taken=batches,
        ),
    )


def enveloped(msg: Message, at: int, cause: str | None) -> Enveloped:
    env = Envelope(
        event_id=str(uuid.uuid4()),
        event_type=type(msg).__name__,
        aggregate_id=msg.key,
        aggregate_version=1,
        business_time=at,
        correlation_id=msg.key,
        causation_id=cause,
        producer="loyalty",
    )
    return Enveloped(envelope=env, message=msg)


history = st.lists(
    st.tuples(st.sampled_from(MEMBERS).flatmap(movements), ints, st.none() | st.uuids().map(str)),
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(history, st.integers(min_value=0, max_value=35), st.integers(min_value=1, max_value=10))
def test_a_ledger_page_says_what_the_events_said(events: list[tuple[Message, int, str | None]], offset: int, limit: int) -> None:
    view = LoyaltyView()
    for member in MEMBERS:  # the view folds every member's state too: the members join first
        view.fold(enveloped(MemberJoined(member_id=member, referrer_id=None, joined_at=0, via="api"), 0, None))
    items = [enveloped(msg, at, cause) for msg, at, cause in events]
    for item in items:
        view.fold(item)
    for member in MEMBERS:
        mine = [i for i in items if i.message.key == member]
        want: list[dict[str, Any]] = [
            {
                "type": type(i.message).__name__,
                "business_time": i.envelope.business_time,
                "event_id": i.envelope.event_id,
                "causation_id": i.envelope.causation_id,
                **{k: v for k, v in to_record(i.message).items() if k != "member_id"},
            }
            for i in mine
        ]
        page = ledger_page(view, member, offset, limit)
        assert page["total"] == len(mine)
        assert page["entries"] == want[offset : offset + limit]
        totals = member_totals(view, member)
        assert totals["earned"] == sum(i.message.points for i in mine if isinstance(i.message, PointsEarned))
        assert totals["reversed"] == sum(i.message.points for i in mine if isinstance(i.message, PointsReversed))
        assert totals["shortfall"] == sum(i.message.shortfall for i in mine if isinstance(i.message, PointsReversed))


def test_the_indexes_keep_one_string_per_member() -> None:
    view = LoyaltyView()
    # each event decoded from Kafka carries its own string objects: equal, not the same
    joined = "".join(["m-", "42"])
    view.fold(enveloped(MemberJoined(member_id=joined, referrer_id=None, joined_at=0, via="api"), 0, None))
    view.fold(enveloped(StageChanged(member_id="".join(["m-", "42"]), previous="prospect", stage="new", changed_at=1), 1, None))
    view.fold(
        enveloped(
            RfmSegmentChanged(
                member_id="".join(["m-", "42"]),
                segment="".join(["new", "comer"]),
                previous_segment="prospect",
                recency=1,
                frequency=1,
                monetary=1,
            ),
            2,
            None,
        )
    )
    earned = PointsEarned(member_id="".join(["m-", "42"]), points=5, reason="r", source="s", pending=False, expires_at=9)
    view.fold(enveloped(earned, 3, None))
    [in_segments] = list(view.segments)
    [in_stage] = list(view.by_stage["new"])
    assert in_segments is in_stage
    assert view.ledger.count("m-42") == 1
    [segment] = [k for k in view.by_segment if k != "prospect"]
    assert view.segments[in_segments] is segment  # the segment's name too: one string, not one a member
