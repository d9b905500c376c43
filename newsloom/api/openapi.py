"""The OpenAPI document, made from the endpoint declarations the server checks requests
against, so the two cannot disagree."""

from __future__ import annotations

import re
from importlib.metadata import version
from typing import Any

from newsloom.api.params import Param
from newsloom.api.routes import ENDPOINTS

ERROR = {"$ref": "#/components/responses/Error"}


def _parameter(param: Param, where: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": param.kind}
    if param.format:
        schema["format"] = param.format
    return {
        "name": param.name,
        "in": where,
        "required": where == "path",
        "description": param.description,
        "schema": schema,
    }


def document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for spec in ENDPOINTS:
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", spec.path)
        paths[path] = {
            "get": {
                "summary": spec.summary,
                "parameters": [_parameter(p, "path") for p in spec.path_params]
                + [_parameter(p, "query") for p in spec.params],
                "responses": {
                    "200": {"description": "JSON"},
                    "400": ERROR,
                    "401": ERROR,
                    "404": ERROR,
                    "503": ERROR,
                },
            }
        }
    for path, summary in (
        ("/healthz", "200 when the database answers, else 503."),
        ("/metrics", "Prometheus metrics of this server."),
    ):
        paths[path] = {"get": {"summary": summary, "responses": {"200": {"description": "OK"}}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "newsloom read API",
            "version": version("newsloom"),
            "description": "Read-only access to the articles newsloom collected. With "
            "NEWSLOOM_API_KEYS set, send `Authorization: Bearer KEY`.",
        },
        "paths": paths,
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": "An error: its HTTP status and a message saying what to fix.",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["status", "message"],
                                "properties": {
                                    "status": {"type": "integer"},
                                    "message": {"type": "string"},
                                },
                            }
                        }
                    },
                }
            },
        },
    }
