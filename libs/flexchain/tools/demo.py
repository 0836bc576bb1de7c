"""The demo: a fresh local broker, all five services as separate processes, and a scenario.

Stock arrives in two warehouses and a gift rule pairs the face mask with an eye-mask trial (a cloth
as fallback); a two-level distributor chain sells. Single- and multi-sku orders are placed, paid and
shipped; one order is rejected for lack of stock (its other line's hold released by the saga); one
is cancelled; a live-stream rush pushes a sku below its threshold (one alert, with its
replenishment and transfer suggestions) and the last order gets no gift, yet goes on; business time
moves 31 minutes and the unpaid orders are cancelled; a presale order is priced by its campaign and
escrowed in buckets; 8 days later the return window closes (points available, commission payable);
then a defect refund cascades through every service (R-X-3); last, the stock and an order as they
stood before the 31-minute tick, asked afterwards (R-X-4).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from flexchain.auth import bearer, ensure_local_auth
from flexchain.catalog import SERVICES
from flexchain.procs import ServiceProcess, stopped_like_ctrl_c
from flexchain.settings import Settings
from flexchain.tools import broker as kbroker

ORDER = "http://127.0.0.1:8081"
INVENTORY = "http://127.0.0.1:8082"
PRESALE = "http://127.0.0.1:8083"
COMMISSION = "http://127.0.0.1:8084"
LOYALTY = "http://127.0.0.1:8085"
DAY = 24 * 3_600_000
T0 = 1_795_000_000_000  # business time of the demo (ms), a fixed point so reruns read the same


def say(text: str = "") -> None:
    print(text, flush=True)


def _get(url: str, **kw: Any) -> httpx.Response:
    return httpx.get(url, headers=bearer(), **kw)


def _send(url: str, **kw: Any) -> httpx.Response:
    return httpx.post(url, headers=bearer(), **kw)


APPLY_WAIT_S = 30  # the most a command route waits for its events (`?wait=`): a busy machine is slow


def _post(url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """A command, answered once its events are in the log: every step reads what the one before did."""
    r = _send(url, json=body, params={"wait": APPLY_WAIT_S}, timeout=APPLY_WAIT_S + 15)
    if r.status_code >= 500:
        r.raise_for_status()
    if r.status_code == 202:
        raise TimeoutError(f"{url}: accepted, but its events did not arrive within {APPLY_WAIT_S}s (is a service stuck?)")
    data: dict[str, Any] = r.json()
    data["http_status"] = r.status_code
    return data


def _order_settled(order_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = _get(f"{ORDER}/orders/{order_id}", timeout=5)
        if r.status_code == 200 and r.json()["status"] != "placed":
            data: dict[str, Any] = r.json()
            return data
        if time.monotonic() > deadline:
            raise TimeoutError(f"order {order_id} did not settle")
        time.sleep(0.1)


def _appeared(url: str, timeout: float = 30.0) -> None:
    """Wait until `url` answers 200: what another service builds from events exists a moment later."""
    deadline = time.monotonic() + timeout
    while _get(url, timeout=5).status_code != 200:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not appear within {timeout:.0f}s")
        time.sleep(0.1)


def _status(order_id: str) -> str:
    return str(_get(f"{ORDER}/orders/{order_id}", timeout=5).json()["status"])


def _sku(sku: str) -> dict[str, Any]:
    data: dict[str, Any] = _get(f"{INVENTORY}/skus/{sku}", timeout=5).json()
    return data


def _stock_line(sku: str) -> str:
    s = _sku(sku)
    per = ", ".join(f"{w} {v['available']}/{v['on_hand']}" for w, v in s["warehouses"].items())
    alert = "  LOW-STOCK ALERT" if s["low_stock_alert"] else ""
    clearance = f", {_clearance(sku)} in clearance" if _clearance(sku) else ""
    return f"{sku}: available {s['available']} of {s['on_hand']} on hand{clearance} ({per}; threshold {s['threshold']}){alert}"


def _tick(clock: Settings, at: int) -> None:
    """Business time `at` on `clock.ticks`, published with `clock`'s settings (e.g. the `clock` principal's)."""
    import asyncio

    from flexchain.clock import ClockPublisher

    async def go() -> None:
        async with ClockPublisher(clock) as publisher:
            await publisher.tick(at)

    asyncio.run(go())


@contextlib.contextmanager
def services_at(urls: Mapping[str, str]) -> Iterator[None]:
    """Point the scenario at these base URLs (service name → URL; the others keep theirs) while inside."""
    global ORDER, INVENTORY, PRESALE, COMMISSION, LOYALTY
    before = (ORDER, INVENTORY, PRESALE, COMMISSION, LOYALTY)
    ORDER = urls.get("order", ORDER)
    INVENTORY = urls.get("inventory", INVENTORY)
    PRESALE = urls.get("presale", PRESALE)
    COMMISSION = urls.get("commission", COMMISSION)
    LOYALTY = urls.get("loyalty", LOYALTY)
    try:
        yield
    finally:
        ORDER, INVENTORY, PRESALE, COMMISSION, LOYALTY = before


def scenario(clock: str | Settings, run: str, urls: Mapping[str, str] | None = None) -> None:
    """The demo's story. `clock`: a bootstrap address, or the client settings the clock ticks are
    published with (a secured cluster: the `clock` principal's); `urls`: the services' base URLs,
    if not the local default ports."""
    if isinstance(clock, str):
        clock = Settings(kafka_bootstrap_servers=clock)
    with services_at(urls or {}):
        _scenario(clock, run)


def _scenario(clock: Settings, run: str) -> None:
    def oid(name: str) -> str:
        return f"{name}-{run}"

    _tick(clock, T0)
    say("1. Catalogue and stock in two warehouses")
    for sku, name, floor in (("mask", "Hydrating face mask", 50), ("serum", "Night serum", 10)):
        _post(f"{INVENTORY}/skus", {"sku": f"{sku}-{run}", "name": name, "low_stock_floor": floor})
    for sku, name in (("eyetrial", "Eye-mask trial (gift)"), ("cloth", "Cleansing cloth (fallback gift)")):
        _post(f"{INVENTORY}/skus", {"sku": f"{sku}-{run}", "name": name, "is_gift": True, "low_stock_floor": 0})
        _post(f"{INVENTORY}/skus/{sku}-{run}/receipts", {"warehouse": "shanghai", "qty": 1, "reference": "PO-G"})
    _post(f"{INVENTORY}/skus/mask-{run}/receipts", {"warehouse": "shanghai", "qty": 120, "reference": "PO-1"})
    _post(f"{INVENTORY}/skus/mask-{run}/receipts", {"warehouse": "guangzhou", "qty": 80, "reference": "PO-2"})
    _post(f"{INVENTORY}/skus/serum-{run}/receipts", {"warehouse": "shanghai", "qty": 30, "reference": "PO-3"})
    for sku in ("mask", "serum"):
        say("   " + _stock_line(f"{sku}-{run}"))

    say("   gift rule: an eye-mask trial with every live / short-video face mask (fallback: a cloth; 1 of each in stock)")
    _post(
        f"{ORDER}/gift-rules",
        {
            "rule_id": f"eye-{run}",
            "tier": "base",
            "main_sku": f"mask-{run}",
            "main_unit_cost": 2500,
            "gift_sku": f"eyetrial-{run}",
            "gift_unit_cost": 600,
            "fallback_sku": f"cloth-{run}",
            "fallback_unit_cost": 200,
        },
    )
    say("   distributors: lin-" + run + " recruited by ming-" + run + " (commission flows 2 levels up)")
    _post(f"{COMMISSION}/distributors", {"distributor_id": f"ming-{run}"})
    _post(f"{COMMISSION}/distributors", {"distributor_id": f"lin-{run}", "upline_id": f"ming-{run}"})

    def place(
        name: str, lines: list[tuple[str, int, int]], channel: str = "live", distributor: str | None = None
    ) -> dict[str, Any]:
        body = {
            "order_id": oid(name),
            "member_id": f"m-{run}",
            "channel": channel,
            "distributor_id": distributor,
            "lines": [{"sku": f"{s}-{run}", "qty": q, "unit_price": p} for s, q, p in lines],
        }
        _post(f"{ORDER}/orders", body)
        return _order_settled(oid(name))

    say("2. A single-sku order: placed → confirmed → paid → shipped → delivered")
    a = place("A", [("mask", 2, 5900)], "short_video", distributor=f"lin-{run}")
    _post(f"{ORDER}/orders/{oid('A')}/payment", {"amount": a["total"], "payment_ref": "pay-A"})
    _post(f"{ORDER}/orders/{oid('A')}/shipment", {"tracking": "SF100"})
    _post(f"{ORDER}/orders/{oid('A')}/delivery")
    say(f"   order {oid('A')}: {_status(oid('A'))} (sold by distributor lin-{run}); gift: {_gift(oid('A'))}")
    _appeared(f"{LOYALTY}/members/m-{run}")  # loyalty makes the member from order.events: a moment later
    member = _get(f"{LOYALTY}/members/m-{run}", timeout=5).json()
    say(
        f"   loyalty: member m-{run} joined with the order — tier {member['tier']['name']}, "
        f"{member['points']['pending']} points pending until the return window closes"
    )
    lin = _get(f"{COMMISSION}/distributors/lin-{run}", timeout=5).json()["balances"]
    say(f"   commission: lin-{run} pending {lin['pending']} cents (15 % of 11800), plus the new-member referral bonus")

    say("3. A multi-sku order: one reservation per line, keyed by sku (the saga)")
    b = place("B", [("mask", 3, 5900), ("serum", 2, 12900)], "mini_program")
    _post(f"{ORDER}/orders/{oid('B')}/payment", {"amount": b["total"], "payment_ref": "pay-B"})
    say(f"   order {oid('B')}: {b['status']}, then paid; reservations {b['reservations']} (mini program: no gift)")

    say("4. An order that cannot be served: serum line rejected, the mask line's hold released")
    c = place("C", [("mask", 4, 5900), ("serum", 40, 12900)])
    say(f"   order {oid('C')}: {c['status']} — {c['history'][-1].get('reason')}")
    say(f"   (its gift, the fallback cloth since the trial went with A, was held and given back: {_gift(oid('C'))})")

    say("5. A cancel before shipping")
    place("D", [("serum", 5, 12900)], "article")
    held = _sku(f"serum-{run}")["available"]
    cancel = _post(f"{ORDER}/orders/{oid('D')}/cancellation", {"reason": "member changed their mind"})
    deadline = time.monotonic() + 15
    while _sku(f"serum-{run}")["available"] < held + 5 and time.monotonic() < deadline:
        time.sleep(0.1)  # the release travels order.events → inventory's router → inventory
    say(f"   order {oid('D')}: {cancel['status']} → cancelled; stock back")
    say("   " + _stock_line(f"serum-{run}"))

    say("6. A live-stream rush: 150 masks on one order → below the threshold, one alert")
    place("E", [("mask", 150, 4900)])
    say("   " + _stock_line(f"mask-{run}"))
    hint = _sku(f"mask-{run}")["suggestions"]
    transfers = ", ".join(f"{t['qty']} {t['from_warehouse']} → {t['to_warehouse']}" for t in hint["transfers"]) or "none"
    say(f"   with the alert: reorder {hint['replenishment']['qty']} units; transfers: {transfers} (R-INV-5)")
    say(f"   gift of E: {_gift(oid('E'))} (the fallback, free again after C); a last mask order F:")
    place("F", [("mask", 2, 5900)])
    say(f"   order {oid('F')}: {_status(oid('F'))}, gift {_gift(oid('F'))} — no gift left in stock, the order goes on")
    refused = _post(f"{ORDER}/orders/{oid('A')}/cancellation", {"reason": "too late"})
    say(f"   (a refused transition: cancel the delivered order A → HTTP {refused['http_status']}: {refused['detail']['reason']})")

    say("7. Business time +31 min (clock.ticks): unpaid orders E and F are cancelled, their stock released")
    _tick(clock, T0 + 31 * 60_000)
    deadline = time.monotonic() + 15
    while _status(oid("E")) != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.1)
    say(f"   order {oid('E')}: {_status(oid('E'))}, order {oid('F')}: {_status(oid('F'))}")
    time.sleep(0.5)
    say("   " + _stock_line(f"mask-{run}"))

    say("8. A presale campaign: the order is priced by the campaign's phase, its payment escrowed in buckets")
    camp = f"notebook-{run}"
    _post(
        f"{PRESALE}/campaigns",
        {"campaign_id": camp, "product": "glow notebook", "unit_cost": 2000, "fan_base": 1000, "moq": 1, "max_capacity": 100},
    )
    _post(f"{PRESALE}/campaigns/{camp}/schedule", {"starts_at": T0, "ends_at": T0 + 10 * DAY})
    _post(f"{PRESALE}/campaigns/{camp}/launch", {"force": True})
    _post(
        f"{ORDER}/orders",
        {
            "order_id": oid("P"),
            "member_id": f"m-{run}",
            "channel": "live",
            "campaign_id": camp,
            "lines": [{"sku": "notebook", "qty": 2, "unit_price": 0}],
        },
    )
    p = _order_settled(oid("P"))
    _post(f"{ORDER}/orders/{oid('P')}/payment", {"amount": p["total"], "payment_ref": "pay-P"})
    buckets: dict[str, Any] = {}
    deadline = time.monotonic() + 15
    while not buckets and time.monotonic() < deadline:
        c = _get(f"{PRESALE}/campaigns/{camp}", timeout=5).json()
        buckets = c["buckets"] if c["money"]["received"] else {}
        time.sleep(0.1)
    say(
        f"   order {oid('P')}: {p['lines'][0]['qty']} × {p['lines'][0]['unit_price']} cents (early bird, cost × 1.2), paid; "
        f"escrow {buckets}"
    )

    say("9. Business time +8 days: order A's return window closes → points available, commission payable")
    _tick(clock, T0 + 8 * DAY + 60_000)
    deadline = time.monotonic() + 15
    while _status(oid("A")) != "completed" and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    member = _get(f"{LOYALTY}/members/m-{run}", timeout=5).json()
    lin = _get(f"{COMMISSION}/distributors/lin-{run}", timeout=5).json()["balances"]
    ming = _get(f"{COMMISSION}/distributors/ming-{run}", timeout=5).json()["balances"]
    say(f"   order {oid('A')}: {_status(oid('A'))}; m-{run}: {member['points']['available']} points available")
    say(f"   commission payable: lin-{run} {lin['payable']} cents, ming-{run} {ming['payable']} cents (level 2: 5 %)")

    say("10. A refund cascades (R-X-3): both masks of order A come back defective, after the window")
    refund = _post(f"{ORDER}/orders/{oid('A')}/refunds", {"lines": [{"sku": f"mask-{run}", "qty": 2, "reason": "defect"}]})
    refunded = refund["events"][0]
    back = ", ".join(f"{g['qty']} × {g['sku']}" for g in refunded["gifts"]) or "none"
    say(f"   order {oid('A')}: {refunded['amount']} cents refunded; gift taken back: {back}")
    deadline = time.monotonic() + 15
    while _clearance(f"mask-{run}") < 2 and time.monotonic() < deadline:
        time.sleep(0.1)  # order.events → inventory's router → inventory
    time.sleep(1.0)
    say("   inventory: " + _stock_line(f"mask-{run}") + " — defective units to clearance (grade B)")
    say("   inventory: " + _stock_line(f"eyetrial-{run}") + " — the gift came back with them")
    member = _get(f"{LOYALTY}/members/m-{run}", timeout=5).json()
    lin = _get(f"{COMMISSION}/distributors/lin-{run}", timeout=5).json()["balances"]
    ming = _get(f"{COMMISSION}/distributors/ming-{run}", timeout=5).json()["balances"]
    points, tier = member["points"]["available"], member["tier"]["name"]
    say(f"   loyalty: m-{run} {points} points available, tier {tier} (the order's points taken back)")
    say(
        f"   commission clawed back at every level: lin-{run} {lin['clawed_back']} cents (payable now {lin['payable']}), "
        f"ming-{run} {ming['clawed_back']} cents (payable now {ming['payable']})"
    )

    say("11. Asked afterwards (R-X-4): the balances as they stood before the 31-minute tick, folded from the logs")
    then = _get(f"{INVENTORY}/skus/mask-{run}", params={"as_of": T0}, timeout=30).json()
    order_e = _get(f"{ORDER}/orders/{oid('E')}", params={"as_of": T0}, timeout=30).json()
    now = _sku(f"mask-{run}")
    was, now_is = f"{then['available']} of {then['on_hand']}", f"{now['available']} of {now['on_hand']}"
    say(f"   mask-{run} as of then: available {was} (now {now_is})")
    say(f"   order {oid('E')} as of then: {order_e['status']} (now {_status(oid('E'))})")


def _clearance(sku: str) -> int:
    return sum(int(w.get("clearance", 0)) for w in _sku(sku)["warehouses"].values())


def _gift(order_id: str) -> str:
    gifts = _get(f"{ORDER}/orders/{order_id}", timeout=5).json().get("gifts", {})
    return ", ".join(f"{g['sku']} ({g['status']})" for g in gifts.values()) or "none"


def fresh_local_run(root: Path, port: int) -> tuple[kbroker.BrokerConfig, str | None, dict[str, str]]:
    """How a local run starts (the demo, `flexchain simulate`): its broker's config under `root/broker`
    — a broker left running there stopped and `root` emptied — unless `KAFKA_BOOTSTRAP_SERVERS` names
    a cluster (returned, then used as is); and API keys per role for the services it starts, unless
    the environment sets them (`ensure_local_auth`; role → token, empty then)."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    cfg = kbroker.BrokerConfig(data_dir=root / "broker", port=port, controller_port=port + 1)
    if not external:
        if kbroker.status(cfg):
            kbroker.stop(cfg)
        shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    return cfg, external, ensure_local_auth(root / "tokens")


def run_demo(root: Path, port: int, wait: bool, run_id: str, jars: Path | None = None) -> int:
    """The demo: `root` holds the broker's data, the services' data and logs; `jars`, the Kafka jars
    (default: beside `root`)."""
    cfg, external, tokens = fresh_local_run(root, port)
    bootstrap = external or cfg.bootstrap
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "FLEXCHAIN_DATA_DIR": str(root / "data"),
        "FLEXCHAIN_CLOCK": "log",
        "FLEXCHAIN_ORDER_MEMBER_DISCOUNTS": "true",
    }
    suite = [ServiceProcess(name, env, root, port) for name, port in SERVICES.items()]
    # the broker and the services run in sessions of their own (a Ctrl-C in the terminal reaches only
    # the demo): whatever stops the demo, it stops them — SIGTERM and SIGHUP as Ctrl-C does
    with stopped_like_ctrl_c():
        try:
            if not external:
                say(f"Starting Apache Kafka {kbroker.KAFKA_VERSION} (KRaft, one broker) on {bootstrap} ...")
                kbroker.up(cfg, jars or root.parent / "kafka")
            say("Starting the services: " + ", ".join(f"{n} (:{p})" for n, p in SERVICES.items()) + " ...")
            for proc in suite:
                proc.start()
            for proc in suite:
                proc.wait_ready()
            say("Every service rebuilt its state and is ready.\n")
            scenario(bootstrap, run_id)
            say(
                "\nWhere to look:\n"
                f"  {ORDER}/orders/C-{run_id}          an order with its history\n"
                f"  {INVENTORY}/skus/mask-{run_id}     stock per warehouse\n"
                f"  {PRESALE}/campaigns/notebook-{run_id}/ledger   a campaign's money, line by line\n"
                f"  {COMMISSION}/orders/A-{run_id}/commission   the chain behind a commission\n"
                f"  {LOYALTY}/members/m-{run_id}/ledger   a member's points ledger\n"
                f"  http://127.0.0.1:808[1-5]/metrics, /docs   Prometheus metrics and the HTTP APIs of each service\n"
                f"  logs: {root}/<service>-0.log"
            )
            if tokens:
                say(
                    f'\nEvery route but /health, /ready and /metrics needs a token (README "Security"); this run\'s keys,\n'
                    f"one per role, are in {root / 'tokens'}/. For example:\n"
                    f"  export FLEXCHAIN_TOKEN=$(cat {root / 'tokens' / 'merchant'})\n"
                    f'  curl -H "Authorization: Bearer $FLEXCHAIN_TOKEN" {ORDER}/orders/C-{run_id}'
                )
            if wait:
                say("\nRunning. Press Ctrl-C (or send SIGTERM or SIGHUP) to stop everything.")
                with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C, SIGTERM, SIGHUP (`Stopped`)
                    while True:
                        signal.pause()
            return 0
        except KeyboardInterrupt as exc:
            say(f"\n{exc or 'SIGINT'} before the demo finished")
            return 1
        except Exception as exc:
            say(f"demo failed: {exc!r}")
            return 1
        finally:
            say("Stopping the services and the broker ...")
            for proc in suite:
                proc.stop()
            if not external:
                kbroker.stop(cfg)
            say("Stopped.")
