"""S3-compatible object store (AWS, MinIO, Ceph, SeaweedFS) through boto3.

The store confirms what it received: each put carries a SHA-256 checksum (whole
object, or one per multipart part, whose composite the store reports back).  The
whole-file SHA-256 computed at the dock stays the evidence hash and travels in the
object's metadata (`x-amz-meta-sha256`).
"""
from __future__ import annotations

import base64
import hashlib
import http.client
import io
import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from urllib3 import HTTPHeaderDict

from core.errors import ConfigError, ObjectLocked, SourceMismatch, StorageIntegrityError, StorageUnavailable
from core.settings import StorageSettings
from storage.base import ObjectInfo, StoredObject

MAX_PARTS = 10_000
SENDFILE_TIMEOUT_SECONDS = 120.0  # as the clients' read_timeout
_UNAVAILABLE = (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError)


class _Body:
    """The response body in the shape botocore reads (`raw.stream()`)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, *_a: Any, **_kw: Any) -> Iterator[bytes]:
        yield self.data


def _sendfile_put(request: Any, **_kw: Any) -> Any:
    """botocore's `before-send` hook for PutObject on a plain-HTTP endpoint (issue 14): the
    request botocore built and signed is sent as is, but its file body goes with
    `socket.sendfile` - the kernel moves the bytes from the page cache to the socket - instead
    of being read into Python 16 KB at a time and written back out (about 0.03 CPU-s less per
    64 MB here).  Returns None (botocore sends it itself) for anything else: HTTPS, a proxy, a
    body that is not a plain file.  A failure to connect or send is raised as botocore's
    connection error, so its retries (which rewind the body) and our translation apply."""
    body = request.body
    if (not isinstance(body, io.BufferedReader) or not request.url.startswith("http://")
            or any(os.environ.get(v) for v in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"))):
        return None
    u = urlsplit(request.url)
    conn = http.client.HTTPConnection(u.hostname or "", u.port or 80, timeout=SENDFILE_TIMEOUT_SECONDS)
    try:
        conn.putrequest(request.method, u.path + (f"?{u.query}" if u.query else ""), skip_host=True,
                        skip_accept_encoding=True)
        length = None
        for k, v in request.headers.items():
            if k.lower() == "expect":
                continue  # 100-continue is not signed; the body follows the headers at once
            if k.lower() == "content-length":
                length = int(v)
            conn.putheader(k, v)
        if not any(k.lower() == "host" for k in request.headers.keys()):
            conn.putheader("Host", u.netloc)
        if length is None:
            return None
        conn.endheaders()
        if length:
            conn.sock.sendfile(body, body.tell(), length)
        r = conn.getresponse()
        data = r.read()
        return AWSResponse(request.url, r.status, HTTPHeaderDict(r.getheaders()), _Body(data))
    except (OSError, http.client.HTTPException) as e:
        raise EndpointConnectionError(endpoint_url=request.url, error=e) from e
    finally:
        conn.close()


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def composite_checksum(part_digests: list[bytes]) -> str:
    """S3's multipart composite: SHA-256 over the concatenated part digests, '-N'."""
    return f"{b64(hashlib.sha256(b''.join(part_digests)).digest())}-{len(part_digests)}"


def _translate(e: Exception, what: str) -> Exception:
    if isinstance(e, _UNAVAILABLE):
        return StorageUnavailable(f"{what}: object store unreachable ({e})")
    if isinstance(e, ClientError):
        code = e.response.get("Error", {}).get("Code", "")
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in ("BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"):
            return StorageIntegrityError(f"{what}: the store rejected the checksum ({code})")
        if code == "AccessDenied" and what.startswith(("delete", "retention", "overwrite")):
            return ObjectLocked(f"{what}: refused by the store ({code})")
        if status >= 500 or code in ("SlowDown", "ServiceUnavailable", "RequestTimeout"):
            return StorageUnavailable(f"{what}: object store error {code or status}")
        return StorageUnavailable(f"{what}: {code or status}: {e}")
    if isinstance(e, BotoCoreError):
        return StorageUnavailable(f"{what}: {e}")
    return e


