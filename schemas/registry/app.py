"""The Confluent Schema Registry REST API over :class:`~schemas.registry.store.Store`.

Routes, bodies, status codes and ``{"error_code", "message"}`` errors follow Confluent's API for
Avro, so the same clients (confluent-kafka, Kafka Connect, Spark's ``from_avro`` tooling) work
against this registry and against Confluent's, Karapace or Apicurio in production.
"""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from schemas.registry.store import InvalidSchema, RegistryError, SchemaNotFound, Store

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"
REQUESTS = Counter("schema_registry_requests_total", "REST requests", ["method", "status"])
REGISTRATIONS = Counter("schema_registry_registrations_total", "POST /subjects/{subject}/versions outcomes", ["outcome"])
DEFAULT_CONTEXT = ":.:"  # a subject in the default context may carry it as a prefix


class RegistryJSON(JSONResponse):
    media_type = MEDIA_TYPE


class BadRequest(RegistryError):
    status, error_code = 400, 400


class RawPath:
    """Routes on the path as the client encoded it, so a subject may hold any character.

    Clients send ``/`` inside a subject as ``%2F``; the server decodes it before routing, and the
    subject would spill into the next path segment. Matching the still-encoded path keeps one
    segment per parameter (each handler decodes its own), and a trailing slash is dropped as
    Confluent's server does, rather than answered with a redirect.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path") or scope["path"].encode()
            path = raw.decode("latin-1").split("?", 1)[0]
            if len(path) > 1:
                path = path.rstrip("/") or "/"
            scope = {**scope, "path": path}
        await self.app(scope, receive, send)


def _subject(encoded: str) -> str:
    subject = unquote(encoded)
    return subject.removeprefix(DEFAULT_CONTEXT)


def _truthy(value: str | None) -> bool:
    return (value or "").lower() == "true"


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except json.JSONDecodeError as exc:
        raise BadRequest(f"Unrecognized request body: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("Unrecognized request body: expected a JSON object")
    return body


def _schema_from(body: dict[str, Any]) -> dict[str, Any]:
    """The schema of a registration, lookup or compatibility request, with its references."""
    schema_type = (body.get("schemaType") or "AVRO").upper()
    if schema_type != "AVRO":
        raise InvalidSchema(f"Invalid schema type {schema_type}: this registry serves AVRO only")
    schema = body.get("schema")
    if not isinstance(schema, str) or not schema:
        raise InvalidSchema("Invalid schema: empty schema")
    references = body.get("references") or []
    if not isinstance(references, list):
        raise InvalidSchema("Invalid schema: references must be a list of {name, subject, version}")
    return {"schema_str": schema, "references": references}


def _schema_id(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise SchemaNotFound(f"Schema {text} not found") from None


def create_app(store: Store) -> ASGIApp:
    app = FastAPI(title="kappa schema registry", docs_url=None, redoc_url=None, openapi_url=None,
                  redirect_slashes=False)

    @app.exception_handler(RegistryError)
    async def registry_error(_request: Request, exc: RegistryError) -> Response:
        return RegistryJSON({"error_code": exc.error_code, "message": exc.message}, status_code=exc.status)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> Response:  # unknown route or method
        return RegistryJSON({"error_code": exc.status_code, "message": f"HTTP {exc.status_code} {exc.detail}"},
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> Response:
        return RegistryJSON({"error_code": 422, "message": f"Unprocessable request: {exc.errors()}"}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(_request: Request, exc: Exception) -> Response:
        return RegistryJSON({"error_code": 50001, "message": f"Error in the backend data store: {exc}"},
                            status_code=500)

    @app.middleware("http")
    async def count(request: Request, call_next):
        response = await call_next(request)
        REQUESTS.labels(request.method, str(response.status_code)).inc()
        return response

    @app.get("/")
    def root() -> Response:
        return RegistryJSON({})

    @app.get("/metrics")
    def metrics() -> Response:
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/schemas/types")
    def schema_types() -> Response:
        return RegistryJSON(["AVRO"])

    @app.get("/contexts")
    def contexts() -> Response:
        return RegistryJSON(["."])  # the default context only

    # -- subjects and versions ---------------------------------------------------------------------
    @app.get("/subjects")
    def subjects(deleted: str | None = None) -> Response:
        return RegistryJSON(store.subjects(include_deleted=_truthy(deleted)))

    @app.get("/subjects/{subject}/versions")
    def versions(subject: str, deleted: str | None = None) -> Response:
        return RegistryJSON([v.version for v in store.versions(_subject(subject), include_deleted=_truthy(deleted))])

    @app.post("/subjects/{subject}/versions")
    async def register(subject: str, request: Request) -> Response:
        name = _subject(subject)
        try:
            body = await _body(request)
            entry = store.register(name, **_schema_from(body), metadata=body.get("metadata"),
                                   rule_set=body.get("ruleSet"), schema_id=body.get("id"),
                                   version=body.get("version"))
        except RegistryError as exc:
            REGISTRATIONS.labels(type(exc).__name__).inc()
            raise
        REGISTRATIONS.labels("ok").inc()
        return RegistryJSON(entry.to_api())

    @app.post("/subjects/{subject}")
    async def lookup(subject: str, request: Request, deleted: str | None = None) -> Response:
        entry = store.lookup(_subject(subject), **_schema_from(await _body(request)), include_deleted=_truthy(deleted))
        return RegistryJSON(entry.to_api())

    @app.get("/subjects/{subject}/metadata")
    def with_metadata(subject: str, request: Request, deleted: str | None = None) -> Response:
        keys, values = request.query_params.getlist("key"), request.query_params.getlist("value")
        wanted = {unquote(k): unquote(v) for k, v in zip(keys, values)}
        return RegistryJSON(store.latest_with_metadata(_subject(subject), wanted, _truthy(deleted)).to_api())

    @app.get("/subjects/{subject}/versions/{version}")
    def get_version(subject: str, version: str, deleted: str | None = None) -> Response:
        return RegistryJSON(store.version(_subject(subject), version, include_deleted=_truthy(deleted)).to_api())

    @app.get("/subjects/{subject}/versions/{version}/schema")
    def get_version_schema(subject: str, version: str) -> Response:
        return Response(store.version(_subject(subject), version).schema, media_type=MEDIA_TYPE)

    @app.get("/subjects/{subject}/versions/{version}/referencedby")
    def referenced_by(subject: str, version: str) -> Response:
        return RegistryJSON(store.referenced_by(_subject(subject), version))

    @app.delete("/subjects/{subject}")
    def delete_subject(subject: str, permanent: str | None = None) -> Response:
        return RegistryJSON(store.delete_subject(_subject(subject), permanent=_truthy(permanent)))

    @app.delete("/subjects/{subject}/versions/{version}")
    def delete_version(subject: str, version: str, permanent: str | None = None) -> Response:
        return RegistryJSON(store.delete_version(_subject(subject), version, permanent=_truthy(permanent)))

    # -- schemas by id and guid ------------------------------------------------------------------
    @app.get("/schemas/ids/{schema_id}")
    def schema_by_id(schema_id: str) -> Response:
        return RegistryJSON(store.by_id(_schema_id(schema_id)).schema_api())

    @app.get("/schemas/ids/{schema_id}/schema")
    def raw_schema_by_id(schema_id: str) -> Response:
        return Response(store.by_id(_schema_id(schema_id)).schema, media_type=MEDIA_TYPE)

    @app.get("/schemas/ids/{schema_id}/subjects")
    def subjects_of_id(schema_id: str) -> Response:
        return RegistryJSON(sorted({v.subject for v in store.usages(_schema_id(schema_id))}))

    @app.get("/schemas/ids/{schema_id}/versions")
    def versions_of_id(schema_id: str) -> Response:
        return RegistryJSON([{"subject": v.subject, "version": v.version} for v in store.usages(_schema_id(schema_id))])

    @app.get("/schemas/guids/{guid}")
    def schema_by_guid(guid: str) -> Response:
        entry = store.by_guid(unquote(guid))
        return RegistryJSON({"id": entry.id, **entry.schema_api()})

    # -- configuration and modes -------------------------------------------------------------------
    @app.get("/config")
    def get_global_config() -> Response:
        return RegistryJSON(store.config(None))

    @app.put("/config")
    async def set_global_config(request: Request) -> Response:
        return RegistryJSON(store.set_config(None, await _body(request)))

    @app.delete("/config")
    def delete_global_config() -> Response:
        return RegistryJSON(store.delete_config(None))

    @app.get("/config/{subject}")
    def get_subject_config(subject: str, defaultToGlobal: str | None = None) -> Response:  # noqa: N803 (API name)
        return RegistryJSON(store.config(_subject(subject), _truthy(defaultToGlobal)))

    @app.put("/config/{subject}")
    async def set_subject_config(subject: str, request: Request) -> Response:
        return RegistryJSON(store.set_config(_subject(subject), await _body(request)))

    @app.delete("/config/{subject}")
    def delete_subject_config(subject: str) -> Response:
        return RegistryJSON(store.delete_config(_subject(subject)))

    @app.get("/mode")
    def get_global_mode() -> Response:
        return RegistryJSON({"mode": store.mode()})

    @app.put("/mode")
    async def set_global_mode(request: Request, force: str | None = None) -> Response:
        return RegistryJSON({"mode": store.set_mode(None, (await _body(request)).get("mode"), _truthy(force))})

    @app.get("/mode/{subject}")
    def get_subject_mode(subject: str, defaultToGlobal: str | None = None) -> Response:  # noqa: N803 (API name)
        return RegistryJSON({"mode": store.mode(_subject(subject), _truthy(defaultToGlobal))})

    @app.put("/mode/{subject}")
    async def set_subject_mode(subject: str, request: Request, force: str | None = None) -> Response:
        mode = store.set_mode(_subject(subject), (await _body(request)).get("mode"), _truthy(force))
        return RegistryJSON({"mode": mode})

    @app.delete("/mode/{subject}")
    def delete_subject_mode(subject: str) -> Response:
        return RegistryJSON({"mode": store.delete_mode(_subject(subject))})

    # -- compatibility -----------------------------------------------------------------------------
    @app.post("/compatibility/subjects/{subject}/versions/{version}")
    async def check_against_version(subject: str, version: str, request: Request, verbose: str | None = None) -> Response:
        problems = store.check(_subject(subject), **_schema_from(await _body(request)), version=version)
        return RegistryJSON(_compatibility_answer(problems, _truthy(verbose)))

    @app.post("/compatibility/subjects/{subject}/versions")
    async def check_against_subject(subject: str, request: Request, verbose: str | None = None) -> Response:
        problems = store.check(_subject(subject), **_schema_from(await _body(request)))
        return RegistryJSON(_compatibility_answer(problems, _truthy(verbose)))

    return RawPath(app)


def _compatibility_answer(problems: list[str], verbose: bool) -> dict[str, Any]:
    answer: dict[str, Any] = {"is_compatible": not problems}
    if verbose:
        answer["messages"] = problems
    return answer
