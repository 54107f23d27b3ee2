"""Files between boxes through an S3-compatible object store (``executor.files: s3``), for workers with no share.

Everything is keyed by content or by task, never by a path on either machine:

    <prefix>blobs/<sha256>                    a file's bytes (uploaded once, whoever needs it again)
    <prefix>fences/<instance>/<job>/<stage>   the fence, written by the daemon, read by workers
    <prefix>results/<task id>                 the committed reply: created with If-None-Match, so once

The daemon sends, with each task, the job files the stage may read (the
inputs and the folders of finished stages) as ``relative path -> sha256``; a
worker fetches each into its cache (``<worker_state_dir>/cache``, by sha256,
checked) and links it into a local mirror of the job folder, runs the stage
there, uploads what it wrote and commits the reply that lists it. The daemon
downloads those files into its job folder (checked) before taking the result.
The journal and the fence's authority stay with the daemon, as with a share.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..claim import hash_path
from ..errors import ConfigError, TransientError
from ..trust import check_digest, inside
from .task import Fence

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["S3Files"]

class S3Files:
    """One bucket (``executor.s3_bucket``) at ``executor.s3_endpoint_url``; credentials from the AWS environment."""

    def __init__(self, config: Config) -> None:
        ex = config.executor
        if not ex.s3_bucket:
            raise ConfigError("executor.files is s3 but executor.s3_bucket is empty.")
        try:
            import boto3
            from botocore.config import Config as BotoConfig
        except ImportError as e:
            raise ConfigError("executor.files is s3 but boto3 is not installed: pip install 'omad[celery]'.") from e
        self.bucket = ex.s3_bucket
        self.prefix = ex.s3_prefix
        self.client = boto3.client("s3", endpoint_url=ex.s3_endpoint_url or None, region_name=ex.s3_region or None,
                                   config=BotoConfig(retries={"max_attempts": 5, "mode": "standard"}))
        self.cache = config.worker_dir() / "cache"
        self.cache_bytes = int(ex.worker_cache_mb * 1024 * 1024)

    def _key(self, *parts: str) -> str:
        return self.prefix + "/".join(parts)

    def _failed(self, what: str, e: Exception) -> TransientError:
        return TransientError(f"the object store (bucket {self.bucket}) failed to {what} ({e}); omad tries again.")

    # -- blobs --------------------------------------------------------------------------------------------

    def _missing(self, e: Exception) -> bool:
        code = str(getattr(e, "response", {}).get("Error", {}).get("Code", ""))
        return code in ("404", "NoSuchKey", "NotFound")

    def put_files(self, root: Path, paths: list[Path]) -> dict[str, str]:
        """Upload each file under ``root`` not stored yet; ``relative path -> sha256``."""
        out: dict[str, str] = {}
        for path in paths:
            digest = hash_path(path)[0]
            key = self._key("blobs", digest)
            try:
                self.client.head_object(Bucket=self.bucket, Key=key)
            except Exception as e:
                if not self._missing(e):
                    raise self._failed(f"look up {path.name}", e) from e
                try:
                    self.client.upload_file(str(path), self.bucket, key)
                except Exception as up:
                    raise self._failed(f"store {path.name}", up) from up
            out[path.relative_to(root).as_posix()] = digest
        return out

    def get_files(self, root: Path, files: dict[str, str]) -> None:
        """Each ``relative path -> sha256`` placed under ``root`` (from the cache, or fetched and checked)."""
        self.cache.mkdir(parents=True, exist_ok=True)
        for rel, digest in files.items():
            dest = inside(root, rel, "a file of the job")  # Refused when it would leave the job folder
            check_digest(digest, f"the digest of {rel}")
            cached = self.cache / digest
            if not cached.is_file():
                fd, tmp = tempfile.mkstemp(dir=self.cache, prefix=".dl")
                os.close(fd)
                try:
                    self.client.download_file(self.bucket, self._key("blobs", digest), tmp)
                    if hash_path(Path(tmp))[0] != digest:
                        raise TransientError(f"{rel}: the object store returned other bytes than were stored.")
                    os.replace(tmp, cached)
                except TransientError:
                    raise
                except Exception as e:
                    raise self._failed(f"fetch {rel}", e) from e
                finally:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
            os.utime(cached)  # used now: the trim keeps it longest
            dest.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                dest.unlink()
            try:
                os.link(cached, dest)
            except OSError:  # another filesystem: a copy
                import shutil

                shutil.copyfile(cached, dest)

    def trim_cache(self) -> int:
        """Remove the least recently used cached files past ``executor.worker_cache_mb``; how many went."""
        entries = []
        for p in self.cache.glob("*"):
            with contextlib.suppress(OSError):
                st = p.stat()
                entries.append((st.st_mtime, st.st_size, p))
        total = sum(size for _, size, _ in entries)
        removed = 0
        for _, size, p in sorted(entries):
            if total <= self.cache_bytes:
                break
            with contextlib.suppress(OSError):
                p.unlink()  # a mirror's hard link keeps the bytes until that task is done
                total -= size
                removed += 1
        return removed

    # -- fences and results ------------------------------------------------------------------------------

    def put_fence(self, instance: str, job: str, stage: str, fence: Fence) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key("fences", instance, job, stage),
                                   Body=json.dumps(asdict(fence)).encode())
        except Exception as e:
            raise self._failed("write a fence", e) from e

    def get_fence(self, instance: str, job: str, stage: str) -> Fence | None:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key("fences", instance, job, stage))["Body"]
            data = json.loads(body.read())
            return Fence(str(data["task_id"]), int(data["attempt"]), data["state"], float(data["at"]))
        except Exception:
            return None  # missing or unreadable: no copy may commit

    def commit(self, tid: str, reply: dict[str, Any]) -> dict[str, Any]:
        """Make ``reply`` the task's one result (If-None-Match); when another copy committed first, answer that."""
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key("results", tid), Body=json.dumps(reply).encode(),
                                   IfNoneMatch="*")
            return reply
        except Exception as e:
            code = str(getattr(e, "response", {}).get("Error", {}).get("Code", ""))
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return self.result(tid) or reply
            raise self._failed("commit a result", e) from e

    def result(self, tid: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self.client.get_object(Bucket=self.bucket, Key=self._key("results", tid))["Body"].read())
        except Exception:
            return None
        return data if isinstance(data, dict) else None

    def check(self) -> str:
        """For ``omad doctor``: the bucket answers (an error otherwise)."""
        self.client.head_bucket(Bucket=self.bucket)
        return f"bucket {self.bucket} at {self.client.meta.endpoint_url}"
