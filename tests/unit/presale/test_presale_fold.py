"""Issue 12, item 2: folding the presale service's own log is idempotent — the campaign histories of
test_presale_properties (deposits, pledges in every phase, payments, cancellations, refunds, echoes,
price rises and answers, milestones, ticks, closes), enveloped as the processor writes them; see
tests/unit/foldlog.py for what is checked."""

from __future__ import annotations

from hypothesis import given, settings
from presale_builders import CID, DELIVERY, END, START, T0
from test_presale_properties import History, command, history_st

from services.presale.app import SERVICE
from services.presale.messages import CollectDeposit, CreateCampaign, LaunchCampaign, ScheduleCampaign
from tests.unit.foldlog import OwnLog, check_fold, horizon_st, repeats_st


@settings(max_examples=60, deadline=None)
@given(history_st, horizon_st, repeats_st)
def test_folding_the_presale_log_with_repeats_gives_the_live_partition(
    h: History, horizon: int, repeats: list[tuple[str, int, int]]
) -> None:
    own = OwnLog(SERVICE, horizon, partition=0)
    own.handle(
        CreateCampaign(
            campaign_id=CID,
            product="notebook",
            unit_cost=2_000,
            fan_base=5_000,
            moq=min(h.moq, h.capacity * 8 // 10),
            max_capacity=h.capacity,
            split=h.split,
        ),
        T0,
    )
    for i in range(h.deposits):
        own.handle(CollectDeposit(campaign_id=CID, deposit_id=f"d{i}", member_id=f"dm{i}", amount=2_000 + 250 * i), T0)
    own.handle(ScheduleCampaign(campaign_id=CID, starts_at=START, ends_at=END, delivery_at=DELIVERY), T0)
    own.handle(LaunchCampaign(campaign_id=CID, force=True), T0)
    now = START - 1
    for step in h.steps:
        now += step.dt
        own.handle(command(step, own.live.state, now), now)
    check_fold(own, repeats)
