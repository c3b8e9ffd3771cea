"""The application context: settings, the acting user, and the lazily opened catalog and store."""
from __future__ import annotations

from functools import cached_property

from catalog.anchor import publish_key
from catalog.db import Catalog
from catalog.stationkey import StationKey, station_key
from core.settings import Settings, load_settings
from storage.base import ObjectStore
from storage.factory import open_store


class App:
    """What every command and request works with.

    `user` is the account acting (`custody --user NAME`; None = the OS user's account, resolved
    by catalog.accounts.resolve_actor).  The catalog and the store open on first use.
    """

    def __init__(self, settings: Settings | None = None, *, user: str | None = None) -> None:
        self.settings = settings or load_settings()
        self.user: str | None = user

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.settings.catalog_url, auto_migrate=self.settings.catalog.auto_migrate,
                       signer=self.station_key, station=self.station)

    @cached_property
    def station_key(self) -> StationKey:
        """This station's custody-log signing key (`[custody_log].key_file`, created on first use)."""
        key = station_key(self.settings)
        key.on_first_use = lambda: publish_key(self)
        return key

    @cached_property
    def store(self) -> ObjectStore:
        return open_store(self.settings)

    @property
    def station(self) -> str:
        return self.settings.station.name

    def close(self) -> None:
        if "catalog" in self.__dict__:
            self.catalog.dispose()
