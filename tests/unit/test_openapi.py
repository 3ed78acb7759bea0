"""The OpenAPI document: valid OpenAPI 3.1, derived from the routes Flask serves (each view
declares its operation) and no others, the state the Lua scripts build, and its reference page.
(schemathesis checks the answers of the real web process against it:
tests/processes/test_contract.py.)"""

from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate

from optio.webapp import openapi, schemas
from optio.webapp.operations import Answer
from optio.webapp.operations import operation as declare
from optio.webapp.schemas import idle_state
from tests.unit.apps import build_app

METHODS = {"GET", "POST", "PUT", "DELETE", "PATCH"}


@pytest.fixture(scope="module")
def app(redis_server, redis_db):
    return build_app(redis_server, redis_db(), max_x=500, max_y=1200.5)


@pytest.fixture(scope="module")
def document(app) -> dict:
    response = app.test_client().get("/api/openapi.json")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    return response.json


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1")
    validate(document)


def _template(path: str) -> str:
    """A path with its parameters unnamed: Flask's ``<any(...):name>`` and OpenAPI's
    ``{name}`` both become ``{}``."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)


def test_the_document_describes_every_route_flask_serves_and_no_other(app, document):
    served = {
        (_template(rule.rule), method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods & METHODS
    }
    described = {
        (_template(path), method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method.upper() in METHODS
    }
    assert served - described == set(), "routes missing from the document"
    assert described - served == set(), "documented routes that Flask does not serve"


def test_every_route_declares_its_operation(app):
    """Each rule Flask serves (pages and static files included) has one @operation."""
    assert openapi.undocumented(app) == []


def test_a_route_without_an_operation_is_refused_by_name(redis_server):
    """A new route whose view declares no operation (or two for one rule) breaks the document,
    which names it; declared, it is in the document with its path parameter."""
    fresh = build_app(redis_server, 9)
    ok = {200: Answer("Done.")}

    @fresh.get("/api/new/<run_id>")
    def new_route(run_id: str):
        return ""

    @fresh.post("/api/twice")
    @declare("twiceA", "One", tag="system", answers=ok)
    @declare("twiceB", "Two", tag="system", answers=ok)
    def twice():
        return ""

    assert openapi.undocumented(fresh) == ["GET /api/new/<run_id>", "POST /api/twice"]
    with pytest.raises(openapi.UndocumentedRoutes, match="GET /api/new/<run_id>, POST /api"):
        openapi.build(fresh)
    fresh.view_functions["twice"] = declare("twice", "Once", tag="system", answers=ok)(lambda: "")
    declare("getNew", "New", tag="system", answers=ok)(new_route)
    with pytest.raises(ValueError, match="answers something"):
        declare("getNothing", "Nothing")
    built = openapi.build(fresh)
    assert built["paths"]["/api/new/{runId}"]["get"]["parameters"] == [
        {"name": "runId", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    assert built["paths"]["/api/twice"]["post"]["operationId"] == "twice"
    validate(built)


def test_every_operation_has_an_id_and_documents_its_errors(document):
    ids = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            ids.append(operation["operationId"])
            for status, answer in operation["responses"].items():
                if status.startswith(("4", "5")) and path.startswith("/api/"):
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema["$ref"].endswith(("/Error", "/Health")), (path, status)
            if method != "get" and path.startswith("/api/"):
                assert {"401", "403", "413", "415"} <= set(operation["responses"]), path
    assert len(ids) == len(set(ids))


def test_every_link_names_an_operation_of_the_document(document):
    ids = {op["operationId"] for item in document["paths"].values() for op in item.values()}
    links = [
        link
        for item in document["paths"].values()
        for op in item.values()
        for answer in op["responses"].values()
        for link in answer.get("links", {}).values()
    ]
    assert len(links) > 20
    assert {link["operationId"] for link in links} <= ids


def test_the_limits_shown_are_the_servers(document):
    start = document["components"]["schemas"]["StartRun"]["properties"]
    assert start["x"]["maximum"] == 500 and start["x"]["minimum"] == 1
    assert start["y"]["maximum"] == 1200.5 and start["y"]["exclusiveMinimum"] == 0
    assert document["components"]["schemas"]["UpdateRun"].get("required") is None


def test_each_app_documents_its_own_limits(redis_server, app, document):
    other = build_app(redis_server, 9, max_x=7, max_y=3).test_client().get("/api/openapi.json")
    start = other.json["components"]["schemas"]["StartRun"]["properties"]
    assert start["x"]["maximum"] == 7 and start["y"]["maximum"] == 3
    again = app.test_client().get("/api/openapi.json").json
    assert again == document and again["components"]["schemas"]["StartRun"] != start


def test_the_state_schema_lists_every_field_of_the_state(document):
    """Every field is required but the occasional ones (deadline runs', a binding ceiling's),
    which are left out, not null, when they do not apply."""
    state = document["components"]["schemas"]["RunState"]
    occasional = set(schemas.OCCASIONAL_STATE_FIELDS)
    assert set(state["required"]) == set(idle_state()) == set(state["properties"]) - occasional
    assert state["additionalProperties"] is False
    for name in occasional:
        assert "null" not in str(state["properties"][name]), name
    assert idle_state() == schemas.RunState().model_dump(exclude=occasional)


def test_the_states_the_lua_scripts_build_fit_the_models(store):
    """state_json (optio/store/lua/_prelude.lua) and the models agree, field by field (the
    occasional fields too: a deadline run has deadline and onTrack)."""
    occasional = set(schemas.OCCASIONAL_STATE_FIELDS)
    now = store.runs.server_time_ms()
    timed = store.runs.start_run(10, deadline_ms=now + 600_000, weight=2.5, max_in_flight=3)
    state = store.runs.run_state(timed)
    assert set(state) - set(schemas.RunState.model_fields) == set()
    assert {"deadline", "onTrack"} <= set(state) and state["weight"] == 2.5
    schemas.RunState.model_validate(state, strict=True)
    store.runs.stop_run(timed)
    run_id = store.runs.start_run(10, 60)
    for state in (store.runs.current_state(), store.runs.run_state(run_id)):
        assert set(state) == set(schemas.RunState.model_fields) - occasional
        schemas.RunState.model_validate(state, strict=True)
    store.runs.pause_run()
    store.runs.stop_run()
    runs, after = store.runs.list_runs(5)
    page = schemas.RunsPage.model_validate({"runs": runs, "next": after})
    assert page.runs[0].status == "stopped" and page.runs[0].finishedAt is not None
    detail = {
        **store.runs.run_state(run_id),
        "errors": store.runs.run_errors(run_id),
        "webhookError": None,
    }
    schemas.RunDetail.model_validate(detail)


def test_the_reference_page_shows_every_operation_and_schema(app, document):
    response = app.test_client().get("/api/docs")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    page = response.text
    for item in document["paths"].values():
        for operation in item.values():
            assert f'id="{operation["operationId"]}"' in page
    for name in document["components"]["schemas"]:
        assert f'id="schema-{name.lower()}"' in page
    assert "<script" not in page and not re.search(r'(src|href)="(https?:)?//', page)
    assert "Content-Security-Policy" in response.headers
    assert app.test_client().get("/static/api-docs.css").status_code == 200


def test_the_document_and_page_need_no_token(redis_server, redis_db):
    protected = build_app(redis_server, redis_db(), api_token="t", protect_reads=True).test_client()
    assert protected.get("/api/status").status_code == 401
    assert protected.get("/api/openapi.json").status_code == 200
    assert protected.get("/api/docs").status_code == 200
