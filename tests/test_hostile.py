"""No drop can stop the daemon: every step that touches one drop has its own boundary.

GIVEN an inbox holding a drop that breaks some step (an exception injected
there, an odd name, a FIFO, a costly file) next to an ordinary good drop,
WHEN the daemon runs its real loop,
THEN the good drop is published, the bad one is in outbox/failed/ with its
original and an error.json that says what to do, and the daemon is alive.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Env, Running, make_image, make_video, wait_for, wait_ticks, write_srt

import omad.claim as claim_mod
import omad.daemon as daemon_mod
import omad.intake as intake_mod
import omad.media.burn as burn_mod
import omad.media.ffmpeg_run as ffmpeg_run
import omad.stages.caption as caption_mod
import omad.watcher as watcher_mod
from omad.config import Config
from omad.media.ffmpeg import probe
from omad.names import NAME_MAX, display, fit_stem, problem
from omad.outbox import Outbox
from omad.stage import StageContext


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small video made once for the module; each test copies it."""
    return make_video(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=1.0, size="160x90")


def drop_pair(env: Env, clip: Path, stem: str) -> None:
    staging = env.root / "staging"
    staging.mkdir(exist_ok=True)
    shutil.copy(clip, staging / f"{stem}.mp4")
    write_srt(staging / f"{stem}.srt")
    for suffix in (".srt", ".mp4"):
        (staging / f"{stem}{suffix}").rename(env.inbox / f"{stem}{suffix}")


def failed_record(env: Env, stem: str, *, each_file: bool = False) -> dict[str, Any]:
    """The error.json of the one failed folder for ``stem`` (with ``each_file``: the first of several)."""
    folders = sorted(p for p in (env.outbox / "failed").iterdir() if p.name.startswith(stem))
    assert len(folders) == 1 or (each_file and folders), sorted(p.name for p in (env.outbox / "failed").iterdir())
    data: dict[str, Any] = json.loads((folders[0] / "error.json").read_text(encoding="utf-8"))
    data["_folder"] = folders[0]
    return data


