"""A run's lease on an output store, so that two runs never write one store at once.

The lease is ``<store>.lock`` beside the store (replacing the store never removes it), a small JSON document
``{"host", "pid", "token", "expires"}`` refreshed by a heartbeat thread.

Every change is atomic:
- local disk: all reads and writes of the lease happen under an ``fcntl.flock`` on ``.<store>.lock.guard``
  (released by the kernel when a process dies), and the lease file is replaced with ``os.replace``;
- S3: creation is a conditional ``PutObject`` (``If-None-Match: *``), a takeover, a heartbeat and a release are
  conditional on the ETag that was read (``If-Match``), so two runs racing for an expired lease cannot both win.

A lease expires ``ttl`` seconds after its last heartbeat; a lease whose holder ran on this host with a PID that no
longer exists is taken over at once. ``release`` deletes the lease only if this run still owns it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from ..errors import OutputError
from .store import filesystem, is_s3

LOCK_SUFFIX = ".lock"
DEFAULT_TTL = 120.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _precondition_failed(err: BaseException) -> bool:
    text = f"{err!r} {err.__cause__!r}"
    return any(t in text for t in ("pre-conditions", "PreconditionFailed", "412", "ConditionalRequestConflict"))


class Lease:
    """``acquire()`` or raise ``OutputError`` naming the holder; ``release()`` only if still ours."""

    def __init__(self, url: str, ttl: float = DEFAULT_TTL) -> None:
        self.fs, root = filesystem(url)
        self.path = root.rstrip("/") + LOCK_SUFFIX
        self.s3 = is_s3(self.fs)
        self.ttl = float(ttl)
        self.host, self.pid, self.token = socket.gethostname(), os.getpid(), uuid.uuid4().hex
        self.lost = False  # set when a heartbeat finds the lease taken by another run
        self._etag: str | None = None
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None

    # ---- the document -------------------------------------------------------------------------------------
    def _body(self) -> bytes:
        return json.dumps({"host": self.host, "pid": self.pid, "token": self.token,
                           "expires": time.time() + self.ttl}).encode()

    def _expired(self, info: dict[str, Any]) -> bool:
        if float(info.get("expires", 0)) <= time.time():
            return True
        pid = info.get("pid")
        return info.get("host") == self.host and isinstance(pid, int) and pid != self.pid and not _pid_alive(pid)

    @staticmethod
    def _holder(info: dict[str, Any]) -> str:
        return f"{info.get('host', '?')}:{info.get('pid', '?')}"

    # ---- local: everything under one flock -----------------------------------------------------------------
    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        import fcntl

        folder, name = os.path.split(self.path)
        os.makedirs(folder or ".", exist_ok=True)
        fd = os.open(os.path.join(folder, f".{name}.guard"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the flock

    def _read_local(self) -> dict[str, Any] | None:
        try:
            with open(self.path, "rb") as f:
                return dict(json.loads(f.read() or b"{}"))
        except FileNotFoundError:
            return None
        except ValueError:  # a torn write cannot happen (os.replace), but a foreign file can: treat as expired
            return {}

    def _write_local(self) -> None:
        tmp = f"{self.path}.{self.token}.tmp"
        with open(tmp, "wb") as f:
            f.write(self._body())
        os.replace(tmp, self.path)

    # ---- S3: conditional requests --------------------------------------------------------------------------
    def _bucket_key(self) -> tuple[str, str]:
        bucket, _, key = self.path.partition("/")
        return bucket, key

    def _read_s3(self) -> tuple[dict[str, Any] | None, str | None]:
        """The lease document and its ETag, from one GET (so the pair is consistent)."""
        from fsspec.asyn import sync

        bucket, key = self._bucket_key()

        async def _get() -> tuple[bytes, str]:
            resp = await self.fs._call_s3("get_object", Bucket=bucket, Key=key)
            async with resp["Body"] as stream:
                return bytes(await stream.read()), str(resp["ETag"])

        try:
            data, etag = sync(self.fs.loop, _get)
        except FileNotFoundError:
            return None, None
        try:
            return dict(json.loads(data or b"{}")), etag
        except ValueError:
            return {}, etag

    def _put_s3(self, **cond: str) -> bool:
        bucket, key = self._bucket_key()
        try:
            resp = self.fs.call_s3("put_object", Bucket=bucket, Key=key, Body=self._body(), **cond)
        except (FileExistsError, OSError) as err:
            if isinstance(err, FileExistsError) or _precondition_failed(err):
                return False
            raise
        self._etag = resp.get("ETag")
        return True

    # ---- public --------------------------------------------------------------------------------------------
    def acquire(self) -> None:
        if self.s3:
            if not self._put_s3(IfNoneMatch="*"):
                info, etag = self._read_s3()
                if info is not None and not self._expired(info):
                    raise self._held(info)
                if not self._put_s3(**({"IfMatch": etag} if etag else {"IfNoneMatch": "*"})):
                    raise OutputError("another run took over this store's expired lease just now: run again later")
        else:
            with self._guard():
                info = self._read_local()
                if info is not None and info and not self._expired(info):
                    raise self._held(info)
                self._write_local()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="s2sr-lease", daemon=True)
        self._thread.start()

    def _held(self, info: dict[str, Any]) -> OutputError:
        left = float(info.get("expires", 0)) - time.time()
        return OutputError(f"another run ({self._holder(info)}) is writing this output; its lease expires in "
                           f"{left:.0f} s unless renewed: wait for it, or re-run after it stopped")

    def _beat(self) -> None:
        assert self._stop is not None
        while not self._stop.wait(self.ttl / 3):
            with contextlib.suppress(Exception):  # a missed beat only shortens the lease
                self.heartbeat()

    def heartbeat(self) -> None:
        """Extend the lease if it is still ours; otherwise mark it lost (the run must not finish the store)."""
        if self.s3:
            if not self._put_s3(IfMatch=self._etag or "*"):
                self.lost = True
            return
        with self._guard():
            info = self._read_local()
            if not info or info.get("token") != self.token:
                self.lost = True
                return
            self._write_local()

    def check(self) -> None:
        """Raise if another run has taken this lease (after this one stalled past its ttl)."""
        if self.lost or not self.owned():
            self.lost = True
            raise OutputError("this run lost its lease on the output (it stalled longer than the lease ttl and "
                              "another run took over): nothing more is written; re-run when the other run ends")

    def owned(self) -> bool:
        info = self._read_s3()[0] if self.s3 else self._read_local()
        return bool(info) and info.get("token") == self.token

    def release(self) -> None:
        """Stop the heartbeat and delete the lease, only if it is still ours."""
        if self._stop is not None:
            self._stop.set()
        if self.s3:
            info, etag = self._read_s3()
            if info and info.get("token") == self.token and etag:
                bucket, key = self._bucket_key()
                try:  # conditional: a run that took over in between keeps its lease
                    self.fs.call_s3("delete_object", Bucket=bucket, Key=key, IfMatch=etag)
                except (FileNotFoundError, OSError) as err:
                    if not (isinstance(err, FileNotFoundError) or _precondition_failed(err)):
                        raise
            return
        with self._guard():
            info = self._read_local()
            if info and info.get("token") == self.token:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self.path)
