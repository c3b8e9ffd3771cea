"""Configuration is declared once: the shipped config shows every key, and overrides work."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import SHIPPED_CONFIG, Settings, load_settings


def test_shipped_config_lists_every_setting() -> None:
    shipped = tomllib.loads(SHIPPED_CONFIG.read_text(encoding="utf-8"))
    missing = []
    for section, field in Settings.model_fields.items():
        if section in ("config_path", "home"):
            continue
        for key in field.annotation.model_fields:  # type: ignore[union-attr]
            if key not in shipped.get(section, {}) and f"# {key} =" not in SHIPPED_CONFIG.read_text():
                missing.append(f"[{section}].{key}")
    assert not missing, f"config/custody.toml does not show: {missing}"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CUSTODY_CATALOG_URL", "postgresql+psycopg2://u@h/db")
    monkeypatch.setenv("CUSTODY_STORAGE_URL", "s3://evidence")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:8333")
    monkeypatch.setenv("CUSTODY_HOME", str(tmp_path))
    s = load_settings()
    assert s.catalog_url == "postgresql+psycopg2://u@h/db"
    assert s.storage_url == "s3://evidence" and s.storage.endpoint_url == "http://127.0.0.1:8333"
    monkeypatch.delenv("CUSTODY_CATALOG_URL")
    monkeypatch.delenv("CUSTODY_STORAGE_URL")
    s = load_settings()
    assert s.catalog_url == f"sqlite:///{tmp_path / 'var' / 'catalog.db'}"
    assert s.storage_url == f"file://{tmp_path / 'var' / 'objects'}"


def test_config_file_and_env_var_and_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[station]\nname = "station-09"\n')
    monkeypatch.setenv("CUSTODY_CONFIG", str(cfg))
    assert load_settings().station.name == "station-09"
    cfg.write_text('[station]\nnmae = "typo"\n')
    with pytest.raises(ConfigError, match="nmae"):
        load_settings(cfg)
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")


def test_own_config_file_falls_back_to_shipped_profiles_and_rules(tmp_path: Path) -> None:
    cfg = tmp_path / "elsewhere.toml"
    cfg.write_text("[station]\n")
    s = load_settings(cfg)
    assert (s.profiles_dir / "gat947.toml").is_file()
    assert s.retention_rules_file.is_file()
    (tmp_path / "devices").mkdir()
    assert load_settings(cfg).profiles_dir == tmp_path / "devices"
