"""The lab API's responses checked against Metal's published OpenAPI spec.

The spec reaches us as `equinix-metal` (PyPI), the Python SDK Equinix generated from it: one
pydantic model per schema, with the spec's required fields, types, enums and nullability.
A response is valid when its model accepts it; on top of that, a `null` is only accepted
where the spec's schema marks the field nullable or where the real API returned one (as
packet-python's recorded responses show).
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx
import pytest

metal_models = pytest.importorskip("equinix_metal.models", reason="equinix-metal not installed")

# Nulls the real Metal API returned (packet-python's recorded fixtures), by field name.
REAL_API_NULLS = {"previous", "next", "route_object", "facility", "details", "global_ip"}


def _nullable(model: Any, field: str) -> bool:
    """Whether the generated model writes `field` as null (the spec's `nullable: true`)."""
    import inspect

    try:
        source = inspect.getsource(model.to_dict)
    except (OSError, TypeError):
        return False
    return f'if self.{field} is None and "{field}" in self.model_fields_set' in source


def stray_nulls(model: type, data: Any, path: str = "") -> list[str]:
    """Fields that are null where neither the spec nor the real API allowed null."""
    out: list[str] = []
    if isinstance(data, dict) and hasattr(model, "model_fields"):
        for key, value in data.items():
            info = model.model_fields.get(key)
            if info is None:
                continue
            if value is None:
                if not _nullable(model, key) and key not in REAL_API_NULLS:
                    out.append(f"{path}{key}")
                continue
            inner = _model_of(info.annotation)
            if inner is not None:
                items = value if isinstance(value, list) else [value]
                for i, item in enumerate(items):
                    out += stray_nulls(
                        inner,
                        item,
                        f"{path}{key}[{i}]." if isinstance(value, list) else f"{path}{key}.",
                    )
    return out


def _model_of(annotation: Any) -> type | None:
    """The pydantic model inside Optional[...] / List[...] annotations, if any."""
    from typing import get_args

    if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
        return annotation
    for arg in get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def validate(model_name: str, data: Any) -> list[str]:
    """Problems with `data` as an instance of the spec's schema `model_name` ([] if valid)."""
    model = getattr(metal_models, model_name)
    problems = []
    try:
        model.from_dict(data)
    except Exception as exc:  # pydantic's ValidationError, or the SDK's own ValueError
        problems.append(f"{model_name}: {str(exc).splitlines()[0]} | {exc}"[:400])
    problems += [f"{model_name}: null not allowed at {p}" for p in stray_nulls(model, data)]
    return problems


class LabApi:
    """Raw HTTPS calls to the lab's API (what packet-python sends, without its parsing)."""

    def __init__(self, info: Any) -> None:
        self.base = f"https://{info.endpoint}"
        self.client = httpx.Client(
            verify=ssl.create_default_context(cafile=info.ca_file),
            headers={"X-Auth-Token": info.token()},
            timeout=10,
        )

    def call(self, method: str, path: str, body: dict | None = None) -> httpx.Response:
        return self.client.request(method, self.base + "/" + path.lstrip("/"), json=body)

    def hrefs(self, data: Any) -> list[str]:
        """Every `href` in a response."""
        if isinstance(data, dict):
            out = [data["href"]] if isinstance(data.get("href"), str) else []
            for v in data.values():
                out += self.hrefs(v)
            return out
        if isinstance(data, list):
            return [h for item in data for h in self.hrefs(item)]
        return []
