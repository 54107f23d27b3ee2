"""Shared fixtures: real folders, real ffmpeg-made media, an in-process daemon."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from omad.config import Config, load_config
from omad.daemon import Daemon, Paths
from omad.log import configure_logging


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def make_video(path: Path, seconds: float = 2.0, size: str = "320x180", rate: int = 25, audio: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    args = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}"]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    args += ["-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", "aac"]
    ffmpeg(*args, str(path))
    return path


def make_audio(path: Path, seconds: float = 2.0, freq: int = 330) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg("-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate=44100", "-t", str(seconds), str(path))
    return path


def make_image(path: Path, size: str = "640x360") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={size}:rate=1", "-frames:v", "1", str(path))
    return path


XP_KEYWORDS, IMAGE_DESCRIPTION = 0x9C9E, 0x010E


def photo(path: Path, size: tuple[int, int] = (640, 360), *, keywords: str = "", description: str = "",
          subjects: tuple[str, ...] = (), colour: tuple[int, int, int] = (180, 120, 40)) -> Path:
    """A real JPEG, with EXIF XPKeywords/ImageDescription and XMP dc:subject when asked."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    if keywords:
        exif[XP_KEYWORDS] = keywords.encode("utf-16-le") + b"\0\0"
    if description:
        exif[IMAGE_DESCRIPTION] = description
    extra: dict[str, Any] = {}
    if subjects:
        items = "".join(f"<rdf:li>{s}</rdf:li>" for s in subjects)
        extra["xmp"] = (
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:subject><rdf:Bag>'
            f"{items}</rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>"
        ).encode()
    Image.new("RGB", size, colour).save(path, exif=exif, **extra)
    return path


SRT_PT = "1\n00:00:00,200 --> 00:00:01,000\nOlá, ação e coração!\n\n2\n00:00:01,000 --> 00:00:01,800\nÚltima linha\n"


def write_srt(path: Path, text: str = SRT_PT, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


@dataclass
class Env:
    root: Path
    config: Config

    @property
    def inbox(self) -> Path:
        return Path(self.config.inbox)

    @property
    def outbox(self) -> Path:
        return Path(self.config.outbox)

    @property
    def state(self) -> Path:
        return Path(self.config.state_dir)

    @property
    def paths(self) -> Paths:
        return Paths(self.inbox, self.outbox, self.state)

    def daemon(self, once: bool = False) -> Daemon:
        return Daemon(self.config, self.paths, once=once)

    def once(self, max_wait: float = 60.0) -> int:
        return self.daemon(once=True).run_once(max_wait=max_wait)

    def sidecar(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.outbox / f"{name}.json").read_text())
        return data

    def failed_error(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.outbox / "failed" / name / "error.json").read_text())
        return data


@pytest.fixture
def make_env(tmp_path: Path) -> Callable[..., Env]:
    def _make(**overrides: Any) -> Env:
        data: dict[str, Any] = {
            "inbox": str(tmp_path / "inbox"),
            "outbox": str(tmp_path / "outbox"),
            "state_dir": str(tmp_path / "state"),
            "watch": {"settle_seconds": 0.3, "rescan_seconds": 1.0, "poll_interval_seconds": 0.2},
            "intake": {"partner_grace_seconds": 0.5, "pair_timeout_seconds": 3.0},
            "jobs": {"backoff_seconds": 0.2, "backoff_max_seconds": 1.0},
            "web": {"enabled": False, "port": 0},
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        cfg_path = tmp_path / "omad.yaml"
        import yaml

        cfg_path.write_text(yaml.safe_dump(data))
        cfg = load_config(cfg_path)
        Path(cfg.inbox).mkdir(parents=True, exist_ok=True)
        configure_logging(Path(cfg.outbox) / "logs", "debug")
        return Env(tmp_path, cfg)

    return _make


@pytest.fixture
def env(make_env: Callable[..., Env]) -> Env:
    return make_env()


def wait_for(pred: Callable[[], bool], timeout: float = 30.0, every: float = 0.1, what: str = "condition") -> None:
    """Until ``pred()`` holds: the one polling loop of the tests (the timeout only bounds a hang)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(every)
    raise AssertionError(f"{what} not met in time")


def wait_ticks(d: Daemon, n: int = 3, timeout: float = 60.0) -> None:
    """Until the daemon's loop has ticked ``n`` more times: "nothing happened" is checked after real ticks.

    Each tick looks at the inbox and the queue, so a drop the daemon would take is taken within a tick or two
    of its settle time; counting ticks (not seconds) proves the loop ran, however loaded the box is.
    """
    start = d.ticks
    wait_for(lambda: d.ticks >= start + n, timeout=timeout, every=0.02)


class Running:
    """A daemon running its real loop in a thread (and, with ``serve``, its HTTP server), as `omad run` does."""

    def __init__(self, d: Daemon, serve: bool = False) -> None:
        self.d = d
        self.serve = serve
        self.server: Any = None
        self.thread = threading.Thread(target=d.run, kwargs={"tick_seconds": 0.1}, daemon=True)

    def __enter__(self) -> Running:
        if self.serve:
            from omad.web import start_server

            self.server = start_server(self.d)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.d.stop_event.set()
        self.d.wake.set()
        self.thread.join(timeout=30)
        if self.server is not None:
            self.server.shutdown()
        self.d.journal.close()
