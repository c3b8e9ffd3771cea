"""Settings' help is declared once (core/settings.py); the shipped config file is generated from it."""
from __future__ import annotations

import tomllib

from pydantic import BaseModel

from core.config_file import render
from core.settings import SHIPPED_CONFIG, Settings, load_settings


def test_every_setting_has_its_help_declared_with_it() -> None:
    for section, info in Settings.model_fields.items():
        model = info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            for key, field in model.model_fields.items():
                assert field.description, f"[{section}].{key} has no Field(description=...)"


def test_the_shipped_config_file_is_the_generated_one() -> None:
    assert SHIPPED_CONFIG.read_text(encoding="utf-8") == render(), (
        "config/custody.toml differs from core/settings.py: regenerate it with "
        "`.venv/bin/python -m core.config_file > config/custody.toml`")


def test_the_generated_file_loads_to_the_defaults() -> None:
    data = tomllib.loads(render())
    shipped = load_settings(SHIPPED_CONFIG)
    defaults = Settings()
    for section, values in data.items():
        for key, value in values.items():
            if isinstance(value, dict):
                continue
            assert getattr(getattr(shipped, section), key) == getattr(getattr(defaults, section), key), (section, key)