def hash_parts(path: Path, part_size: int, on_part: Callable[[int, bytes], None],
               chunk: int = 8 * 1024 * 1024) -> str:
    """One sequential read of the spool copy feeds two hashers: each part's SHA-256 (handed to
    `on_part` as soon as the part is hashed, so its upload starts while the next is read) and
    the whole file's, returned so the caller can prove the copy is still the device's bytes
    before the object is completed (a multipart checksum alone would bless a damaged copy)."""
    whole = hashlib.sha256()
    part, in_part, index = hashlib.sha256(), 0, 0
    buf = bytearray(chunk)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            whole.update(view[:n])
            off = 0
            while off < n:
                take = min(n - off, part_size - in_part)
                part.update(view[off:off + take])
                in_part, off = in_part + take, off + take
                if in_part == part_size:
                    on_part(index, part.digest())
                    part, in_part, index = hashlib.sha256(), 0, index + 1
    if in_part:
        on_part(index, part.digest())
    return whole.hexdigest()


class FileSlice(io.RawIOBase):
    """A seekable, read-only window [start, start+length) of a file: one multipart part,
    streamed (and re-read from its start if botocore retries the request)."""

    def __init__(self, path: Path, start: int, length: int) -> None:
        super().__init__()
        self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self.start, self.length, self.pos = start, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.length}[whence]
        self.pos = max(0, min(self.length, base + offset))
        return self.pos

    def readinto(self, b: Any) -> int:
        with memoryview(b) as view:
            n = min(len(view), self.length - self.pos)
            if n <= 0:
                return 0
            got = os.preadv(self._fd, [view[:n]], self.start + self.pos)
        if got == 0:
            raise StorageIntegrityError("spool file shorter than recorded")
        self.pos += got
        return got

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


