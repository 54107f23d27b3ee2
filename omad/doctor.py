"""``omad doctor``: what this machine has, and what is missing, one line a check.

Each check group returns :class:`Check` rows; a row's level is what a failed
check costs (``FAIL`` makes the command exit 1, ``warn`` does not). Engines and
model stores add their own rows through a ``doctor_checks(cfg)`` function in
their module (:data:`PROVIDERS`), so this file does not know them.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Config
from .errors import ConfigError, OmadError

__all__ = ["Check", "REQUIRED_FILTERS", "REQUIRED_ENCODERS", "run_checks", "print_checks"]

REQUIRED_FILTERS = ("ass", "subtitles", "scale", "crop", "overlay", "xfade", "loudnorm", "aformat", "amix",
                    "boxblur", "sidechaincompress", "apad", "concat", "atrim")
REQUIRED_ENCODERS = ("libx264", "aac")
#: Modules with a ``doctor_checks(cfg) -> [(name, ok, message)]``; imported only if installed.
PROVIDERS = ("omad.tts.f5", "omad.tts.choice", "omad.agents.host", "omad.models")


@dataclass(frozen=True)
class Check:
    #: what a failure costs: FAIL or warn
    level: str
    name: str
    ok: bool
    message: str

    @property
    def shown_level(self) -> str:
        return "ok" if self.ok else self.level


def _ffmpeg(cfg: Config) -> Iterator[Check]:
    ff = shutil.which("ffmpeg")
    fp = shutil.which("ffprobe")
    yield Check("FAIL", "ffmpeg", ff is not None, ff or "not found: sudo apt-get install ffmpeg")
    yield Check("FAIL", "ffprobe", fp is not None, fp or "not found: sudo apt-get install ffmpeg")
    if not ff:
        return
    from .media.encoder import nvenc_status
    from .media.ffmpeg import ffmpeg_version
    from .procs import run_tool

    filters = run_tool([ff, "-hide_banner", "-filters"], timeout=30).stdout.decode("utf-8", "replace")
    names = {line.split()[1] for line in filters.splitlines() if len(line.split()) > 2}
    missing = [f for f in REQUIRED_FILTERS if f not in names]
    yield Check("FAIL", "ffmpeg filters", not missing,
                "all present" if not missing else f"missing {', '.join(missing)}: install a full ffmpeg build")
    enc = run_tool([ff, "-hide_banner", "-encoders"], timeout=30).stdout.decode("utf-8", "replace")
    missing_enc = [e for e in REQUIRED_ENCODERS if f" {e} " not in enc]
    yield Check("FAIL", "ffmpeg encoders", not missing_enc,
                "libx264, aac" if not missing_enc else f"missing {', '.join(missing_enc)}")
    yield Check("FAIL", "ffmpeg version", True, ffmpeg_version())
    gpu_ok, why = nvenc_status()
    wanted = cfg.video.encoder == "h264_nvenc"
    yield Check("warn", "GPU encoding", gpu_ok or not wanted,
                f"h264_nvenc: {why}" + ("" if gpu_ok else "; renders use libx264 on the CPU"))


def _tools(cfg: Config) -> Iterator[Check]:
    es = shutil.which("espeak-ng")
    yield Check("FAIL" if cfg.tts.engine == "espeak" else "warn", "espeak-ng", es is not None,
                es or "not found: sudo apt-get install espeak-ng (needed for narration)")
    font = Path(cfg.scenes.title_font_file)
    yield Check("warn", "title font", font.is_file(),
                str(font) if font.is_file() else f"{font} missing: sudo apt-get install fonts-dejavu-core")


def _folders(cfg: Config, paths: Any) -> Iterator[Check]:
    inbox_ok = paths.inbox.is_dir() and os.access(paths.inbox, os.R_OK | os.W_OK | os.X_OK)
    yield Check("FAIL", "inbox", inbox_ok,
                str(paths.inbox) if inbox_ok else f"{paths.inbox} is missing or not readable/writable")
    if paths.inbox.is_dir():
        from .mounts import watch_mode

        mode, why = watch_mode(cfg.watch.mode, paths.inbox)
        yield Check("FAIL", "watch mode", True, f"{mode}: {why}")
    for label, d in (("outbox", paths.outbox), ("state dir", paths.state)):
        try:
            d.mkdir(parents=True, exist_ok=True)
            probe = d / ".omad-doctor"
            probe.write_text("ok")
            probe.unlink()
            yield Check("FAIL", label, True, f"{d} writable")
        except OSError as e:
            yield Check("FAIL", label, False, f"{d} not writable ({e.strerror})")
    for label, d in (("free disk (outbox)", paths.outbox), ("free disk (state)", paths.state)):
        if d.exists():
            free = shutil.disk_usage(d).free / 1e9
            yield Check("FAIL" if free < 0.5 else "warn", label, free >= 2.0,
                        f"{free:.1f} GB free" + ("" if free >= 2 else ": low"))


def _journal(paths: Any) -> Iterator[Check]:
    if not paths.journal.exists():
        yield Check("FAIL", "journal", True, f"{paths.journal} will be created on first run")
        return
    from .journal import Journal

    try:
        j = Journal(paths.journal)
        state = j.integrity()
        j.close()
        yield Check("FAIL", "journal", state == "ok", f"{paths.journal}: {state}")
    except OmadError as e:
        yield Check("FAIL", "journal", False, str(e))


def _web(cfg: Config, paths: Any) -> Iterator[Check]:
    if not cfg.web.enabled:
        return
    from .web.auth import TokenStore, tokens_path

    store = TokenStore(tokens_path(cfg.web, paths.state))
    try:
        live = [t for t in store.tokens() if not t.get("revoked_at")]
    except OmadError as e:
        yield Check("FAIL", "web tokens", False, str(e))
        return
    where = f"{cfg.web.host}:{cfg.web.port}"
    if cfg.web.token_required:
        yield Check("FAIL", "web tokens", bool(live),
                    f"{len(live)} live token(s) for {where}" if live else
                    f"{where} needs a token and none exists: omad token add NAME")
    else:
        yield Check("FAIL", "web tokens", True, f"{where} is loopback-only; tokens are optional ({len(live)} live)")


def _providers(cfg: Config) -> Iterator[Check]:
    for provider in PROVIDERS:
        try:
            mod = __import__(provider, fromlist=["doctor_checks"])
        except ImportError:
            continue
        checks = getattr(mod, "doctor_checks", None)
        if checks is None:
            continue
        required = ((provider == "omad.tts.f5" and cfg.tts.engine == "f5")
                    or (provider == "omad.tts.choice" and cfg.tts.engine == "piper"))
        for name, ok, message in checks(cfg):
            yield Check("FAIL" if required else "warn", name, ok, message)


def _broker(cfg: Config) -> Iterator[Check]:
    """The signing key, the broker, and the workers serving each queue."""
    from .cluster.app import queue_keys, queue_name, redact_url
    from .executors.celery import read_workers
    from .trust import signing_key

    try:
        signing_key(cfg)
        yield Check("FAIL", "signing key", True, "set (the same key must be on the daemon and every worker)")
    except ConfigError as e:
        yield Check("FAIL", "signing key", False, e.message)
    url = cfg.executor.broker()
    if not url:
        yield Check("FAIL", "broker", False, "executor.kind is celery but executor.broker_url is empty")
        return
    try:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        client.ping()
        version = client.info("server").get("redis_version", "?")
        workers = read_workers(client)
    except ImportError:
        yield Check("FAIL", "broker", False, "Celery/Redis are not installed: pip install 'omad[celery]'")
        return
    except Exception as e:
        yield Check("FAIL", "broker", False, f"{redact_url(url)}: {e}")
        return
    yield Check("FAIL", "broker", True, f"{redact_url(url)}: Redis {version}")
    for lane in ("cpu", "gpu"):
        q = queue_name(cfg, lane)
        serving = [str(w.get("name")) for w in workers if q in (w.get("queues") or [])]
        waiting = sum(int(client.llen(k)) for k in queue_keys(cfg, lane))
        yield Check("warn", f"queue {q}", bool(serving),
                    f"{waiting} waiting; served by {', '.join(serving)}" if serving else
                    f"{waiting} waiting; no worker serves it: start `omad worker --queues {lane}`")


def _shared_files(cfg: Config, paths: Any, worker: bool) -> Iterator[Check]:
    """The object store, or (on a worker) the daemon's shared folder as this machine mounts it."""
    if cfg.executor.files == "s3":
        try:
            from .cluster.s3 import S3Files

            yield Check("FAIL", "object store", True, S3Files(cfg).check())
        except Exception as e:
            yield Check("FAIL", "object store", False, f"bucket {cfg.executor.s3_bucket!r}: {e}")
        return
    if not worker:
        return
    from .executors.celery import SHARED_MARKER

    for target in [Path(v) for v in cfg.executor.path_map.values()] or [paths.jobs]:
        marker = target / SHARED_MARKER
        if not marker.is_file():
            marker = target / "jobs" / SHARED_MARKER
        try:
            info = json.loads(marker.read_text())
        except (OSError, ValueError):
            yield Check("FAIL", "shared folder", False, f"no {SHARED_MARKER} under {target}: mount the daemon's "
                        "shared folder here and map it in executor.path_map (the daemon writes the marker "
                        "when it starts)")
            continue
        ok = os.access(marker.parent, os.W_OK)
        yield Check("FAIL", "shared folder", ok, f"{marker.parent}: the daemon on {info.get('daemon')} "
                    f"({info.get('path')})" + ("" if ok else " - not writable from here"))


def run_checks(cfg: Config, paths: Any, worker: bool = False) -> list[Check]:
    """Every check, in the order they are printed."""
    rows = [*_ffmpeg(cfg), *_tools(cfg), *_folders(cfg, paths), *_journal(paths), *_web(cfg, paths),
            *_providers(cfg)]
    if cfg.executor.kind == "celery" or worker:
        broker = list(_broker(cfg))
        rows += broker
        if all(c.ok for c in broker if c.name == "broker"):
            rows += _shared_files(cfg, paths, worker)
    return rows


def print_checks(rows: list[Check]) -> int:
    """Print one line a check; 1 when a FAIL-level check failed."""
    width = max(len(c.name) for c in rows)
    for c in rows:
        print(f"{c.shown_level:4}  {c.name:{width}}  {c.message}")
    return 1 if any(c.shown_level == "FAIL" for c in rows) else 0
