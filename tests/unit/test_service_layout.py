"""One decider layout in every service (issue 17): `state.py` folds every event type the service
writes through a table of evolvers, and `domain.py` has a decider for every command it reads."""

from __future__ import annotations

import importlib

import pytest

SERVICES = ("inventory", "presale", "loyalty", "commission", "order")


@pytest.mark.parametrize("service", SERVICES)
def test_every_event_has_an_evolver(service: str) -> None:
    messages = importlib.import_module(f"services.{service}.messages")
    state = importlib.import_module(f"services.{service}.state")
    missing = [e.__name__ for e in messages.EVENTS if e not in state.EVOLVERS]
    assert not missing, f"{service}: events without an evolver: {missing}"


@pytest.mark.parametrize("service", SERVICES)
def test_every_command_has_a_decider(service: str) -> None:
    messages = importlib.import_module(f"services.{service}.messages")
    domain = importlib.import_module(f"services.{service}.domain")
    missing = [c.__name__ for c in messages.COMMANDS if c not in domain.DECIDERS]
    assert not missing, f"{service}: commands without a decider: {missing}"


@pytest.mark.parametrize("service", SERVICES)
def test_the_service_is_wired_to_its_state_and_domain(service: str) -> None:
    service_def, _view = importlib.import_module(f"services.{service}.app").declared()
    state = importlib.import_module(f"services.{service}.state")
    domain = importlib.import_module(f"services.{service}.domain")
    assert service_def.evolve is state.evolve
    assert service_def.decide is domain.decide


@pytest.mark.parametrize("service", SERVICES)
def test_the_read_model_lives_in_views_and_app_is_wiring_only(service: str) -> None:
    _service_def, view = importlib.import_module(f"services.{service}.app").declared()
    assert type(view).__module__ == f"services.{service}.views"
