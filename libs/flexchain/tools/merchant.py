"""A seeded, plausible content-commerce merchant (DOMAIN.md's numbers): its catalogue, warehouses,
gift rules, live streams, presale campaigns, distributors and members. Pure: `random.Random(seed)`
decides everything, ids derive from the seed, so one seed is one merchant."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

CHANNELS = ("live", "short_video", "article", "mini_program")
#: share of orders per channel on a day without a live stream (content commerce: video first)
CHANNEL_WEIGHTS = (0.25, 0.40, 0.10, 0.25)
REFUND_REASONS = ("no_reason", "defect", "damaged", "late")


@dataclass(frozen=True)
class Scale:
    name: str
    members: int
    orders_per_day: float  # mean on an ordinary day; live-stream days add their expected sales
    distributors: int  # at the start; recruitment grows the network
    stock_per_sku: int  # first receipt, split over the warehouses
    warehouses: tuple[str, ...]
    #: each product's first receipt split over every warehouse (else each product in its own one:
    #: an order's warehouse then never depends on the orders before it, so orders of a sku need not
    #: queue behind each other — see `Simulator.contended`)
    split_stock: bool = True
    stream_orders_per: int = 30  # a live stream sells 1 order per this many units of its expected sales


SCALES = {
    "small": Scale(
        "small", members=60, orders_per_day=2.4, distributors=3, stock_per_sku=130, warehouses=("shanghai", "guangzhou")
    ),
    "medium": Scale(
        "medium",
        members=6000,
        orders_per_day=520.0,
        distributors=40,
        stock_per_sku=60000,
        warehouses=("shanghai", "guangzhou", "chengdu"),
        split_stock=False,
        stream_orders_per=150,
    ),
}


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    price: int  # cents
    cost: int  # cents
    floor: int  # R-INV-3 absolute floor
    lead_time_days: int
    popularity: float


@dataclass(frozen=True)
class Gift:
    sku: str
    name: str
    cost: int
    tier: int  # R-INV-4 gift tier


@dataclass(frozen=True)
class GiftRule:
    rule_id: str
    main: str
    main_cost: int
    gift: str
    gift_cost: int
    fallback: str | None
    fallback_cost: int


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    product: str
    unit_cost: int
    fan_base: int
    moq: int
    capacity: int
    start_day: int
    days: int
    demand: float  # pledges per day (mean)
    succeeds: bool  # what the generator aims at (the services decide)


@dataclass(frozen=True)
class Member:
    member_id: str
    interval_days: int  # the member's own buying cycle
    drift_day: int | None  # the business day the member stops buying (drifts away), if any
    favourite: str  # sku
    referrer: str | None  # distributor who brought the member, if any


@dataclass
class Merchant:
    run: str
    products: list[Product]
    gifts: list[Gift]
    gift_rules: list[GiftRule]
    campaigns: list[Campaign]
    members: list[Member]
    founders: list[str]  # distributors at the start
    live_streams: dict[int, tuple[str, int]] = field(default_factory=dict)  # day → (sku, expected sales)


def generate(seed: int, days: int, scale: Scale) -> Merchant:
    rng = random.Random(seed)
    run = f"s{seed}"
    base = [
        ("mask", "Hydrating face mask", 5900, 2500, 50, 5, 1.0),
        ("serum", "Night serum", 12900, 5200, 50, 10, 0.55),
        ("cleanser", "Amino cleanser", 6900, 2300, 50, 7, 0.6),
        ("toner", "Rose toner", 8900, 3100, 50, 7, 0.4),
    ]
    products = [
        Product(f"{sku}-{run}", name, price + 100 * rng.randint(-5, 5), cost, floor, lead, pop)
        for sku, name, price, cost, floor, lead, pop in base
    ]
    gifts = [
        Gift(f"eyetrial-{run}", "Eye-mask trial", 300, 1),
        Gift(f"cloth-{run}", "Cleansing cloth", 150, 3),
        Gift(f"minitoner-{run}", "Toner travel size", 900, 2),
    ]
    mask, serum, _, toner = products
    rules = [
        GiftRule(f"eye-{run}", mask.sku, mask.cost, gifts[0].sku, gifts[0].cost, gifts[1].sku, gifts[1].cost),
        GiftRule(f"mini-{run}", serum.sku, serum.cost, gifts[2].sku, gifts[2].cost, None, 0),
        # too dear for the toner's margin at one unit: skipped (R-ORD-4) unless two or more are bought
        GiftRule(f"tonerpair-{run}", toner.sku, toner.cost, gifts[2].sku, 1300, None, 0),
    ]
    campaigns = [
        Campaign(f"notebook-{run}", f"notebook-{run}", 2000, 4000, 20, 120, 5, 8, 3.2, True),
        Campaign(f"lamp-{run}", f"lamp-{run}", 9000, 3000, 150, 400, 14, 6, 1.2, False),
    ]
    campaigns = [c for c in campaigns if c.start_day + c.days + 1 < days]  # closed (and refunded) in the run
    members = []
    for i in range(scale.members):
        drift = rng.randint(min(20, days), days) if rng.random() < 0.25 else None
        fav = rng.choices([p.sku for p in products], weights=[p.popularity for p in products])[0]
        members.append(Member(f"m{i:05d}-{run}", rng.choice((7, 10, 14, 21, 30, 45)), drift, fav, None))
    founders = [f"d{i:04d}-{run}" for i in range(scale.distributors)]
    streams: dict[int, tuple[str, int]] = {}
    for day in range(3, days - 1, 7):  # a weekly live stream (R-INV-3), rotating over the products
        p = products[(day // 7) % len(products)]
        # expected sales large enough that 20 % of them can lift the threshold over the floor
        streams[day] = (p.sku, int(scale.stock_per_sku * (1.5 + rng.random())))
    return Merchant(run, products, gifts, rules, campaigns, members, founders, streams)
