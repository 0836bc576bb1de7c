"""Every request model of every service carries an example (shown at `/docs`), and the example is a
valid request: it passes the model's own strict validation, parsed from JSON as the API parses it.
Every read route documents its answer with a model that carries an example, and that example is a
valid answer (FastAPI checks every real answer against the same model, so the tests that read the
routes on the real broker keep the models true)."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest
from fastapi import FastAPI

from flexchain.answers import Answer
from flexchain.api import CommandAnswer, Refusal, StrictModel
from tests.support import offline_service

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


# --- read routes: every GET documents its answer with a model that carries a real example ----------


def _offline_app(service: str) -> FastAPI:
    """The service's HTTP API built as `serve` builds it, but not started: no broker is needed to
    read its OpenAPI document."""
    app: FastAPI = offline_service(service)[1]
    return app


DOCUMENTS = {service: _offline_app(service).openapi() for service in SERVICES}
READS = [(service, path) for service, doc in DOCUMENTS.items() for path, ops in doc["paths"].items() if "get" in ops]


def _answer_model(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The component schema an answer is made of: itself, or the items or values of a list or map."""
    for part in ("items", "additionalProperties"):
        if part in schema:
            return _answer_model(doc, schema[part])
    ref = schema.get("$ref")
    assert ref, f"an answer without a named model: {schema}"
    found: dict[str, Any] = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return found


def test_every_service_has_read_routes() -> None:
    assert len(READS) >= 50
    assert {service for service, _ in READS} == set(SERVICES)


@pytest.mark.parametrize(("service", "path"), READS, ids=[f"{s}:{p}" for s, p in READS])
def test_every_read_route_documents_its_answer_by_example(service: str, path: str) -> None:
    doc = DOCUMENTS[service]
    ok = doc["paths"][path]["get"]["responses"]["200"]
    content = ok["content"]
    if path == "/metrics":
        assert any(kind.startswith("text/plain") and "example" in c for kind, c in content.items())
        return
    schema = content["application/json"]["schema"]
    model = _answer_model(doc, schema)
    assert model.get("examples"), f"{service} GET {path}: its answer's model has no example"


def _answers() -> list[type[Answer]]:
    found: list[type[Answer]] = []
    todo = list(Answer.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return sorted(found, key=lambda c: (c.__module__, c.__name__))


ANSWERS = _answers()


@pytest.mark.parametrize("model", ANSWERS, ids=lambda m: f"{m.__module__}.{m.__name__}")
def test_the_example_is_a_valid_answer(model: type[Answer]) -> None:
    """The example parses as the model (an undeclared field is refused), from JSON as a client reads it."""
    assert model.EXAMPLE is not None, f"{model.__name__} has no EXAMPLE"
    model.model_validate_json(json.dumps(model.EXAMPLE))
