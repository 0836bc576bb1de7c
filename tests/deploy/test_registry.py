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

from flexchain.messages import Envelope, Enveloped
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
    from flexchain.ticks import MESSAGES as CLOCK_MESSAGES
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
    assert shipped.message == OrderShipped(
        order_id="o-1", tracking="SF1", skus=["mask"], campaign_id=None, gifts=[]
    )  # fields v1 lacked: their defaults
    assert shipped.envelope.event_id == "e-1" and shipped.envelope.aggregate_version == 3
    assert codec.decode(old_confirmed).message == OrderConfirmed(
        order_id="o-1", pay_by=99, total=0, lines=[]
    )  # through the order upcaster
    assert codec.decode(local).message == OrderShipped(order_id="o-2", tracking="SF2", skus=[], campaign_id=None, gifts=[])
    unknown = max(shipped_id, confirmed_id, codec.schema_id(OrderShipped)) + 10_000
    with pytest.raises(DecodeError, match=f"unknown schema id {unknown}: not a current schema, not in the schema registry"):
        codec.decode(old_shipped[:1] + unknown.to_bytes(4, "big") + old_shipped[5:])


# --- credentials and TLS (issue 16 item 3): the registry behind a TLS reverse proxy ------------------


class _Gate:
    """A small TLS reverse proxy in front of the test's Apicurio: basic auth required (401 otherwise),
    and with `client_ca` a client certificate signed by it (mutual TLS). Counts what it forwarded."""

    def __init__(self, upstream: str, server_pem: Path, user: str, password: str, client_ca: Path | None = None) -> None:
        import base64
        import ssl
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        want = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        origin = upstream.removesuffix("/apis/ccompat/v7")
        gate = self
        self.forwarded = 0

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Authorization") != want:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="registry"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "accept")}
                resp = httpx.request(self.command, origin + self.path, content=body, headers=headers, timeout=10)
                gate.forwarded += 1
                self.send_response(resp.status_code)
                self.send_header("Content-Type", resp.headers.get("content-type", "application/json"))
                self.send_header("Content-Length", str(len(resp.content)))
                self.end_headers()
                self.wfile.write(resp.content)

            do_GET = do_POST = do_PUT = _any

            def log_message(self, *args: Any) -> None:
                pass

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(server_pem)  # key + certificate chain in one PEM (flexchain.tools.pki.make_pki)
        if client_ca is not None:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(client_ca)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.handle_error = lambda *a: None  # type: ignore[method-assign]  # refused handshakes: expected
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/apis/ccompat/v7"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _split_pem(pem: Path, out: Path) -> tuple[Path, Path]:
    """make_pki's key + chain PEM as a certificate file and a key file (SCHEMA_REGISTRY_CERT, _KEY)."""
    text = pem.read_text()
    end = "-----END PRIVATE KEY-----\n"
    key, chain = text.split(end, 1)
    (out / "client.crt").write_text(chain)
    (out / "client.key").write_text(key + end)
    return out / "client.crt", out / "client.key"


PASSWORD = "s3cret-Registry-pw"


