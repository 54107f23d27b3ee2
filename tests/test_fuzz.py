"""Property-based: whatever an inbox holds, the daemon's invariants hold.

GIVEN an inbox of random names (odd bytes, control characters, leading dashes,
255-byte names) holding random, truncated or valid contents for every
accepted extension, bundles, and briefs made of random YAML/JSON structures
(some naming files outside their folder), WHEN `omad once` runs over it,
THEN the daemon returns (it never crashes), no job is left half-way, every
original is still somewhere a person can find it (the inbox, the archive, or
outbox/failed/), and nothing outside the inbox was opened.

The budget is fixed and derandomized for `make test`; a longer run:
``OMAD_FUZZ_EXAMPLES=300 .venv/bin/pytest -q tests/test_fuzz.py`` (figures in docs/benchmarks.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import make_audio, make_image, make_video, write_srt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from watchdog.events import FileOpenedEvent, FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from omad.config import load_config
from omad.daemon import Daemon, Paths
from omad.journal import JobStatus
from omad.log import configure_logging

EXAMPLES = int(os.environ.get("OMAD_FUZZ_EXAMPLES", "40"))
EXTENSIONS = [".mp4", ".mov", ".mkv", ".webm", ".srt", ".jpg", ".png", ".webp", ".wav", ".mp3", ".flac", ".txt",
              ".yaml", ".json", ".xlsx", ""]


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """One small valid file per kind, to drop whole or cut short."""
    d = tmp_path_factory.mktemp("samples")
    out = {
        ".mp4": make_video(d / "v.mp4", seconds=0.5, size="96x64").read_bytes(),
        ".mkv": make_video(d / "v.mkv", seconds=0.5, size="96x64").read_bytes(),
        ".png": make_image(d / "i.png", size="96x64").read_bytes(),
        ".jpg": make_image(d / "i.jpg", size="96x64").read_bytes(),
        ".wav": make_audio(d / "a.wav", seconds=0.5).read_bytes(),
        ".srt": write_srt(d / "s.srt").read_bytes(),
        ".txt": "Olá, tudo bem? São 3 itens.".encode(),
    }
    out[".mov"] = out[".mp4"]
    out[".webm"] = out[".mkv"]
    out[".mp3"] = out[".wav"]
    out[".flac"] = out[".wav"]
    out[".webp"] = out[".png"]
    return out


_name_chars = st.characters(codec="utf-8", categories=["L", "N", "P", "Zs", "S"], exclude_characters="/\x00")
names = st.one_of(
    st.text(_name_chars, min_size=1, max_size=12),
    st.text(_name_chars, min_size=1, max_size=12).map(lambda s: "-" + s),
    st.text(_name_chars, min_size=1, max_size=4).map(lambda s: s + "\n" + s),
    st.binary(min_size=1, max_size=8).map(lambda b: os.fsdecode(b"x" + b.replace(b"/", b"_").replace(b"\0", b"_"))),
    st.integers(200, 245).map(lambda n: "ç" * (n // 2)),
)
leaves = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=False),
                   st.text(max_size=30), st.sampled_from(["../secret/s.png", "/etc/passwd", "v.mp4", "a.wav"]))
structures = st.recursive(leaves, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
    st.sampled_from(["kind", "text", "video", "subtitles", "image", "audio", "scenes", "voice", "format", "motion",
                     "seconds", "name", "prompt", "music", "x"]), kids, max_size=5), max_leaves=20)
briefs = st.one_of(
    structures,
    st.fixed_dictionaries({"kind": st.sampled_from(["narrate", "caption", "img2vid", "addaudio", "video", "x"])},
                          optional={"text": st.text(max_size=40), "image": leaves, "video": leaves,
                                    "subtitles": leaves, "audio": leaves, "scenes": structures}),
)


@st.composite
def drops(draw: st.DrawFn) -> list[tuple[str, str, Any]]:
    """(relative path, how, payload): how is bytes/valid/cut/brief-yaml/brief-json."""
    out = []
    for _ in range(draw(st.integers(1, 5))):
        stem = draw(names)
        if draw(st.integers(0, 9)) < 4:  # a drop that makes a job: a valid pair or a lone valid file
            folder = draw(st.sampled_from(["", "", "caption/"]))
            for ext in draw(st.sampled_from([(".mp4", ".srt"), (".png", ".wav"), (".mkv", ".mp3"), (".txt",),
                                             (".jpg",)])):
                out.append((f"{folder}{stem}{ext}", draw(st.sampled_from(["valid", "valid", "valid", "cut"])), None))
            continue
        ext = draw(st.sampled_from(EXTENSIONS))
        folder = draw(st.sampled_from(["", "", "", "bundle/", "caption/", "narrate/"]))
        how = draw(st.sampled_from(["bytes", "valid", "valid", "cut", "brief"]))
        payload: Any = draw(st.binary(max_size=300)) if how == "bytes" else None
        if how == "brief" or ext in (".yaml", ".json"):
            how, payload = "brief", draw(briefs)
            ext = draw(st.sampled_from([".yaml", ".json"]))
            if folder == "bundle/" and draw(st.booleans()):
                stem, ext = "brief", ".yaml"
        out.append((f"{folder}{stem}{ext}", how, payload))
    return out


def _write(inbox: Path, rel: str, how: str, payload: Any, samples: dict[str, bytes]) -> bytes | None:
    path = inbox / rel
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    ext = os.path.splitext(rel)[1].lower()
    if how == "bytes":
        data = payload
    elif how == "brief":
        data = (json.dumps(payload) if ext == ".json" else yaml.safe_dump(payload, allow_unicode=True)).encode()
    else:
        data = samples.get(ext, b"?")
        if how == "cut":
            data = data[: len(data) // 3]
    try:
        with open(os.fsencode(path), "xb") as f:
            f.write(data)
    except OSError:  # a name the file system refuses (too long, a clash): not a drop
        return None
    return bytes(data)


class _Opens(FileSystemEventHandler):
    def __init__(self) -> None:
        self.opened: list[str] = []

    def on_any_event(self, event: FileSystemEvent) -> None:
        if isinstance(event, FileOpenedEvent):
            self.opened.append(os.fsdecode(event.src_path))


def _hashes(root: Path) -> Counter[str]:
    found: Counter[str] = Counter()
    for dirpath, _dirs, files in os.walk(os.fsencode(root)):
        for name in files:
            p = os.path.join(dirpath, name)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    found[hashlib.sha256(f.read()).hexdigest()] += 1
    return found


@pytest.mark.timeout(900)
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(inbox_plan=drops())
def test_any_inbox_keeps_the_daemon_alive_and_loses_nothing(
    inbox_plan: list[tuple[str, str, Any]], samples: dict[str, bytes], tmp_path: Path
) -> None:
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    inbox, outbox, state, secret = root / "inbox", root / "outbox", root / "state", root / "secret"
    for d in (inbox, secret):
        d.mkdir()
    (secret / "s.png").write_bytes(samples[".png"])
    written = Counter(hashlib.sha256(data).hexdigest()
                      for rel, how, payload in inbox_plan
                      if (data := _write(inbox, rel, how, payload, samples)) is not None)
    cfg = load_config(None, {
        "inbox": str(inbox), "outbox": str(outbox), "state_dir": str(state),
        "watch": {"settle_seconds": 0.0, "rescan_seconds": 1.0},
        "jobs": {"backoff_seconds": 0.1, "backoff_max_seconds": 0.2, "max_attempts": 2},
        "metrics": {"enabled": False}, "img2vid": {"default_seconds": 0.5},
        "video": {"preset": "custom", "width": 96, "height": 64, "fps": 10},
    })
    configure_logging(outbox / "logs", "warning")
    opens = _Opens()
    observer = Observer()
    observer.schedule(opens, str(secret), recursive=True)
    observer.start()
    try:
        d = Daemon(cfg, Paths(inbox, outbox, state), once=True)
        worker = threading.Thread(target=d.run_once, kwargs={"max_wait": 20.0}, daemon=True)
        worker.start()
        worker.join(timeout=240)
        assert not worker.is_alive(), "omad once did not finish"  # the daemon neither hangs nor dies
        unfinished = d.journal.jobs([JobStatus.CLAIMING, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.RETRY_WAIT])
        assert unfinished == [], [(j.name, j.status) for j in unfinished]
        d.journal.close()
    finally:
        observer.stop()
        observer.join(timeout=5)
    # No original is lost: each is in the inbox (waiting), the archive, or outbox/failed/.
    kept = _hashes(inbox) + _hashes(state / "archive") + _hashes(outbox / "failed")
    missing = written - kept
    assert not missing, f"originals lost: {sum(missing.values())}"
    # Every outbox file is complete: no temporary names left, every result has its sidecar.
    top = [p for p in outbox.iterdir() if p.is_file()]
    assert not [p.name for p in top if p.name.startswith(".omad-")]
    stems = {p.name.rsplit(".", 1)[0] for p in top if p.suffix == ".json"}
    assert all(p.name.rsplit(".", 1)[0] in stems for p in top), sorted(p.name for p in top)
    assert not [p for p in opens.opened if Path(p).name == "s.png"], "a file outside the inbox was read"
    shutil.rmtree(root, ignore_errors=True)
