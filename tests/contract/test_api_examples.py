"""Every request model of every service carries an example (shown at `/docs`), and the example is a
valid request: it passes the model's own strict validation, parsed from JSON as the API parses it."""

from __future__ import annotations

import importlib
import json

import pytest

from flexchain.api import CommandAnswer, Refusal, StrictModel

SERVICES = ("order", "inventory", "presale", "commission", "loyalty")


def _models() -> list[type[StrictModel]]:
    for service in SERVICES:
        importlib.import_module(f"services.{service}.api")
    found: list[type[StrictModel]] = []
    todo = list(StrictModel.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return sorted(found, key=lambda c: (c.__module__, c.__name__))


MODELS = _models()


def test_every_service_has_request_models() -> None:
    modules = {m.__module__ for m in MODELS}
    assert modules == {f"services.{s}.api" for s in SERVICES}
    assert len(MODELS) >= 40


@pytest.mark.parametrize("model", MODELS, ids=lambda m: f"{m.__module__.split('.')[1]}.{m.__name__}")
def test_the_example_is_a_valid_request(model: type[StrictModel]) -> None:
    assert model.EXAMPLE is not None, f"{model.__name__} has no EXAMPLE"
    model.model_validate_json(json.dumps(model.EXAMPLE))
    schema = model.model_json_schema()
    assert schema["examples"] == [model.EXAMPLE]


@pytest.mark.parametrize("model", [CommandAnswer, Refusal])
def test_the_answer_examples_fit_their_models(model: type[CommandAnswer] | type[Refusal]) -> None:
    [example] = model.model_json_schema()["examples"]
    model.model_validate_json(json.dumps(example))
