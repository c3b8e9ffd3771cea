"""The application context: settings plus lazily opened catalog, store and profiles."""
from __future__ import annotations

from functools import cached_property

from core.settings import Settings, load_settings
from catalog.db import Catalog
from storage.base import ObjectStore


class App:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.settings.catalog_url, auto_migrate=self.settings.catalog.auto_migrate)

    @cached_property
    def store(self) -> ObjectStore:
        from storage.factory import open_store

        return open_store(self.settings)

    @cached_property
    def profiles(self) -> list:
        from ingest.profiles import load_profiles

        return load_profiles(self.settings.profiles_dir)

    @property
    def station(self) -> str:
        return self.settings.station.name

    def close(self) -> None:
        if "catalog" in self.__dict__:
            self.catalog.dispose()
