"""Deterministic ids (R-X-2): the same cause gives the same id, and what two services (or a
service's processor and its router) derive from one event never share an id."""

from __future__ import annotations

from flexchain.messages import derived_id


def test_the_same_cause_and_index_give_the_same_id_every_time() -> None:
    assert derived_id("evt-1", 0, "inventory") == derived_id("evt-1", 0, "inventory")


def test_ids_differ_by_index_cause_and_scope() -> None:
    ids = {
        derived_id("evt-1", 0, "inventory-router"),
        derived_id("evt-1", 1, "inventory-router"),
        derived_id("evt-2", 0, "inventory-router"),
        derived_id("evt-1", 0, "loyalty-router"),  # both react to the same OrderPlaced
        derived_id("evt-1", 0, "inventory"),
    }
    assert len(ids) == 5
