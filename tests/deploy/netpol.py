"""A small evaluator of Kubernetes NetworkPolicies (networking.k8s.io/v1), for the deploy tests: may
`src` open a connection to `dst` on `port`/`protocol` under these policies? Implements the API's
documented semantics: a pod is isolated for a direction as soon as one policy of that type selects
it, and then only the union of those policies' rules lets traffic through; a connection needs both
the source's egress and the destination's ingress. Peers: podSelector (the policy's namespace),
namespaceSelector (+ podSelector), ipBlock (cidr minus except). Ports: protocol (TCP by default),
number, named container port, endPort. matchExpressions are refused (none are generated).

Not modelled: the node (kubelet probes are always allowed), Services (a policy sees pod IPs after
DNAT), CNI-specific behaviour of ipBlock towards pod IPs (applied here like any other IP).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Endpoint:
    name: str
    ip: str
    namespace: str | None = None  # None: outside the cluster
    labels: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)  # named container ports

    @property
    def ns_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace} if self.namespace else {}


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if selector.get("matchExpressions"):
        raise NotImplementedError("matchExpressions")
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _selects(policy: dict[str, Any], pod: Endpoint) -> bool:
    return pod.namespace == policy["metadata"]["namespace"] and _matches(policy["spec"]["podSelector"], pod.labels)


def _types(policy: dict[str, Any]) -> list[str]:
    spec = policy["spec"]
    return list(spec.get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in spec else [])))


def _peer(peer: dict[str, Any], policy_ns: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        ip = ipaddress.ip_address(other.ip)
        block = peer["ipBlock"]
        net = ipaddress.ip_network(block["cidr"])
        if ip.version != net.version or ip not in net:
            return False
        return not any(
            ip in ipaddress.ip_network(e) for e in block.get("except", []) if ipaddress.ip_network(e).version == ip.version
        )
    if other.namespace is None:
        return False
    if "namespaceSelector" in peer:
        if not _matches(peer["namespaceSelector"], other.ns_labels):
            return False
    elif other.namespace != policy_ns:
        return False
    return "podSelector" not in peer or _matches(peer["podSelector"], other.labels)


def _port(rule_ports: list[dict[str, Any]] | None, dst: Endpoint, port: int, protocol: str) -> bool:
    if not rule_ports:
        return True
    for p in rule_ports:
        if p.get("protocol", "TCP") != protocol:
            continue
        want = p.get("port")
        if want is None:
            return True
        if isinstance(want, str):
            want = dst.ports.get(want)
            if want is None:
                continue
        if want <= port <= p.get("endPort", want):
            return True
    return False


def _direction(
    policies: list[dict[str, Any]], kind: str, pod: Endpoint, other: Endpoint, dst: Endpoint, port: int, protocol: str
) -> bool:
    """`kind` (Ingress/Egress) traffic of `pod` with `other`; `dst` owns the (named) port."""
    if pod.namespace is None:
        return True  # outside the cluster: no policy applies
    mine = [p for p in policies if kind in _types(p) and _selects(p, pod)]
    if not mine:
        return True  # not isolated in this direction
    key, peers = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
    for policy in mine:
        ns = policy["metadata"]["namespace"]
        for rule in policy["spec"].get(key) or []:
            # no (or an empty) from/to: every peer
            peer_ok = not rule.get(peers) or any(_peer(x, ns, other) for x in rule[peers])
            if peer_ok and _port(rule.get("ports"), dst, port, protocol):
                return True
    return False


def allowed(policies: list[dict[str, Any]], src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP") -> bool:
    return _direction(policies, "Egress", src, dst, dst, port, protocol) and _direction(
        policies, "Ingress", dst, src, dst, port, protocol
    )
