"""The states ingest writes to the catalog, as types.

Each member *is* the string stored in the catalog (`StrEnum`): `Phase.COPIED == "copied"`, and
a value read back from the database compares equal to its member.  The stored strings are the
catalog's; renaming a member is fine, changing a value needs a data migration.
"""
from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """Where one device file is on its way (`offload_items.phase`).

    pending -> copied (durable in the station spool) -> stored (in the object store, verified,
    catalogued) -> wiped (deleted from the device).  `done`: the item ended without a copy
    (refused, skipped, or a duplicate whose copy waits under an earlier item)."""

    PENDING = "pending"
    COPIED = "copied"
    STORED = "stored"
    WIPED = "wiped"
    DONE = "done"


class ItemStatus(StrEnum):
    """What became of one device file (`offload_items.status`, and a file's status in a dock's
    result).  None in the catalog while the item is still on its way."""

    STORED = "stored"
    DUPLICATE = "duplicate"  # the same bytes were stored before (this dock, another dock, another station)
    FLAGGED = "flagged"  # stored, and marked empty or unplayable
    REFUSED = "refused"  # never read: a link, a device node, a file swapped after the scan
    SKIPPED = "skipped"  # not stored this time (still being written, read error, upload pending ...)


class SessionState(StrEnum):
    """A dock session's state (`dock_sessions.state`), and the state of a dock's result.

    offloading -> offloaded (every copy in the spool: safe to undock) -> complete | incomplete;
    an incomplete dock becomes `resumed` when a later dock of the same device finishes it.
    `failed` is a result only: the dock never got a session (not a volume, device busy)."""

    OFFLOADING = "offloading"
    OFFLOADED = "offloaded"
    COMPLETE = "complete"
    INCOMPLETE = "incomplete"
    UNRECOGNISED = "unrecognised"
    RESUMED = "resumed"
    FAILED = "failed"


# Sessions a process may still be working on (the daemon's recovery and the uploader leave them be).
ACTIVE_SESSION_STATES = (SessionState.OFFLOADING, SessionState.OFFLOADED)
# Sessions a later dock of the same device resumes.
RESUMABLE_SESSION_STATES = (SessionState.INCOMPLETE, SessionState.OFFLOADING, SessionState.OFFLOADED)
# A file's statuses in the order a dock's counts list them.
ITEM_STATUSES = tuple(ItemStatus)
