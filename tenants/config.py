"""Validation of Tenant.config: one section per layer app, each a pydantic model owned by that app
(settings.PULSE_CONFIG_SECTIONS). Unknown sections or keys are refused so a typo never passes silently."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string
from pydantic import BaseModel, ValidationError


class ConfigError(ValueError):
    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


@lru_cache(maxsize=1)
def _sections() -> dict[str, type[BaseModel]]:
    return {name: import_string(path) for name, path in settings.PULSE_CONFIG_SECTIONS.items()}


def config_validate(data: Any) -> dict[str, Any]:
    """Return the config as given, after checking it; raise ConfigError with readable messages."""
    if not isinstance(data, dict):
        raise ConfigError(["config must be a JSON object"])
    sections = _sections()
    messages: list[str] = []
    for key, value in data.items():
        model = sections.get(key)
        if model is None:
            messages.append(f"unknown section '{key}' (known: {', '.join(sorted(sections))})")
            continue
        try:
            model.model_validate(value)
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in (key, *err["loc"]))
                messages.append(f"{where}: {err['msg']}")
    if messages:
        raise ConfigError(messages)
    return data


def tenant_section(tenant: Any, section: str) -> Any:
    """The typed config section of a tenant, defaults filled in."""
    return _sections()[section].model_validate((tenant.config or {}).get(section, {}))
