"""A running service with authentication on (README "Security"), its probes and metrics on their own
port (`FLEXCHAIN_OPS_PORT`): the roles a caller's token carries decide, end to end on the real broker,
and what was refused shows in the metrics without a token."""

from __future__ import annotations

from pathlib import Path

import httpx

from flexchain.procs import free_port
from tests.support import Suite, http


def test_roles_decide_and_the_ops_port_serves_only_probes_and_metrics(kafka_bootstrap: str, prefix: str, data_dir: Path) -> None:
    suite = Suite(kafka_bootstrap, prefix, data_dir)
    ops_port = free_port()
    try:
        url = suite.start("inventory", FLEXCHAIN_OPS_PORT=str(ops_port)).url
        ops = f"http://127.0.0.1:{ops_port}"
        sku = {"sku": "mask", "name": "Face mask"}
        assert httpx.post(f"{url}/skus", json=sku, timeout=15).status_code == 401
        assert http("POST", f"{url}/skus", role="reader", json=sku).status_code == 403
        assert http("POST", f"{url}/skus", role="service", json=sku).status_code == 403
        assert http("POST", f"{url}/skus", role="merchant", json=sku, params={"wait": 30}).status_code == 200
        assert http("GET", f"{url}/skus/mask", role="reader").json()["sku"] == "mask"
        assert http("POST", f"{url}/internal/rebuild", role="merchant").status_code == 403

        assert httpx.get(f"{ops}/ready", timeout=10).status_code == 200
        metrics = httpx.get(f"{ops}/metrics", timeout=10).text
        assert 'flexchain_inventory_http_refused_total{reason="missing"} 1.0' in metrics
        assert 'flexchain_inventory_http_refused_total{reason="forbidden"} 3.0' in metrics
        assert httpx.get(f"{ops}/skus/mask", timeout=10).status_code == 404  # nothing of the API there
        assert http("GET", f"{url}/metrics").status_code == 404  # and the metrics only there
        assert httpx.get(f"{url}/ready", timeout=10).status_code == 200  # the probes on both
    finally:
        suite.stop_all()
