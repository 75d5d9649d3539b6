"""The Confluent Schema Registry REST API over :class:`~schemas.registry.store.Store`."""
from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

from schemas.registry.store import InvalidSchema, RegistryError, Store

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"
REQUESTS = Counter("schema_registry_requests_total", "REST requests", ["method", "status"])
REGISTRATIONS = Counter("schema_registry_registrations_total", "POST /subjects/{subject}/versions outcomes", ["outcome"])


class RegistryJSON(JSONResponse):
    media_type = MEDIA_TYPE


def _truthy(value: str | None) -> bool:
    return (value or "").lower() == "true"


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except json.JSONDecodeError as exc:
        raise RegistryError(f"Unrecognized request body: {exc}") from exc
    if not isinstance(body, dict):
        raise RegistryError("Unrecognized request body: expected a JSON object")
    return body


def _schema_from(body: dict[str, Any]) -> str:
    schema_type = (body.get("schemaType") or "AVRO").upper()
    if schema_type != "AVRO":
        raise InvalidSchema(f"Schema type {schema_type} is not supported: this registry serves AVRO only")
    if body.get("references"):
        raise InvalidSchema("Schema references are not supported by this registry")
    schema = body.get("schema")
    if not isinstance(schema, str) or not schema:
        raise InvalidSchema("Empty schema")
    return schema


def create_app(store: Store) -> FastAPI:
    app = FastAPI(title="kappa schema registry", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(RegistryError)
    async def registry_error(_request: Request, exc: RegistryError) -> Response:
        status = exc.status if type(exc) is not RegistryError else 422
        code = exc.error_code if type(exc) is not RegistryError else 42200
        return RegistryJSON({"error_code": code, "message": exc.message}, status_code=status)

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

    @app.get("/subjects")
    def subjects(deleted: str | None = None) -> Response:
        return RegistryJSON(store.subjects(include_deleted=_truthy(deleted)))

    @app.get("/subjects/{subject}/versions")
    def versions(subject: str, deleted: str | None = None) -> Response:
        return RegistryJSON([v.version for v in store.versions(subject, include_deleted=_truthy(deleted))])

    @app.post("/subjects/{subject}/versions")
    async def register(subject: str, request: Request) -> Response:
        try:
            entry = store.register(subject, _schema_from(await _body(request)))
        except RegistryError as exc:
            REGISTRATIONS.labels(type(exc).__name__).inc()
            raise
        REGISTRATIONS.labels("ok").inc()
        return RegistryJSON({"id": entry.id, "version": entry.version, "subject": subject, "schema": entry.schema})

    @app.post("/subjects/{subject}")
    async def lookup(subject: str, request: Request, deleted: str | None = None) -> Response:
        entry = store.lookup(subject, _schema_from(await _body(request)), include_deleted=_truthy(deleted))
        return RegistryJSON(entry.to_api())

    @app.get("/subjects/{subject}/versions/{version}")
    def get_version(subject: str, version: str, deleted: str | None = None) -> Response:
        return RegistryJSON(store.version(subject, version, include_deleted=_truthy(deleted)).to_api())

    @app.get("/subjects/{subject}/versions/{version}/schema")
    def get_version_schema(subject: str, version: str) -> Response:
        return Response(store.version(subject, version).schema, media_type=MEDIA_TYPE)

    @app.get("/subjects/{subject}/versions/{version}/referencedby")
    def referenced_by(subject: str, version: str) -> Response:
        store.version(subject, version)
        return RegistryJSON([])

    @app.delete("/subjects/{subject}")
    def delete_subject(subject: str, permanent: str | None = None) -> Response:
        return RegistryJSON(store.delete_subject(subject, permanent=_truthy(permanent)))

    @app.delete("/subjects/{subject}/versions/{version}")
    def delete_version(subject: str, version: str, permanent: str | None = None) -> Response:
        return RegistryJSON(store.delete_version(subject, version, permanent=_truthy(permanent)))

    @app.get("/schemas/ids/{schema_id}")
    def schema_by_id(schema_id: int) -> Response:
        return RegistryJSON({"schema": store.schema_by_id(schema_id)})

    @app.get("/schemas/ids/{schema_id}/schema")
    def raw_schema_by_id(schema_id: int) -> Response:
        return Response(store.schema_by_id(schema_id), media_type=MEDIA_TYPE)

    @app.get("/schemas/ids/{schema_id}/subjects")
    def subjects_of_id(schema_id: int) -> Response:
        return RegistryJSON(sorted({v.subject for v in store.usages(schema_id)}))

    @app.get("/schemas/ids/{schema_id}/versions")
    def versions_of_id(schema_id: int) -> Response:
        return RegistryJSON([{"subject": v.subject, "version": v.version} for v in store.usages(schema_id)])

    @app.get("/config")
    def get_global_config() -> Response:
        return RegistryJSON({"compatibilityLevel": store.compatibility_level(None)})

    @app.put("/config")
    async def set_global_config(request: Request) -> Response:
        level = store.set_compatibility_level(None, (await _body(request)).get("compatibility"))
        return RegistryJSON({"compatibility": level})

    @app.get("/config/{subject}")
    def get_subject_config(subject: str, defaultToGlobal: str | None = None) -> Response:  # noqa: N803 (API name)
        return RegistryJSON({"compatibilityLevel": store.compatibility_level(subject, _truthy(defaultToGlobal))})

    @app.put("/config/{subject}")
    async def set_subject_config(subject: str, request: Request) -> Response:
        level = store.set_compatibility_level(subject, (await _body(request)).get("compatibility"))
        return RegistryJSON({"compatibility": level})

    @app.delete("/config/{subject}")
    def delete_subject_config(subject: str) -> Response:
        return RegistryJSON({"compatibilityLevel": store.delete_compatibility_level(subject)})

    @app.post("/compatibility/subjects/{subject}/versions/{version}")
    async def check_against_version(subject: str, version: str, request: Request, verbose: str | None = None) -> Response:
        problems = store.check(subject, _schema_from(await _body(request)), version)
        return RegistryJSON(_compatibility_answer(problems, _truthy(verbose)))

    @app.post("/compatibility/subjects/{subject}/versions")
    async def check_against_subject(subject: str, request: Request, verbose: str | None = None) -> Response:
        problems = store.check(subject, _schema_from(await _body(request)))
        return RegistryJSON(_compatibility_answer(problems, _truthy(verbose)))

    @app.get("/mode")
    def mode() -> Response:
        return RegistryJSON({"mode": "READWRITE"})

    return app


def _compatibility_answer(problems: list[str], verbose: bool) -> dict[str, Any]:
    answer: dict[str, Any] = {"is_compatible": not problems}
    if verbose:
        answer["messages"] = problems
    return answer
