"""A stock tuspy client run as its own process (so a test can kill it mid-upload).

    python tus_client_proc.py CREATION_URL TOKEN FILE [UPLOAD_URL]

Prints the upload URL (one line, flushed) once it exists, then uploads in 8 MiB chunks with a
SHA-256 Upload-Checksum on each and the whole file's SHA-256 in the metadata; exits 0 when the server has every byte."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from tusclient.client import TusClient
from tusclient.uploader import Uploader


class Sha256Uploader(Uploader):
    """tuspy's own uploader, told to send sha256 chunk checksums instead of its default sha1."""

    CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(8 << 20):
            h.update(block)
    return h.hexdigest()


def main() -> None:
    creation, token, path = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    url = sys.argv[4] if len(sys.argv) > 4 else None
    client = TusClient(creation, headers={"Authorization": f"Bearer {token}"})
    up = Sha256Uploader(str(path), client=client, url=url, chunk_size=8 << 20, upload_checksum=True,
                        metadata={"filename": path.name, "recorded_at": "2026-11-28T09:30:00+08:00",
                                  "sha256": _sha256(path)})
    if up.url is None:
        up.set_url(up.create_url())
    print(up.url, flush=True)
    up.upload()


if __name__ == "__main__":
    main()
