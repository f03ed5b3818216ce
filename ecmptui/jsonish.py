"""The one name for data shaped as JSON (an API's body, a status file, a feed message)."""

from __future__ import annotations

from typing import Any, TypeAlias

JsonObject: TypeAlias = dict[str, Any]
