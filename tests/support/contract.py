"""The OpenAPI document as a contract: which operation serves a request, and whether a request
or a response matches what the document says of it."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from jsonschema import Draft202012Validator

from cmdbgraph.rest.openapi import document

JSON = "application/json"


class Contract:
    """The document, answering: which operation serves this request, and does this request
    or response match what it documents."""

    def __init__(self, doc: dict) -> None:
        self.doc = doc
        self.templates = [
            (re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$"), path)
            for path in doc["paths"]
        ]

    def operation(self, method: str, path: str) -> tuple[dict, dict[str, str]]:
        """The operation for ``method`` on the concrete ``path``, and its path parameters."""
        for pattern, template in self.templates:
            match = pattern.match(path)
            if match and method.lower() in self.doc["paths"][template]:
                return self.doc["paths"][template][method.lower()], match.groupdict()
        raise AssertionError(f"{method} {path} is not in the document")

    def validator(self, schema: dict) -> Draft202012Validator:
        # The document's references are "#/components/...": give the schema the components
        # at its root (an unknown keyword to JSON Schema) so they resolve.
        rooted = {**schema, "components": self.doc["components"]}
        return Draft202012Validator(rooted)

    def parameters(self, operation: dict) -> list[dict]:
        found = []
        for parameter in operation.get("parameters", []):
            if "$ref" in parameter:
                name = parameter["$ref"].rsplit("/", 1)[1]
                parameter = self.doc["components"]["parameters"][name]
            found.append(parameter)
        return found

    def request_errors(self, method: str, path: str, body: Any) -> list[str]:
        """Why the request breaks the document (empty when it conforms)."""
        operation, path_values = self.operation(method, path)
        errors = []
        for parameter in self.parameters(operation):
            if parameter["in"] == "path":
                raw = path_values[parameter["name"]]
                textual = parameter["schema"].get("type") == "string"
                value = int(raw) if re.fullmatch(r"-?\d+", raw) and not textual else raw
                errors += [
                    e.message for e in self.validator(parameter["schema"]).iter_errors(value)
                ]
        request_body = operation.get("requestBody")
        if request_body is not None:
            if body is _NO_BODY:
                if request_body["required"]:
                    errors.append("a body is required")
            else:
                schema = request_body["content"][JSON]["schema"]
                errors += [e.message for e in self.validator(schema).iter_errors(body)]
        return errors

    def check_response(self, response: httpx.Response) -> dict:
        """Validate ``response`` against what the document says of its status; returns its
        JSON body."""
        return self.check(
            response.request.method,
            response.request.url.path,
            response.status_code,
            response.headers,
            response.content,
        )

    def check(self, method: str, path: str, status: int, headers, content: bytes) -> dict:
        operation, _ = self.operation(method, path)
        documented = operation["responses"]
        entry = documented.get(str(status)) or documented.get("default")
        where = f"{method} {path} HTTP {status}"
        assert entry is not None, f"{where} is not documented ({sorted(documented)})"
        headers = {name.lower(): value for name, value in headers.items()}
        for name, header in entry.get("headers", {}).items():
            if header.get("required"):
                assert name.lower() in headers, f"{where}: header {name} missing"
        assert str(headers.get("content-type", "")).startswith(JSON), where
        body = json.loads(content)
        errors = sorted(
            self.validator(entry["content"][JSON]["schema"]).iter_errors(body),
            key=lambda e: list(e.absolute_path),
        )
        assert not errors, (
            f"{where}: the body breaks the document: "
            f"{[f'{list(e.absolute_path)}: {e.message}' for e in errors]}\n"
            f"{json.dumps(body, ensure_ascii=False)[:2000]}"
        )
        return body


_NO_BODY = object()
CONTRACT = Contract(document())