class S3Store:
    def __init__(self, url: str, cfg: StorageSettings) -> None:
        bucket = url[len("s3://"):].strip("/")
        if not bucket or "/" in bucket:
            raise ConfigError(f"storage URL {url!r}: expected s3://BUCKET")
        self.url = url
        self.bucket = bucket
        self.cfg = cfg
        self.client = self._client(cfg, sign_payload=True)
        # Bulk data goes through a client that does not hash each body a second time for the
        # request signature (botocore does that on plain-HTTP endpoints): every data request
        # carries its SHA-256 in the signed x-amz-checksum-sha256 header, which the store
        # checks against the body, so the signature still covers the bytes.
        self.data_client = self._client(cfg, sign_payload=False)
        self.data_client.meta.events.register("before-send.s3.PutObject", _sendfile_put)
        self._bucket_checked = False

    @staticmethod
    def _client(cfg: StorageSettings, sign_payload: bool) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=cfg.endpoint_url or None,
            region_name=cfg.region,
            config=Config(
                retries={"max_attempts": 5, "mode": "standard"},
                connect_timeout=5,
                read_timeout=120,
                max_pool_connections=max(10, cfg.upload_concurrency * 2),
                # we send our own SHA-256 checksums; don't add CRC32 trailers on top
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                s3={"addressing_style": "path", "payload_signing_enabled": sign_payload},
            ),
        )

    # ------------------------------------------------------------------ bucket
    def ensure_bucket(self) -> None:
        if self._bucket_checked:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchBucket", "NotFound") and self.cfg.create_bucket:
                try:
                    self.client.create_bucket(Bucket=self.bucket, ObjectLockEnabledForBucket=True)
                except ClientError as ce:
                    if ce.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise _translate(ce, f"create bucket {self.bucket}") from ce
            else:
                raise _translate(e, f"bucket {self.bucket}") from e
        except Exception as e:
            raise _translate(e, f"bucket {self.bucket}") from e
        self._bucket_checked = True

    def ping(self) -> None:
        self._bucket_checked = False
        self.ensure_bucket()

    # ------------------------------------------------------------------ write
    def put_file(self, key: str, path: Path, sha256: str, size: int, *,
                 metadata: dict[str, str] | None = None, content_type: str | None = None,
                 proven: bool = False) -> StoredObject:
        # `proven` changes nothing here: the bytes must be sent anyway, and the whole-file hash
        # of that read is what proves a multipart object (its checksum covers only the parts).
        self.ensure_bucket()
        existing = self.head(key)
        if existing is not None:
            # Content-addressed: the same key must hold the same bytes (resume / duplicate).
            if existing.sha256 != sha256 or existing.size != size:
                raise StorageIntegrityError(
                    f"object {key} already exists with sha256={existing.sha256} size={existing.size}")
            return StoredObject(key=key, size=size, sha256=sha256, checksum=existing.checksum or "",
                                version_id=existing.version_id, existed=True)
        meta = {"sha256": sha256, **(metadata or {})}
        extra: dict[str, Any] = {"Metadata": meta, "ContentType": content_type or "application/octet-stream"}
        try:
            if size <= self.cfg.multipart_threshold_bytes:
                expected = b64(bytes.fromhex(sha256))  # the dock's hash: nothing to compute here
                with open(path, "rb") as f:
                    r = self.data_client.put_object(Bucket=self.bucket, Key=key, Body=f,
                                                    ChecksumSHA256=expected, **extra)
                checksum = r.get("ChecksumSHA256") or expected
                version = r.get("VersionId")
            else:
                checksum, version = self._multipart(key, path, size, sha256, extra)
        except (ClientError, BotoCoreError) as e:
            raise _translate(e, f"put {key}") from e
        info = self.confirm(key, sha256, size, expected_checksum=checksum)
        return StoredObject(key=key, size=size, sha256=sha256, checksum=info.checksum or checksum,
                            version_id=version)

    def _part_size(self, size: int) -> int:
        return max(self.cfg.multipart_chunk_bytes, math.ceil(size / MAX_PARTS), 5 * 1024 * 1024)

    def _multipart(self, key: str, path: Path, size: int, sha256: str,
                   extra: dict[str, Any]) -> tuple[str, str | None]:
        part_size = self._part_size(size)
        up = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256", **extra)
        upload_id = up["UploadId"]
        # Parts waiting to be sent are bounded, so each is still in the page cache when sent.
        slots = threading.BoundedSemaphore(2 * self.cfg.upload_concurrency)
        failed: list[BaseException] = []

        def send(i: int, digest: bytes) -> tuple[int, str, bytes]:
            try:
                with FileSlice(path, i * part_size, min(part_size, size - i * part_size)) as part:
                    r = self.data_client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                     PartNumber=i + 1, Body=part, ChecksumSHA256=b64(digest),
                                                     ChecksumAlgorithm="SHA256")
                return i, r["ETag"], digest
            except BaseException as e:
                failed.append(e)
                raise
            finally:
                slots.release()

        try:
            with ThreadPoolExecutor(max_workers=self.cfg.upload_concurrency) as pool:
                futures = []

                def submit(i: int, digest: bytes) -> None:
                    slots.acquire()
                    if failed:  # an outage: stop reading, report the part's error
                        slots.release()
                        raise failed[0]
                    futures.append(pool.submit(send, i, digest))
                whole = hash_parts(path, part_size, submit)
                if whole != sha256:
                    raise SourceMismatch(f"{path.name} hashes to {whole}, not the evidence hash {sha256}; "
                                         "upload aborted, nothing stored")
                results = sorted(f.result() for f in futures)
            parts = [{"PartNumber": i + 1, "ETag": etag, "ChecksumSHA256": b64(d)} for i, etag, d in results]
            r = self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                      MultipartUpload={"Parts": parts})
        except BaseException:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except Exception:
                pass  # the store's lifecycle rules clean up what an outage leaves
            raise
        expected = composite_checksum([d for _, _, d in results])
        got = r.get("ChecksumSHA256")
        if got and got != expected:
            raise StorageIntegrityError(f"object {key}: store composite checksum {got} != {expected}")
        return expected, r.get("VersionId")

    def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None,
                  metadata: dict[str, str] | None = None) -> StoredObject:
        self.ensure_bucket()
        digest = hashlib.sha256(data).digest()
        try:
            r = self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ChecksumSHA256=b64(digest),
                                       ContentType=content_type or "application/octet-stream",
                                       Metadata={"sha256": digest.hex(), **(metadata or {})})
        except (ClientError, BotoCoreError) as e:
            raise _translate(e, f"put {key}") from e
        return StoredObject(key=key, size=len(data), sha256=digest.hex(),
                            checksum=r.get("ChecksumSHA256") or b64(digest), version_id=r.get("VersionId"))

    # ------------------------------------------------------------------ read
    def head(self, key: str) -> ObjectInfo | None:
        self.ensure_bucket()
        try:
            r = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise _translate(e, f"head {key}") from e
        except BotoCoreError as e:
            raise _translate(e, f"head {key}") from e
        meta = r.get("Metadata") or {}
        return ObjectInfo(key=key, size=r["ContentLength"], sha256=meta.get("sha256"),
                          checksum=r.get("ChecksumSHA256"), version_id=r.get("VersionId"),
                          retain_until=r.get("ObjectLockRetainUntilDate"), lock_mode=r.get("ObjectLockMode"),
                          legal_hold=r.get("ObjectLockLegalHoldStatus") == "ON", metadata=meta)

    def confirm(self, key: str, sha256: str, size: int, expected_checksum: str | None = None) -> ObjectInfo:
        info = self.head(key)
        if info is None:
            raise StorageIntegrityError(f"object {key} is missing from the store after upload")
        if info.size != size:
            raise StorageIntegrityError(f"object {key}: store holds {info.size} bytes, expected {size}")
        if info.sha256 != sha256:
            raise StorageIntegrityError(f"object {key}: metadata sha256 {info.sha256} != {sha256}")
        if expected_checksum and info.checksum and info.checksum != expected_checksum:
            raise StorageIntegrityError(f"object {key}: store checksum {info.checksum} != {expected_checksum}")
        if not info.checksum:
            raise StorageIntegrityError(f"object {key}: the store reports no SHA-256 checksum")
        return info

    def iter_bytes(self, key: str, start: int = 0, end: int | None = None,
                   chunk: int = 1024 * 1024) -> Iterator[bytes]:
        """[start, end] inclusive.  The whole object is a plain GET: a ranged GET of a zero-byte
        object is refused (InvalidRange), and an empty recording is still evidence to verify,
        export and index.  A range wholly past the end yields nothing, as a local file read does."""
        if end is not None and end < start:
            return
        ranged = {} if start == 0 and end is None else {"Range": f"bytes={start}-{'' if end is None else end}"}
        try:
            r = self.client.get_object(Bucket=self.bucket, Key=key, **ranged)
        except ClientError as e:
            if ranged and e.response.get("Error", {}).get("Code") == "InvalidRange":
                return
            raise _translate(e, f"get {key}") from e
        except BotoCoreError as e:
            raise _translate(e, f"get {key}") from e
        body = r["Body"]
        try:
            yield from body.iter_chunks(chunk)
        finally:
            body.close()

    def local_path(self, key: str) -> Path | None:
        return None

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Keys under `prefix` in key order (ListObjectsV2, paged)."""
        self.ensure_bucket()
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for o in page.get("Contents", []):
                    yield o["Key"]
        except (ClientError, BotoCoreError) as e:
            raise _translate(e, f"list {prefix}") from e

    def presigned_url(self, key: str, seconds: int = 300) -> str | None:
        return self.client.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": key},
                                                  ExpiresIn=seconds)

    # ------------------------------------------------------------------ retention
    def set_retention(self, key: str, until: datetime, mode: str) -> None:
        try:
            self.client.put_object_retention(Bucket=self.bucket, Key=key,
                                             Retention={"Mode": mode, "RetainUntilDate": until})
        except (ClientError, BotoCoreError) as e:
            raise _translate(e, f"retention {key}") from e

    def set_legal_hold(self, key: str, on: bool) -> None:
        try:
            self.client.put_object_legal_hold(Bucket=self.bucket, Key=key,
                                              LegalHold={"Status": "ON" if on else "OFF"})
        except (ClientError, BotoCoreError) as e:
            raise _translate(e, f"legal hold {key}") from e

    def delete(self, key: str) -> None:
        """Delete every version (a plain DELETE on a versioned bucket only hides the object)."""
        try:
            versions = self.client.list_object_versions(Bucket=self.bucket, Prefix=key)
            for v in versions.get("Versions", []) + versions.get("DeleteMarkers", []):
                if v["Key"] == key:
                    self.client.delete_object(Bucket=self.bucket, Key=key, VersionId=v["VersionId"])
        except (ClientError, BotoCoreError) as e:
            raise _translate(e, f"delete {key}") from e