def _boom_for_bad(real: Callable[..., Any], pick: Callable[..., Path | str]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if "bad" in str(pick(*args, **kwargs)):
            raise RuntimeError("injected fault")
        return real(*args, **kwargs)

    return wrapper


# step name -> (module, attribute, which argument names the drop)
STEPS: dict[str, tuple[Any, str, Callable[..., Path | str]]] = {
    "stat": (watcher_mod, "_file_signature", lambda path, *a, **k: path),
    "open": (watcher_mod, "_readiness", lambda path, *a, **k: path),
    "classify": (intake_mod, "classify", lambda path, *a, **k: path),
    "pair": (intake_mod.Intake, "_group", lambda self, members, *a, **k: members[0].path),
    "hash": (claim_mod, "hash_path", lambda path, *a, **k: path),
    "parse_srt": (caption_mod, "read_subtitles", lambda path, *a, **k: path),
    "probe": (burn_mod, "probe", lambda path, *a, **k: path),
    "publish": (Outbox, "publish", lambda self, name, *a, **k: name),
    "parse_brief": (intake_mod, "load_brief", lambda path, *a, **k: path),
}


@pytest.mark.parametrize("step", sorted(STEPS))
def test_a_fault_at_any_step_quarantines_that_drop_and_the_next_good_drop_is_published(
    env: Env, clip: Path, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    module, attr, pick = STEPS[step]
    monkeypatch.setattr(module, attr, _boom_for_bad(getattr(module, attr), pick))
    d = env.daemon()
    with Running(d) as r:
        if step == "parse_brief":
            (env.inbox / "bad.yaml").write_text("kind: narrate\ntext: Olá.\n")
        else:
            drop_pair(env, clip, "bad")
        wait_for(lambda: any((env.outbox / "failed").glob("bad*/error.json")), timeout=40)
        drop_pair(env, clip, "good")
        wait_for(lambda: (env.outbox / "good.json").exists(), timeout=40)
        assert r.thread.is_alive()
    err = failed_record(env, "bad", each_file=step in ("classify", "stat", "open"))  # per-file steps fail per file
    assert "injected fault" in err["message"]
    kept = sorted(p.name for p in err["_folder"].iterdir())
    assert {"bad.mp4", "bad.srt", "bad.yaml"} & set(kept)  # the originals are kept, never lost
    assert not [p for p in env.inbox.iterdir() if p.name.startswith("bad")]
    assert probe(env.outbox / "good.mp4").duration


def test_a_fault_in_the_loop_itself_is_logged_and_the_loop_goes_on(
    env: Env, clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = daemon_mod.Daemon._dispatch
    calls = {"n": 0}

    def flaky(self: daemon_mod.Daemon) -> None:
        calls["n"] += 1
        if calls["n"] <= 3:
            raise RuntimeError("dispatch fault")
        real(self)

    monkeypatch.setattr(daemon_mod.Daemon, "_dispatch", flaky)
    d = env.daemon()
    with Running(d) as r:
        drop_pair(env, clip, "good")
        wait_for(lambda: (env.outbox / "good.json").exists(), timeout=40)
        assert r.thread.is_alive()
    assert d.loop_errors == 3
    logs = "".join(p.read_text() for p in (env.outbox / "logs").glob("*.jsonl"))
    assert "dispatch fault" in logs and '"loop_error"' in logs


# -- any name ------------------------------------------------------------------


def test_a_name_that_is_not_utf8_is_quarantined_asking_for_a_rename(env: Env, clip: Path) -> None:
    raw = os.fsencode(env.inbox) + b"/relat\xf3rio.txt"  # latin-1 "relatório", as old SMB shares write it
    with open(raw, "wb") as f:
        f.write("Olá.".encode())
    drop_pair(env, clip, "good")
    assert env.once() == 1
    err = failed_record(env, "relat")
    assert "not valid UTF-8" in err["message"] and "Rename it" in err["message"]
    assert err["_folder"].name == "relat\\xf3rio"
    assert os.listdir(os.fsencode(err["_folder"])).count(b"relat\xf3rio.txt") == 1  # exact bytes kept
    assert (env.outbox / "good.mp4").exists()
    logs = "".join(p.read_text(encoding="utf-8") for p in (env.outbox / "logs").glob("*.jsonl"))
    assert "relat\\\\xf3rio" in logs  # shown escaped, never breaking the line


def test_newlines_and_control_characters_in_names_are_quarantined(env: Env) -> None:
    (env.inbox / "linha\nnova.txt").write_text("Olá.")
    (env.inbox / "tab\there.txt").write_text("Olá.")
    assert env.once() == 1
    for stem in ("linha", "tab"):
        err = failed_record(env, stem)
        assert "control characters" in err["message"]
        assert "\n" not in err["_folder"].name and "\t" not in err["_folder"].name


def test_a_leading_dash_is_just_a_name(env: Env, clip: Path) -> None:
    drop_pair(env, clip, "-vf")
    assert env.once() == 0
    assert probe(env.outbox / "-vf.mp4").duration
    assert env.sidecar("-vf")["status"] == "done"


def test_a_255_byte_name_is_published_under_a_stable_shortened_name(env: Env, clip: Path) -> None:
    stem = "ação-" * 40  # 5 chars, 7 bytes each: 280 bytes, more than the file system takes
    stem = stem[: 251 - len(".mp4") + 4]
    while len((stem + ".mp4").encode()) > NAME_MAX:
        stem = stem[:-1]
    drop_pair(env, clip, stem)
    assert env.once() == 0
    names = [p.name for p in env.outbox.iterdir() if p.is_file()]
    assert all(len(n.encode()) <= NAME_MAX for n in names)
    short = fit_stem(stem, 24)
    assert short != stem and short.startswith("ação-")
    assert {f"{short}.mp4", f"{short}.json"} <= set(names)
    assert json.loads((env.outbox / f"{short}.json").read_text())["outputs"][".mp4"] == f"{short}.mp4"


def test_names_helper() -> None:
    assert problem("boa.txt") is None
    assert problem("ruim\udcff.txt") and problem("a\nb")
    assert display("a\udcffb") == "a\\xffb" and display("a\nb") == "a\\x0ab"
    long = "x" * 300
    assert fit_stem(long, 24) == fit_stem(long, 24) and len(fit_stem(long, 24).encode()) <= NAME_MAX - 24
    assert fit_stem(long, 24) != fit_stem("x" * 299 + "y", 24)
    assert fit_stem("curto", 24) == "curto"


def test_publishing_is_all_or_nothing(tmp_path: Path) -> None:
    out = Outbox(tmp_path / "outbox")
    (tmp_path / "a.mp4").write_bytes(b"video")
    with pytest.raises(Exception, match="publish"):
        out.publish("x", {".mp4": tmp_path / "a.mp4", ".srt": tmp_path / "missing.srt"}, {"k": 1})
    assert sorted(p.name for p in out.root.iterdir() if p.is_file()) == []  # no output without its sidecar
    published = out.publish("x", {".mp4": tmp_path / "a.mp4"}, {"name": "bad\udcff"}, stem="x")
    assert Path(published[".json"]).read_text(encoding="utf-8").count("bad\\\\xff") == 1
    again = out.publish("x", {".mp4": tmp_path / "a.mp4"}, {"k": 2}, stem="x")  # a resumed publish
    assert again == published and sorted(p.name for p in out.root.iterdir() if p.is_file()) == ["x.json", "x.mp4"]


# -- only regular files --------------------------------------------------------------


def test_fifos_are_never_opened_and_are_shown_as_ignored(env: Env, clip: Path) -> None:
    os.mkfifo(env.inbox / "pipe.srt")
    (env.inbox / "bundle").mkdir()
    os.mkfifo(env.inbox / "bundle" / "pipe.wav")
    (env.inbox / "bundle" / "brief.yaml").write_text("kind: narrate\ntext: Olá.\n")
    d = env.daemon()
    with Running(d, serve=True) as r:
        drop_pair(env, clip, "good")
        wait_for(lambda: (env.outbox / "good.json").exists() and (env.outbox / "bundle.json").exists(), timeout=60)
        assert d.ignored == {"pipe.srt": "fifo"}
        base = f"http://127.0.0.1:{r.server.port}"
        assert httpx.get(f"{base}/api/status").json()["inbox"]["ignored"] == [{"file": "pipe.srt", "kind": "fifo"}]
        assert "ignored: a fifo" in httpx.get(f"{base}/").text
    assert (env.inbox / "pipe.srt").exists()
    logs = "".join(p.read_text() for p in (env.outbox / "logs").glob("*.jsonl"))
    assert logs.count('"ignored"') == 1


# -- writers ---------------------------------------------------------------------------


def _stalled_copy(src: Path, dst: Path, stall: Callable[[], None]) -> None:
    data = src.read_bytes()
    with open(dst, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        stall()  # a stalled Wi-Fi/SMB copy: the file stays open, size and mtime still
        f.write(data[len(data) // 2:])


def _judged(d: daemon_mod.Daemon, name: str) -> bool:
    """Whether the daemon has looked at ``name`` after it settled: found it busy, took it as ready, or claimed it."""
    entry = next((e for p, e in list(d.settler.entries.items()) if p.name == name), None)
    if entry is not None:
        return entry.busy or entry.ready_at is not None
    return any(j.name == Path(name).stem for j in d.journal.jobs())


@pytest.mark.parametrize("mode,lease", [("inotify", True), ("polling", True), ("polling", False)])
def test_a_copy_that_stalls_past_the_settle_time_is_never_published_short(
    make_env: Callable[..., Env], tmp_path: Path, mode: str, lease: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN a video written half, then a writer that stalls with the file open until the daemon has looked at the
    half file after its settle time (and ticked twice more), then writes the rest
    THEN the video is published whole, or (with no sign of the writer at all) fails, but never comes out short."""
    env = make_env(watch={"mode": mode, "settle_seconds": 0.5})
    if not lease:  # a client-side network mount: no read lease, no inotify; only the content checks remain
        monkeypatch.setattr(watcher_mod, "_writer_holds", lambda fd: None)
    full = make_video(tmp_path / "full.mp4", seconds=6.0, size="160x90")
    write_srt(env.inbox / "copia.srt")
    d = env.daemon()

    def stall() -> None:
        wait_for(lambda: _judged(d, "copia.mp4"), 60, every=0.02, what="the daemon looking at the half file")
        wait_ticks(d, 2)

    with Running(d):
        _stalled_copy(full, env.inbox / "copia.mp4", stall)
        wait_for(lambda: (env.outbox / "copia.json").exists() or any((env.outbox / "failed").iterdir()), 90)
    outcome = (f"published {probe(env.outbox / 'copia.mp4').duration:.2f} s" if (env.outbox / "copia.mp4").exists()
               else f"failed: {failed_record(env, 'copia')['message']}")
    print(f"stalled writer, {mode}, lease {'on' if lease else 'off'}: {outcome}")  # for docs/benchmarks.md (-s)
    if lease:
        assert probe(env.outbox / "copia.mp4").duration == pytest.approx(6.0, abs=0.2)
        return
    # Without any sign of the writer, omad may take the half file: it must never publish it as done.
    if (env.outbox / "copia.mp4").exists():
        assert probe(env.outbox / "copia.mp4").duration == pytest.approx(6.0, abs=0.2)
    else:
        assert failed_record(env, "copia")["error"]["kind"] in ("transient", "input")


def test_an_input_that_changes_after_it_was_claimed_is_run_again_not_published(
    env: Env, clip: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    longer = make_video(tmp_path / "longer.mp4", seconds=3.0, size="160x90")
    real = caption_mod.burn_captions
    runs: list[float] = []

    def burn_then_the_copy_goes_on(ctx: StageContext, *args: Any, **kwargs: Any) -> dict[str, object]:
        facts = real(ctx, *args, **kwargs)
        runs.append(float(facts["duration"] or 0))  # type: ignore[arg-type]
        if len(runs) == 1:  # the writer still had the file open: its rest lands in the claimed input
            ctx.inputs["video"].write_bytes(longer.read_bytes())
        return facts

    monkeypatch.setattr(caption_mod, "burn_captions", burn_then_the_copy_goes_on)
    drop_pair(env, clip, "mudou")
    assert env.once() == 0
    assert len(runs) == 2
    assert probe(env.outbox / "mudou.mp4").duration == pytest.approx(3.0, abs=0.2)
    assert [p.name for p in env.outbox.glob("mudou*.mp4")] == ["mudou.mp4"]


# -- bounded cost ------------------------------------------------------------------------


def _srt(cues: list[tuple[float, float]]) -> str:
    def ts(t: float) -> str:
        ms = int(round(t * 1000))
        return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    return "".join(f"{i + 1}\n{ts(a)} --> {ts(b)}\nlinha {i}\n\n" for i, (a, b) in enumerate(cues))


@pytest.mark.parametrize("kind", ["too_many", "on_screen", "too_big"])
def test_subtitles_too_costly_to_render_are_refused_up_front(
    make_env: Callable[..., Env], clip: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN subtitles with too many cues, too many on screen at once, or too many bytes
    THEN the job fails as the drop's fault, naming the limit, before any ffmpeg is started on them."""
    started: list[list[str]] = []
    real = ffmpeg_run.Ffmpeg.__call__

    def recorded(self: ffmpeg_run.Ffmpeg, args: Any, **kw: Any) -> str:
        started.append([str(a) for a in args])
        return real(self, args, **kw)

    monkeypatch.setattr(ffmpeg_run.Ffmpeg, "__call__", recorded)
    env = make_env(intake={"max_cues": 500, "max_cues_on_screen": 8, "max_subtitle_bytes": 30000,
                           "pair_timeout_seconds": 3.0, "partner_grace_seconds": 0.5})
    shutil.copy(clip, env.inbox / "caro.mp4")
    if kind == "too_many":
        text = _srt([(i * 0.001, i * 0.001 + 0.001) for i in range(600)])
    elif kind == "on_screen":
        text = _srt([(0.0, 1.0)] * 9)
    else:
        text = _srt([(0.0, 1.0)]) + "x" * 40000
    (env.inbox / "caro.srt").write_text(text)
    assert env.once() == 1
    assert started == []
    err = failed_record(env, "caro")
    assert err["error"]["kind"] == "input" and err["attempts"] == 1
    assert {"too_many": "intake.max_cues", "on_screen": "max_cues_on_screen",
            "too_big": "max_subtitle_bytes"}[kind] in err["message"]


def test_an_image_with_too_many_pixels_is_refused(make_env: Callable[..., Env]) -> None:
    env = make_env(intake={"max_image_megapixels": 0.1, "partner_grace_seconds": 0.2})
    make_image(env.inbox / "enorme.png", size="640x360")
    assert env.once() == 1
    err = failed_record(env, "enorme")
    assert "intake.max_image_megapixels" in err["message"] and err["error"]["kind"] == "input"


@pytest.mark.parametrize("body,expect", [
    ("kind: narrate\ntext: !!python/object/apply:os.system ['echo hi']\n", "without '!!' tags"),
    ("kind: narrate\ntext: Olá\nx: " + "[" * 40 + "]" * 40 + "\n", "intake.max_brief_depth"),
    ("kind: narrate\ntext: Olá\nx: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
])
def test_hostile_briefs_are_refused_with_a_message(env: Env, body: str, expect: str) -> None:
    (env.inbox / "hostil.yaml").write_text(body)
    assert env.once() == 1
    err = failed_record(env, "hostil")
    assert expect in err["message"] and err["message"].startswith("hostil.yaml: ")


def test_a_stage_timeout_scales_with_the_media(env: Env) -> None:
    cfg: Config = env.config
    ctx = StageContext(job_id="j", route="caption", name="x", work=env.root, inputs={}, options={}, config=cfg,
                       lanes=None, stage="caption", timeout=3600.0)  # type: ignore[arg-type]
    assert ctx.scale_timeout(2.0) == cfg.jobs.timeout_base_seconds + 2.0 * cfg.jobs.timeout_per_media_second
    assert ctx.scale_timeout(None) == ctx.timeout
    pinned = cfg.model_copy(update={"jobs": cfg.jobs.model_copy(update={"stage_timeouts": {"caption": 99.0}})})
    ctx2 = StageContext(job_id="j", route="caption", name="x", work=env.root, inputs={}, options={}, config=pinned,
                        lanes=None, stage="caption", timeout=99.0)  # type: ignore[arg-type]
    assert ctx2.scale_timeout(2.0) == 99.0


def test_records_are_as_readable_as_the_results(env: Env, clip: Path) -> None:
    """A sidecar or error.json must be readable wherever its video is (a temporary file is created 0600)."""
    drop_pair(env, clip, "legivel")
    (env.inbox / "estranho.xlsx").write_bytes(b"x")
    assert env.once() == 1
    umask = os.umask(0o022)
    os.umask(umask)
    expected = 0o666 & ~umask
    for record in (env.outbox / "legivel.json", env.outbox / "failed" / "estranho.xlsx" / "error.json"):
        assert record.stat().st_mode & 0o777 == expected, record
