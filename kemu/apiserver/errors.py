"""metav1.Status errors with the kube-apiserver's reasons, codes and messages (kubectl prints
`Error from server (<reason>): <message>`)."""
from __future__ import annotations

import json

from aiohttp import web

from kemu.api.kinds import Kind

HTTP_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
                406: "NotAcceptable", 409: "Conflict", 410: "Expired", 413: "RequestEntityTooLarge",
                415: "UnsupportedMediaType", 422: "Invalid", 500: "InternalError", 504: "Timeout"}


def status(code: int, message: str, reason: str | None = None, details: dict | None = None) -> dict:
    """A Failure Status object."""
    out = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
           "reason": reason if reason is not None else HTTP_REASONS.get(code, ""), "code": code}
    if details:
        out["details"] = details
    return out


class APIError(Exception):
    """An error answered as a Status with `code`."""

    def __init__(self, code: int, message: str, reason: str | None = None, details: dict | None = None) -> None:
        super().__init__(message)
        self.status = status(code, message, reason, details)
        self.code = code

    def response(self) -> web.Response:
        return web.Response(status=self.code, body=json.dumps(self.status).encode(), content_type="application/json")


def _resource(kind: Kind) -> str:
    """`pods`, `deployments.apps`: how upstream names a resource in messages."""
    return f"{kind.plural}.{kind.group}" if kind.group else kind.plural


def not_found(kind: Kind, name: str) -> APIError:
    return APIError(404, f'{_resource(kind)} "{name}" not found', "NotFound",
                    {"name": name, **({"group": kind.group} if kind.group else {}), "kind": kind.plural})


def namespace_not_found(namespace: str) -> APIError:
    return APIError(404, f'namespaces "{namespace}" not found', "NotFound", {"name": namespace, "kind": "namespaces"})


def already_exists(kind: Kind, name: str) -> APIError:
    return APIError(409, f'{_resource(kind)} "{name}" already exists', "AlreadyExists",
                    {"name": name, **({"group": kind.group} if kind.group else {}), "kind": kind.plural})


def conflict(kind: Kind, name: str, why: str = "the object has been modified; please apply your changes to the "
                                              "latest version and try again") -> APIError:
    return APIError(409, f'Operation cannot be fulfilled on {_resource(kind)} "{name}": {why}', "Conflict",
                    {"name": name, **({"group": kind.group} if kind.group else {}), "kind": kind.plural})


FIELD_REASONS = {"Forbidden": "FieldValueForbidden", "Required value": "FieldValueRequired",
                 "Invalid value": "FieldValueInvalid", "Duplicate value": "FieldValueDuplicate",
                 "Unsupported value": "FieldValueNotSupported", "Not found": "FieldValueNotFound",
                 "Too long": "FieldValueTooLong", "Too many": "FieldValueTooMany"}


def _cause(field: str, message: str) -> dict:
    """A StatusCause from a kemu problem; its message starts with upstream's words for the kind of problem."""
    if message.lower().startswith("required"):
        message = "Required value" + message[len("required"):]
    prefix = next((p for p in FIELD_REASONS if message.startswith(p)), None)
    if prefix is None:
        prefix, message = "Invalid value", f"Invalid value: {message}"
    return {"reason": FIELD_REASONS[prefix], "message": message, "field": field}


def invalid(kind: Kind, name: str, problems: list[tuple[str, str]]) -> APIError:
    """422 from kemu.api.validation's (field, message) problems, worded as field.ErrorList.ToAggregate() is."""
    causes = [_cause(field, message) for field, message in problems]
    text = ", ".join(f"{c['field']}: {c['message']}" if c["field"] else c["message"] for c in causes)
    if len(causes) > 1:
        text = f"[{text}]"
    qualified = f"{kind.name}.{kind.group}" if kind.group else kind.name
    return APIError(422, f'{qualified} "{name}" is invalid: {text}', "Invalid",
                    {"name": name, **({"group": kind.group} if kind.group else {}), "kind": kind.name,
                     "causes": causes})


def bad_request(message: str) -> APIError:
    return APIError(400, message, "BadRequest")


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> APIError:
    return APIError(405, message, "MethodNotAllowed")
