"""The field schema the API server serves (OpenAPI v3, strict field validation, strategic merge patch): kemu's
one schema, which lives with the object model in kemu.api.schema (validation reads it too)."""
from kemu.api.schema import (  # noqa: F401  (re-exported for the API server's modules)
    BOOL,
    INT,
    INTSTR,
    NUM,
    OBJ_FIELDS,
    OPEN,
    QTY,
    STR,
    TIME,
    TOP,
    TYPES,
    Field,
    Int,
    ListOf,
    MapOf,
    field_type,
    patch_meta,
    unknown_fields,
)