def test_a_service_codec_registers_and_resolves_through_tls_and_basic_auth(
    registry: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SCHEMA_REGISTRY_URL (https) + SCHEMA_REGISTRY_USER/PASSWORD + SCHEMA_REGISTRY_CA, through
    Settings as `flexchain serve` reads them: the service's codec registers its schemas and a
    subscriber's decoder resolves them; a wrong password or an unknown CA fails clearly, naming
    401 / TLS, and the password appears in no error and no log line."""
    import logging

    from pydantic import ValidationError

    from flexchain.host import bootstrap_codec
    from flexchain.settings import Settings
    from flexchain.subscribe import EventDecoder
    from flexchain.tools.pki import make_pki
    from services.inventory.messages import MESSAGES as INVENTORY_MESSAGES
    from services.inventory.messages import SkuRegistered

    caplog.set_level(logging.DEBUG)
    pki = make_pki(tmp_path / "pki")
    gate = _Gate(registry, pki.broker_keystore, "flexchain", PASSWORD)
    try:
        base = {"schema_registry_url": gate.url, "schema_registry_user": "flexchain", "schema_registry_ca": pki.ca_cert}
        codec = bootstrap_codec(Settings(**base, schema_registry_password=PASSWORD), INVENTORY_MESSAGES)
        assert gate.forwarded >= len(INVENTORY_MESSAGES)  # every registration went through the proxy
        schema_id = codec.schema_id(SkuRegistered)
        assert httpx.get(f"{registry}/schemas/ids/{schema_id}", timeout=10).status_code == 200  # Apicurio's own id

        env = {"SCHEMA_REGISTRY_URL": gate.url, "SCHEMA_REGISTRY_USER": "flexchain", "SCHEMA_REGISTRY_PASSWORD": PASSWORD,
               "SCHEMA_REGISTRY_CA": str(pki.ca_cert)}  # fmt: skip
        with pytest.MonkeyPatch.context() as mp:
            for k, v in env.items():
                mp.setenv(k, v)
            decoder = EventDecoder.from_env(schemas_dir=tmp_path / "none")  # the registry only
        envelope = Envelope(
            event_id="e-1",
            event_type="SkuRegistered",
            aggregate_id="mask",
            aggregate_version=1,
            business_time=1_767_225_600_000,
            correlation_id="c",
            causation_id="c",
            producer="inventory",
        )
        event = decoder.decode(
            codec.encode(
                Enveloped(envelope=envelope, message=SkuRegistered(sku="mask", name="Mask", is_gift=False, low_stock_floor=5))
            )
        )
        assert (event.type, event.body["sku"], event.schema_id) == ("SkuRegistered", "mask", schema_id)

        with pytest.raises(httpx.HTTPStatusError) as wrong:
            bootstrap_codec(Settings(**base, schema_registry_password="wr0ng-" + PASSWORD), INVENTORY_MESSAGES)
        assert "401 Unauthorized" in str(wrong.value) and "SCHEMA_REGISTRY_PASSWORD" in str(wrong.value)
        assert gate.url in str(wrong.value)
        with pytest.raises(httpx.ConnectError) as untrusted:  # the system's CAs do not know the throwaway one
            untrusting = Settings(**{**base, "schema_registry_ca": None}, schema_registry_password=PASSWORD)
            bootstrap_codec(untrusting, INVENTORY_MESSAGES)
        assert "TLS failed" in str(untrusted.value) and "CERTIFICATE_VERIFY_FAILED" in str(untrusted.value)
        assert "SCHEMA_REGISTRY_CA" in str(untrusted.value)

        # credentials in the URL are refused, and the refusal does not echo them
        with pytest.raises(ValidationError) as in_url:
            Settings(schema_registry_url=gate.url.replace("https://", f"https://flexchain:{PASSWORD}@"))
        assert "SCHEMA_REGISTRY_USER" in str(in_url.value) and "flexchain:***@" in str(in_url.value)
        shown = repr(Settings(**base, schema_registry_password=PASSWORD))
        errors = [str(wrong.value), str(untrusted.value), str(in_url.value), shown]
    finally:
        gate.close()
    for text in [*errors, *(r.getMessage() for r in caplog.records)]:
        assert PASSWORD not in text


def test_mutual_tls_with_a_client_certificate(registry: str, tmp_path: Path) -> None:
    """SCHEMA_REGISTRY_CERT / SCHEMA_REGISTRY_KEY: a registry that asks for a client certificate
    serves the service's client and the subscriber's; without one, the error says TLS and names
    the settings."""
    from flexchain.registry import RegistryConfigError
    from flexchain.serde import RegistryClient
    from flexchain.settings import Settings
    from flexchain.subscribe import DecodeError, RegistrySchemas
    from flexchain.tools.pki import make_pki

    server, client = make_pki(tmp_path / "server"), make_pki(tmp_path / "client")  # two CAs
    cert, key = _split_pem(client.broker_keystore, tmp_path / "client")
    gate = _Gate(registry, server.broker_keystore, "flexchain", PASSWORD, client_ca=client.ca_cert)
    try:
        base = {"schema_registry_url": gate.url, "schema_registry_user": "flexchain", "schema_registry_password": PASSWORD,
                "schema_registry_ca": server.ca_cert}  # fmt: skip
        schema = {"type": "record", "name": "MtlsProbe", "namespace": "flexchain.test", "fields": [{"name": "a", "type": "int"}]}
        mtls = Settings(**base, schema_registry_cert=cert, schema_registry_key=key)
        client_ = RegistryClient.from_settings(mtls)
        assert client_ is not None
        schema_id = client_.register("flexchain.test.MtlsProbe", schema)
        found = RegistrySchemas.from_settings(mtls).schema(schema_id)
        assert found is not None and found["name"] == "MtlsProbe"

        no_cert = RegistryClient.from_settings(Settings(**base))
        assert no_cert is not None
        with pytest.raises(httpx.TransportError) as refused:
            no_cert.schema_by_id(schema_id)
        assert "TLS failed" in str(refused.value) and "SCHEMA_REGISTRY_CERT" in str(refused.value), str(refused.value)
        with pytest.raises(DecodeError, match="TLS failed"):
            RegistrySchemas.from_settings(Settings(**base)).schema(schema_id + 1)
        with pytest.raises(RegistryConfigError, match="SCHEMA_REGISTRY_CERT"):  # a key that is not the certificate's
            RegistryClient.from_settings(Settings(**base, schema_registry_cert=cert, schema_registry_key=server.ca_cert))
    finally:
        gate.close()
