"""Issue 12, item 2: folding the loyalty service's own log is idempotent — the member histories of
test_loyalty_properties (joins with referrals, purchases, completions, reversals, behaviour, redemptions,
usage cycles — a broadcast — and ticks over months: expiry, stages, RFM), the referral routed back as
the router does, each command enveloped as the processor writes it; see tests/unit/foldlog.py for what
is checked."""

from __future__ import annotations

from hypothesis import given, settings

from flexchain.messages import Message
from services.loyalty import policy
from services.loyalty.app import service
from services.loyalty.messages import ReferralCompleted
from tests.unit.foldlog import HOUR, OwnLog, check_fold, horizon_st, repeats_st
from tests.unit.loyalty.builders import T0
from tests.unit.loyalty.test_loyalty_properties import history_st


@settings(max_examples=50, deadline=None)
@given(history_st, horizon_st, repeats_st)
def test_folding_the_loyalty_log_with_repeats_gives_the_live_partition(
    history: list[tuple[int, object]], horizon: int, repeats: list[tuple[str, int, int]]
) -> None:
    own = OwnLog(service(), horizon, partition=1)
    t = T0
    for hours, build in history:  # as test_loyalty_properties.play
        t += hours * HOUR
        queue: list[Message] = [build(t)]  # type: ignore[operator]
        while queue:
            for e in own.handle(queue.pop(0), t):
                if isinstance(e, ReferralCompleted):
                    queue += policy.react(e)
    check_fold(own, repeats)
