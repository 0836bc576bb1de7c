"""deploy/k8s: rendered by kustomize (`kubectl kustomize`, offline) and every resource validated by
kubernetes-validate (PyPI; it ships the Kubernetes OpenAPI schemas, strict mode: unknown fields fail),
the Strimzi KafkaTopic/KafkaUser resources against Strimzi's CRD schemas (tests/deploy/schemas/,
source inside), the PrometheusRule against the Prometheus Operator CRD's schema (npm; more in
test_alerts.py). Then what the issue asks of them: probes, requests, config and secrets, scrape
annotations, one topic per topic, replicas ≤ partitions, instance ids from the pod name; the
NetworkPolicies checked for who may reach whom by a small evaluator (tests/deploy/netpol.py)."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from flexchain import kafka, security
from flexchain.catalog import SERVICES
from flexchain.settings import PROJECT_ROOT
from tests.deploy.conftest import TOOLS, validate_prometheus_rules
from tests.deploy.netpol import Endpoint, allowed

K8S = PROJECT_ROOT / "deploy" / "k8s"
CRDS = json.loads((Path(__file__).parent / "schemas" / "strimzi-crds.json").read_text())
VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]


def test_generated_files_are_up_to_date(deploy_tools: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts/gen-deploy.py"), "--check"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """`kubectl kustomize` on a copy where secrets.env is the committed example."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with built-in kustomize) not on this machine")
    work = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, work, ignore=shutil.ignore_patterns("secrets.env", "postgres.env"))
    shutil.copy(work / "secrets.env.example", work / "secrets.env")
    shutil.copy(work / "postgres.env.example", work / "postgres.env")
    proc = subprocess.run([kubectl, "kustomize", str(work)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def _validate(doc: dict[str, Any]) -> None:
    kind = doc["kind"]
    if kind in CRDS:
        jsonschema.Draft7Validator(CRDS[kind]).validate(doc)
    elif kind == "PrometheusRule":
        (result,) = validate_prometheus_rules([doc], str(TOOLS / "k8s-models" / "node_modules"))
        assert result["error"] is None, result
    else:
        for version in VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_every_rendered_resource_is_valid(rendered: list[dict[str, Any]]) -> None:
    kinds = {d["kind"] for d in rendered}
    assert {
        "Namespace",
        "ConfigMap",
        "Secret",
        "Service",
        "StatefulSet",
        "PodDisruptionBudget",
        "KafkaTopic",
        "KafkaUser",
        "PrometheusRule",
        "NetworkPolicy",
    } <= kinds
    for doc in rendered:
        _validate(doc)
        assert doc["kind"] == "Namespace" or doc["metadata"].get("namespace") == "flexchain"


def test_every_resource_file_is_valid_on_its_own() -> None:
    """Without kustomize too: each resource file the kustomization lists."""
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for res in kust["resources"]:
        for doc in yaml.safe_load_all((K8S / res).read_text()):
            if doc:
                _validate(doc)


def test_validation_can_fail(rendered: list[dict[str, Any]]) -> None:
    sts = copy.deepcopy(next(d for d in rendered if d["kind"] == "StatefulSet"))
    sts["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/ready"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, VERSIONS[-1], strict=True)
    sts = copy.deepcopy(next(d for d in rendered if d["kind"] == "StatefulSet"))
    sts["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, VERSIONS[-1], strict=True)
    user = copy.deepcopy(next(d for d in rendered if d["kind"] == "KafkaUser"))
    user["spec"]["authorization"]["acls"][0]["resource"]["patternType"] = "prefixed"  # Strimzi says `prefix`
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(CRDS["KafkaUser"]).validate(user)


def _by(rendered: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in rendered if d["kind"] == kind}


def test_one_statefulset_per_service_with_probes_requests_config_and_scrape_annotations(rendered: list[dict[str, Any]]) -> None:
    sets = _by(rendered, "StatefulSet")
    config = _by(rendered, "ConfigMap")
    secrets = _by(rendered, "Secret")
    users = _by(rendered, "KafkaUser")
    assert set(sets) == set(SERVICES)
    (cm_name, cm) = next((n, c) for n, c in config.items() if n.startswith("flexchain-config-"))
    (secret_name, secret) = next((n, c) for n, c in secrets.items() if n.startswith("flexchain-secrets-"))
    (pg_name, pg) = next((n, c) for n, c in secrets.items() if n.startswith("flexchain-postgres-"))
    partitions = int(cm["data"]["FLEXCHAIN_PARTITIONS"])
    assert cm["data"]["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and cm["data"]["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    # the database passwords are apart (flexchain-postgres, in no envFrom): each service reads its own key
    assert not any(k.endswith("_DB_PASSWORD") or k == "FLEXCHAIN_SNAPSHOT_URL" for k in secret["data"])
    assert {f"{name.upper()}_DB_PASSWORD" for name in SERVICES} | {"REGISTRY_DB_PASSWORD"} <= set(pg["data"])
    assert "FLEXCHAIN_SNAPSHOT_KEY" in secret["data"]  # the HMAC key of snapshot rows, from the Secret only
    assert "FLEXCHAIN_SNAPSHOT_KEY" not in cm["data"]
    for name, port in SERVICES.items():
        spec = sets[name]["spec"]
        assert 1 <= spec["replicas"] <= partitions, "replicas beyond the partition count would idle"
        pod = spec["template"]
        c = pod["spec"]["containers"][0]
        assert c["args"] == ["serve", name]
        assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert c["livenessProbe"]["httpGet"]["path"] == "/health"
        assert {"cpu", "memory"} <= set(c["resources"]["requests"])
        refs = {next(iter(r.values()))["name"] for r in c["envFrom"]}
        assert refs == {cm_name, secret_name}  # kustomize rewrote the generated (hashed) names
        env = {e["name"]: e for e in c["env"]}
        assert env["FLEXCHAIN_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        assert env["FLEXCHAIN_HTTP_PORT"]["value"] == str(port)
        assert env["KAFKA_SASL_USERNAME"]["value"] == name and name in users
        assert env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": name, "key": "password"}
        assert env["FLEXCHAIN_SNAPSHOT_URL"]["value"] == f"postgresql+psycopg://{name}@postgres:5432/flexchain"
        own_key = {"name": pg_name, "key": f"{name.upper()}_DB_PASSWORD"}
        assert env["FLEXCHAIN_SNAPSHOT_PASSWORD"]["valueFrom"]["secretKeyRef"] == own_key
        ann = pod["metadata"]["annotations"]
        assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/port"] == str(OPS)
        assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": port, "ops": OPS}
        assert env["FLEXCHAIN_OPS_PORT"]["value"] == str(OPS)
        assert {c[p]["httpGet"]["port"] for p in ("startupProbe", "livenessProbe", "readinessProbe")} == {"ops"}
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def test_a_kafka_topic_for_every_topic(rendered: list[dict[str, Any]]) -> None:
    topics = {d["spec"]["topicName"]: d["spec"] for d in rendered if d["kind"] == "KafkaTopic"}
    want = {"clock.ticks", "notify.dlq", "notify.redrive", *(t for svc in SERVICES for t in kafka.topic_names(svc).values())}
    assert set(topics) == want
    for name, spec in topics.items():
        assert spec["partitions"] == (1 if name == "clock.ticks" else 6)
        if name.endswith(".events"):
            assert spec["config"]["retention.ms"] == -1
    assert {d["metadata"]["labels"]["strimzi.io/cluster"] for d in rendered if d["kind"] in ("KafkaTopic", "KafkaUser")} == {
        "flexchain"
    }


def test_kafka_users_carry_exactly_the_listed_acls(rendered: list[dict[str, Any]]) -> None:
    users = _by(rendered, "KafkaUser")
    listed = security.all_acls()
    assert set(users) == {*SERVICES, security.CLOCK_PRINCIPAL, "notify", security.OPERATOR_PRINCIPAL} == set(listed)
    for name, user in users.items():
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        got = {
            (r["resource"]["type"], r["resource"].get("name"), r["resource"].get("patternType"), op)
            for r in user["spec"]["authorization"]["acls"]
            for op in r["operations"]
        }
        want = {
            (
                a.resource.lower() if a.resource != "TRANSACTIONAL_ID" else "transactionalId",
                a.name,
                {"LITERAL": "literal", "PREFIXED": "prefix"}[a.pattern],
                "".join(w.title() for w in a.operation.split("_")),
            )
            for a in listed[name]
        }
        assert got == want and len(user["spec"]["authorization"]["acls"]) == len(listed[name])


def test_the_notifier_runs_with_its_webhooks_its_principal_and_scrape_annotations(rendered: list[dict[str, Any]]) -> None:
    from services.notify.config import parse

    deployment = _by(rendered, "Deployment")["notify"]
    pod = deployment["spec"]["template"]
    c = pod["spec"]["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    assert c["args"] == ["serve", "notify"] and env["FLEXCHAIN_HTTP_PORT"]["value"] == "8086"
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready" and c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert env["KAFKA_SASL_USERNAME"]["value"] == "notify"  # its principal, named like it
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "8086"
    mount = next(m for m in c["volumeMounts"] if m["name"] == "webhooks")
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "webhooks")
    cm = next(d for d in rendered if d["kind"] == "ConfigMap" and d["metadata"]["name"] == volume["configMap"]["name"])
    assert env["FLEXCHAIN_NOTIFY_CONFIG"]["value"] == mount["mountPath"] + "/notify.toml"
    import tomllib

    secret_env = {"NOTIFY_WEBHOOK_SECRET": "a-key-of-sixteen-bytes-or-more"}
    config = parse(tomllib.loads(cm["data"]["notify.toml"]), "the ConfigMap", secret_env)  # a valid configuration
    assert {w.secret_env for w in config.webhooks} == {"NOTIFY_WEBHOOK_SECRET"}
    assert "NOTIFY_WEBHOOK_SECRET=" in (K8S / "secrets.env.example").read_text()


def test_a_job_creates_the_database_roles_with_the_deploy_sql(rendered: list[dict[str, Any]]) -> None:
    """The same SQL as compose's postgres init (tests/faults/test_db_roles.py runs it on a real server),
    run by psql as the administrator with every role's password from flexchain-postgres."""
    (job,) = [d for d in rendered if d["kind"] == "Job"]
    pod = job["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    (pg_name,) = [n for n, d in _by(rendered, "Secret").items() if n.startswith("flexchain-postgres-")]
    mount = next(m for m in c["volumeMounts"])
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    sql = _by(rendered, "ConfigMap")[volume["configMap"]["name"]]["data"]
    assert c["command"][0] == "psql" and c["command"][-1] == f"{mount['mountPath']}/01-roles.sql"
    assert sql["01-roles.sql"] == (PROJECT_ROOT / "deploy/postgres/init/01-roles.sql").read_text()
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}
    read = set(re.findall(r"^\\getenv password (\w+)$", sql["01-roles.sql"], re.M))
    assert read == {f"{name.upper()}_DB_PASSWORD" for name in SERVICES} | {"REGISTRY_DB_PASSWORD"}
    for key in [*read, "POSTGRES_ADMIN_USER", "POSTGRES_ADMIN_PASSWORD"]:
        target = {"POSTGRES_ADMIN_USER": "PGUSER", "POSTGRES_ADMIN_PASSWORD": "PGPASSWORD"}.get(key, key)
        assert env[target] == {"secretKeyRef": {"name": pg_name, "key": key}}
    assert (env["PGHOST"], env["PGDATABASE"]) == ("postgres", "flexchain")
    assert pod["securityContext"]["runAsNonRoot"] is True and c["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_secret_env_file_is_not_committed() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "deploy/k8s"], capture_output=True, text=True, cwd=PROJECT_ROOT, check=True
    ).stdout
    for name in ("secrets.env", "postgres.env"):
        assert f"deploy/k8s/{name}\n" not in tracked
        ignored = subprocess.run(["git", "check-ignore", "-q", f"deploy/k8s/{name}"], cwd=PROJECT_ROOT, check=False)
        assert ignored.returncode == 0, f"deploy/k8s/{name} must be ignored by git"
        assert "CHANGE-ME" in (K8S / f"{name}.example").read_text()
    example = (K8S / "secrets.env.example").read_text()
    assert "CHANGE-ME" in example
    assert "FLEXCHAIN_SNAPSHOT_KEY=CHANGE-ME" in example.splitlines()


# ---------------------------------------------------------------------------------- network policies
# The pods around ours, with the labels their usual installs give them (Strimzi, CoreDNS, ingress-nginx,
# kube-prometheus); deploy/README.md "Network policies" says which to adapt.
NS = "flexchain"
AROUND = [
    Endpoint(
        "kafka",
        "10.244.9.1",
        NS,
        {
            "strimzi.io/cluster": "flexchain",
            "strimzi.io/kind": "Kafka",
            "strimzi.io/name": "flexchain-kafka",
            "strimzi.io/broker-role": "true",
        },
    ),
    Endpoint("registry", "10.244.9.2", NS, {"app.kubernetes.io/name": "schema-registry"}),
    Endpoint("postgres", "10.244.9.3", NS, {"app.kubernetes.io/name": "postgres"}),
    Endpoint("debug-pod", "10.244.9.4", NS, {"run": "debug"}),  # `kubectl run` in our namespace
    Endpoint("dns", "10.244.8.1", "kube-system", {"k8s-app": "kube-dns"}),
    Endpoint("ingress", "10.244.7.1", "ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}),
    Endpoint("prometheus", "10.244.6.1", "monitoring", {"app.kubernetes.io/name": "prometheus"}),
    Endpoint("grafana", "10.244.6.2", "monitoring", {"app.kubernetes.io/name": "grafana"}),
    Endpoint("stranger", "10.244.5.1", "default", {"app": "shell"}),
    Endpoint("webhook", "93.184.216.34"),  # a receiver on the internet
    Endpoint("webhook-v6", "2606:2800:220:1::1"),
    Endpoint("metadata", "169.254.169.254"),  # the cloud's instance metadata
    Endpoint("vpc-host", "10.0.3.7"),  # a private address outside the pod network
]
PORTS = [(53, "UDP"), (53, "TCP"), (80, "TCP"), (443, "TCP"), (5432, "TCP"), (8080, "TCP"), (9091, "TCP"),
         (9092, "TCP"), (9093, "TCP"), *((p, "TCP") for p in range(8081, 8087)), (8090, "TCP"), (3000, "TCP"),
         (9090, "TCP")]  # fmt: skip
OPS = 8090  # every service pod's probes and /metrics (FLEXCHAIN_OPS_PORT); its API port serves only the API


def _workloads(rendered: list[dict[str, Any]]) -> list[Endpoint]:
    out = []
    for i, d in enumerate(d for d in rendered if d["kind"] in ("StatefulSet", "Deployment")):
        pod = d["spec"]["template"]
        ports = {p["name"]: p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports", []) if "name" in p}
        out.append(
            Endpoint(d["metadata"]["name"], f"10.244.1.{i + 1}", d["metadata"]["namespace"], pod["metadata"]["labels"], ports)
        )
    return out


@pytest.fixture(scope="module")
def policies(rendered: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in rendered if d["kind"] == "NetworkPolicy"]


@pytest.fixture(scope="module")
def pods(rendered: list[dict[str, Any]]) -> dict[str, Endpoint]:
    return {e.name: e for e in [*_workloads(rendered), *AROUND]}


def _reach_out(policies: list[dict[str, Any]], src: Endpoint, pods: dict[str, Endpoint]) -> set[tuple[str, int, str]]:
    return {
        (d.name, port, proto)
        for d in pods.values()
        if d is not src
        for port, proto in PORTS
        if allowed(policies, src, d, port, proto)
    }


def _reach_in(policies: list[dict[str, Any]], dst: Endpoint, pods: dict[str, Endpoint]) -> set[tuple[str, int]]:
    return {
        (s.name, port) for s in pods.values() if s is not dst for port, proto in PORTS if allowed(policies, s, dst, port, proto)
    }


def test_a_default_deny_and_a_policy_for_every_workload(rendered: list[dict[str, Any]], policies: list[dict[str, Any]]) -> None:
    deny = [
        p for p in policies if p["spec"]["podSelector"] == {} and not p["spec"].get("ingress") and not p["spec"].get("egress")
    ]
    assert [p["spec"]["policyTypes"] for p in deny] == [["Ingress", "Egress"]]
    workloads = _workloads(rendered)
    assert {w.name for w in workloads} == {*SERVICES, "clock", "notify"}
    for w in workloads:  # each also has a policy of its own, not only the namespace-wide ones
        own = [p for p in policies if p["spec"]["podSelector"] and p["metadata"]["namespace"] == w.namespace
               and all(w.labels.get(k) == v for k, v in p["spec"]["podSelector"]["matchLabels"].items())]  # fmt: skip
        assert own, f"no NetworkPolicy selects {w.name}"
        assert {t for p in own for t in p["spec"]["policyTypes"]} == {"Ingress", "Egress"}


def test_services_reach_only_kafka_the_registry_postgres_and_dns(
    policies: list[dict[str, Any]], pods: dict[str, Endpoint]
) -> None:
    platform = {("kafka", 9093, "TCP"), ("registry", 8080, "TCP"), ("dns", 53, "UDP"), ("dns", 53, "TCP")}
    for name in SERVICES:
        assert _reach_out(policies, pods[name], pods) == platform | {("postgres", 5432, "TCP")}, name
    # notify: no PostgreSQL (no snapshots), but HTTPS to receivers outside the cluster — not to
    # private or link-local addresses (the metadata endpoint), not plain HTTP
    assert _reach_out(policies, pods["notify"], pods) == platform | {("webhook", 443, "TCP"), ("webhook-v6", 443, "TCP")}
    # the clock only produces clock.ticks
    assert _reach_out(policies, pods["clock"], pods) == {("kafka", 9093, "TCP"), ("dns", 53, "UDP"), ("dns", 53, "TCP")}


def test_only_the_ingress_controller_reaches_the_apis_and_only_prometheus_the_metrics(
    policies: list[dict[str, Any]], pods: dict[str, Endpoint]
) -> None:
    for name, port in SERVICES.items():
        assert _reach_in(policies, pods[name], pods) == {("ingress", port), ("prometheus", OPS)}, name
    assert _reach_in(policies, pods["notify"], pods) == {("prometheus", 8086)}  # /metrics; it has no API
    assert _reach_in(policies, pods["clock"], pods) == set()
    # a pod started in our namespace talks to nobody (DNS aside), nobody to it
    assert _reach_out(policies, pods["debug-pod"], pods) == {("dns", 53, "UDP"), ("dns", 53, "TCP")}
    assert _reach_in(policies, pods["debug-pod"], pods) == set()


@pytest.mark.parametrize(
    ("src", "dst", "port", "ok"),
    [
        ("order", "kafka", 9093, True),
        ("order", "kafka", 9091, False),  # the replication listener is the brokers' own
        ("order", "inventory", 8082, False),  # services do not call each other
        ("order", "webhook", 443, False),
        ("notify", "webhook", 443, True),
        ("notify", "webhook", 80, False),
        ("notify", "metadata", 80, False),
        ("notify", "vpc-host", 443, False),
        ("notify", "postgres", 5432, False),
        ("registry", "postgres", 5432, True),  # Apicurio stores the schemas there
        ("clock", "postgres", 5432, False),
        ("clock", "kafka", 9093, True),
        ("stranger", "order", 8081, False),
        ("grafana", "order", 8081, False),  # the monitoring namespace: Prometheus only
        ("prometheus", "order", 8081, False),  # the API is not Prometheus' business
        ("prometheus", "order", 8090, True),  # the ops port: /metrics
        ("ingress", "order", 8081, True),
        ("ingress", "order", 8090, False),  # the metrics are not exposed through the ingress
        ("ingress", "notify", 8086, False),
        ("debug-pod", "postgres", 5432, False),
        ("debug-pod", "kafka", 9093, False),
    ],
)
def test_reachability(policies: list[dict[str, Any]], pods: dict[str, Endpoint], src: str, dst: str, port: int, ok: bool) -> None:
    assert allowed(policies, pods[src], pods[dst], port) is ok


def test_the_roles_job_reaches_only_postgres(
    rendered: list[dict[str, Any]], policies: list[dict[str, Any]], pods: dict[str, Endpoint]
) -> None:
    (job,) = [d for d in rendered if d["kind"] == "Job"]
    me = Endpoint("postgres-roles", "10.244.2.1", job["metadata"]["namespace"], job["spec"]["template"]["metadata"]["labels"])
    everyone = {**pods, me.name: me}
    assert _reach_out(policies, me, everyone) == {("postgres", 5432, "TCP"), ("dns", 53, "UDP"), ("dns", 53, "TCP")}
    assert _reach_in(policies, me, everyone) == set()
    assert _reach_in(policies, pods["postgres"], everyone) == {
        *((name, 5432) for name in SERVICES),
        ("registry", 5432),
        ("postgres-roles", 5432),
    }


def test_the_reachability_checks_can_fail(policies: list[dict[str, Any]], pods: dict[str, Endpoint]) -> None:
    """Loosen one thing at a time: the checks above notice."""
    no_deny = [p for p in policies if p["metadata"]["name"] != "default-deny"]
    assert ("stranger", 8080) in _reach_in(no_deny, pods["debug-pod"], pods)
    open_notify = copy.deepcopy(policies)
    webhook_rule = next(p for p in open_notify if p["metadata"]["name"] == "notify")["spec"]["egress"][-1]
    webhook_rule["to"][0]["ipBlock"]["except"].remove("169.254.0.0/16")
    assert allowed(open_notify, pods["notify"], pods["metadata"], 443)
    wide = copy.deepcopy(policies)
    next(p for p in wide if p["metadata"]["name"] == "order")["spec"]["ingress"][0]["from"].append({"namespaceSelector": {}})
    assert ("stranger", 8081) in _reach_in(wide, pods["order"], pods)


def test_every_pod_runs_non_root_read_only_without_capabilities(rendered: list[dict[str, Any]]) -> None:
    workloads = [d for d in rendered if d["kind"] in ("StatefulSet", "Deployment")]
    assert {d["metadata"]["name"] for d in workloads} == {*SERVICES, "clock", "notify"}
    for d in workloads:
        spec = d["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, d["metadata"]["name"]
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, d["metadata"]["name"]
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, c["name"]
            assert sc["capabilities"] == {"drop": ["ALL"]}, c["name"]
            # what they write (tests/deploy/test_readonly.py): emptyDirs, never the image
            empty = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
            writable = {m["mountPath"] for m in c.get("volumeMounts", []) if m["name"] in empty}
            want = set() if c["name"] == "clock" else {"/tmp", "/home/flexchain/data"}
            assert writable == want, c["name"]
