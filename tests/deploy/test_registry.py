"""The registry path, end to end with tools no one here wrote: Apicurio Registry (the Quarkus
distribution from Maven Central, io.apicurio:apicurio-registry-app:<v>:tar.gz:all) serves the
Confluent-compatible API; a service registers its schemas there and writes the Confluent wire format;
kcat (Debian) reads the topic, the registry answers the schema for the id in each record, and Apache
Avro's own avro-tools (Maven Central) decodes the body with it.

Debian's kcat is built without libserdes/avro (`kcat -V` lists no Avro), so its `-s value=avro -r URL`
answers "This build of kcat lacks Avro/Schema-Registry support"; the lookup by schema id is therefore
done against the registry's REST API (GET /schemas/ids/{id}, exactly what kcat's serdes would call),
and the decoding by avro-tools `fragtojson`. Where a kcat with Avro support is installed, it is used too.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flexchain.procs import free_port
from flexchain.settings import PROJECT_ROOT
from tests.support import Suite, eventually, get, post

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def registry(deploy_tools: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if shutil.which("java") is None:
        pytest.skip("no java: Apicurio Registry cannot run")
    home = Path(deploy_tools["APICURIO_DIR"])
    jar = next(home.glob("apicurio-registry-app-*-runner.jar"))
    port = free_port()
    log = tmp_path_factory.mktemp("apicurio") / "apicurio.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["java", "-Xmx384m", "-XX:TieredStopAtLevel=1", f"-Dquarkus.http.port={port}", "-Dquarkus.http.host=127.0.0.1",
             "-jar", str(jar)],
            cwd=home, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"Apicurio exited {proc.returncode}: {log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"Apicurio not ready: {log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"{base}/apis/ccompat/v7"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _kcat_records(bootstrap: str, topic: str) -> list[tuple[bytes, bytes]]:
    """(key, value) of every committed record, as kcat prints them with `-f '%K:%k%R%s'`: the key's length
    in decimal, a colon, the key, then the value framed by its length as a 4-byte big-endian integer."""
    proc = subprocess.run(
        ["kcat", "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q",
         "-X", "isolation.level=read_committed", "-f", "%K:%k%R%s"],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    data, out, pos = proc.stdout, [], 0
    while pos < len(data):
        colon = data.index(b":", pos)
        klen = max(int(data[pos:colon]), 0)
        key = data[colon + 1 : colon + 1 + klen]
        pos = colon + 1 + klen
        (vlen,) = struct.unpack(">i", data[pos : pos + 4])
        out.append((key, data[pos + 4 : pos + 4 + vlen]))
        pos += 4 + vlen
    return out


def _fragtojson(jar: str, schema: str, body: bytes, tmp: Path) -> dict[str, Any]:
    (tmp / "schema.avsc").write_text(schema)
    (tmp / "body.bin").write_bytes(body)
    proc = subprocess.run(
        ["java", "-XX:TieredStopAtLevel=1", "-jar", jar, "fragtojson",
         "--schema-file", str(tmp / "schema.avsc"), str(tmp / "body.bin")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def test_kcat_decodes_a_flexchain_topic_through_the_registry(
    registry: str, kafka_bootstrap: str, deploy_tools: dict[str, str], tmp_path: Path
) -> None:
    if shutil.which("kcat") is None:
        pytest.skip("kcat not installed (scripts/setup-deploy-tools.sh installs it with apt-get as root)")
    data = tmp_path / "data"
    data.mkdir()
    suite = Suite(kafka_bootstrap, f"reg{uuid.uuid4().hex[:6]}-", data, SCHEMA_REGISTRY_URL=registry)
    try:
        inv = suite.start("inventory")
        assert post(f"{inv.url}/skus", {"sku": "mask", "name": "Mask"}).status_code == 200
        assert post(f"{inv.url}/skus/mask/receipts", {"warehouse": "w1", "qty": 40}).status_code == 200
        eventually(lambda: get(f"{inv.url}/skus/mask")["on_hand"] == 40, what="stock received")
    finally:
        suite.stop_all()

    # the service registered its schemas under their full names (RecordNameStrategy)
    subjects = httpx.get(f"{registry}/subjects", timeout=10).json()
    assert "flexchain.inventory.SkuRegistered" in subjects and "flexchain.inventory.StockReceived" in subjects
    latest = httpx.get(f"{registry}/subjects/flexchain.inventory.SkuRegistered/versions/latest", timeout=10).json()

    records = _kcat_records(kafka_bootstrap, suite.topic("inventory.events"))
    assert len(records) >= 2
    decoded = []
    for key, value in records:
        assert value[0] == 0, "Confluent wire format: magic byte 0"
        (schema_id,) = struct.unpack(">I", value[1:5])
        answer = httpx.get(f"{registry}/schemas/ids/{schema_id}", timeout=10)
        assert answer.status_code == 200, f"registry does not know id {schema_id}"
        record = _fragtojson(deploy_tools["AVRO_TOOLS_JAR"], answer.json()["schema"], value[5:], tmp_path)
        decoded.append((key.decode(), schema_id, record))
    by_type = {r["envelope"]["event_type"]: (k, sid, r) for k, sid, r in decoded}
    key, sid, sku = by_type["SkuRegistered"]
    assert key == "mask" and sku["sku"] == "mask" and sku["name"] == "Mask"
    assert sid == latest["id"]
    _, _, received = by_type["StockReceived"]
    assert received["qty"] == 40 and received["warehouse"] == "w1"
    assert received["envelope"]["aggregate_id"] == "mask"

    version = subprocess.run(["kcat", "-V"], capture_output=True, text=True, check=False).stdout
    if "avro" in version.lower():  # a kcat built with libserdes: let it do the whole path itself
        proc = subprocess.run(
            ["kcat", "-b", kafka_bootstrap, "-C", "-t", suite.topic("inventory.events"), "-o", "beginning", "-e", "-q",
             "-s", "value=avro", "-r", registry.removesuffix("/apis/ccompat/v7") + "/apis/ccompat/v7", "-f", "%s\n"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == 0 and '"sku": "mask"' in proc.stdout.replace('"sku":"mask"', '"sku": "mask"'), proc.stderr
    else:
        proc = subprocess.run(
            ["kcat", "-b", kafka_bootstrap, "-C", "-t", suite.topic("inventory.events"), "-e",
             "-s", "value=avro", "-r", registry],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert "lacks Avro/Schema-Registry support" in proc.stderr

    # README "Subscribe from your own system": the confluent-kafka example, given only the registry
    example = PROJECT_ROOT / "examples" / "subscribe" / "confluent_subscriber.py"
    proc = subprocess.run(
        [sys.executable, str(example), "--bootstrap", kafka_bootstrap, "--registry", registry,
         "--group", f"sub-{uuid.uuid4().hex[:6]}", "--to-end", suite.topic("inventory.events")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["event_id"] for line in lines] == [r["envelope"]["event_id"] for _, _, r in decoded]
    assert [line["type"] for line in lines][:2] == ["SkuRegistered", "StockReceived"]


def test_the_codec_reads_old_schema_versions_through_the_registry(registry: str) -> None:
    """A record written by an earlier release carries the registry id of ITS schema: today's codec asks
    the registry for that writer schema (GET /schemas/ids/{id}) and reads the record into today's class
    — by Avro resolution, or by the type's upcaster where resolution cannot (OrderConfirmed v1)."""
    from fastavro import parse_schema, schemaless_writer

    from flexchain.history import versions_of
    from flexchain.schemas import expanded, local_schema_id
    from flexchain.serde import Codec, DecodeError, RegistryClient
    from services.clock.messages import MESSAGES as CLOCK_MESSAGES
    from services.order.messages import MESSAGES as ORDER_MESSAGES
    from services.order.messages import OrderConfirmed, OrderShipped

    client = RegistryClient(registry)
    env = {"event_id": "e-1", "event_type": "OrderShipped", "aggregate_id": "o-1", "aggregate_version": 3,
           "business_time": 1_767_225_600_000, "correlation_id": "o-1", "causation_id": "c-1", "producer": "order"}  # fmt: skip

    def written(schema: dict[str, Any], schema_id: int, record: dict[str, Any]) -> bytes:
        body = struct.pack(">bI", 0, schema_id)
        buf = io.BytesIO()
        schemaless_writer(buf, parse_schema(schema), record, strict=True)
        return body + buf.getvalue()

    # the first release registered its schemas (as its codec did: full name, envelope inlined) and wrote
    shipped_v1 = versions_of("order", "OrderShipped")[0].schema()
    confirmed_v1 = versions_of("order", "OrderConfirmed")[0].schema()
    shipped_id = client.register("flexchain.order.OrderShipped", expanded(shipped_v1))
    confirmed_id = client.register("flexchain.order.OrderConfirmed", expanded(confirmed_v1))
    old_shipped = written(shipped_v1, shipped_id, {"envelope": env, "order_id": "o-1", "tracking": "SF1", "skus": ["mask"]})
    old_confirmed = written(
        confirmed_v1, confirmed_id, {"envelope": {**env, "event_type": "OrderConfirmed"}, "order_id": "o-1", "pay_by": 99}
    )
    # a record from before the registry was configured: a local id, found in the schema history
    local = written(shipped_v1, local_schema_id(shipped_v1), {"envelope": env, "order_id": "o-2", "tracking": "SF2", "skus": []})

    codec = Codec([*ORDER_MESSAGES, *CLOCK_MESSAGES], RegistryClient(registry))  # today's release registers its own
    assert codec.schema_id(OrderShipped) not in (shipped_id, confirmed_id)
    assert httpx.get(f"{registry}/schemas/ids/{shipped_id}", timeout=10).status_code == 200

    shipped = codec.decode(old_shipped)
    assert shipped.message == OrderShipped("o-1", "SF1", ["mask"], None, [])  # fields v1 lacked: their defaults
    assert shipped.envelope.event_id == "e-1" and shipped.envelope.aggregate_version == 3
    assert codec.decode(old_confirmed).message == OrderConfirmed("o-1", 99, 0, [])  # through the order upcaster
    assert codec.decode(local).message == OrderShipped("o-2", "SF2", [], None, [])
    unknown = max(shipped_id, confirmed_id, codec.schema_id(OrderShipped)) + 10_000
    with pytest.raises(DecodeError, match=f"unknown schema id {unknown}: not a current schema, not in the schema registry"):
        codec.decode(old_shipped[:1] + unknown.to_bytes(4, "big") + old_shipped[5:])
