"""Running ffmpeg and ffprobe: argv building, progress, timeouts, and error mapping.

This module is the boundary between ffmpeg's exit codes and omad's error tree:
nothing else runs ffmpeg directly. Input is untrusted, so every run restricts
protocols to plain files (an HLS playlist named ``.mp4`` must not make ffmpeg
open other files or URLs). ``probe`` reads a file in process (PyAV, its own
FFmpeg libraries) with the same protocol restriction and a demuxer
allow-list, and reports the demuxer so callers can refuse content that is not
what its name says.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from .. import tracing
from ..errors import InputError, OmadError, StageFailed, ToolMissing, ToolTimeout, TransientError
from ..procs import Supervised, run_tool, spawn

__all__ = [
    "FFMPEG",
    "ffmpeg_failure",
    "FFPROBE",
    "PROBE_DEMUXERS",
    "Probe",
    "probe",
    "open_untrusted",
    "run_ffmpeg",
    "escape_filter_path",
    "ffmpeg_version",
    "require_tools",
    "SAFE_INPUT_ARGS",
]

FFMPEG = os.environ.get("OMAD_FFMPEG", "ffmpeg")
FFPROBE = os.environ.get("OMAD_FFPROBE", "ffprobe")

# Only local files may be opened, whatever the input's content says.
SAFE_INPUT_ARGS = ["-protocol_whitelist", "file,pipe"]

_ENOSPC_PAT = re.compile(r"No space left on device|ENOSPC", re.I)
# A file that ends before its own index says it should: most often a copy still under way (polling mode
# on a network share, where no writer can be seen), so it is retried rather than refused at once.
_CUT_SHORT_PAT = re.compile(r"partial file|File ended prematurely", re.I)
_INPUT_PAT = re.compile(
    r"Invalid data found when processing input|moov atom not found|could not find codec parameters|"
    r"Error while decoding stream|does not contain any stream|Invalid NAL unit|"
    r"Error opening input|End of file|Invalid frame dimensions",
    re.I,
)

IMAGE_DEMUXERS = {
    "image2",
    "png_pipe",
    "jpeg_pipe",
    "webp_pipe",
    "bmp_pipe",
    "tiff_pipe",
    "gif",
    "gif_pipe",
    "jpegls_pipe",
    "heif",
}
VIDEO_DEMUXERS = {"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi", "mpegts", "flv"}
AUDIO_DEMUXERS = {"wav", "mp3", "flac", "ogg", "mov,mp4,m4a,3gp,3g2,mj2", "aac", "matroska,webm", "w64"}


def require_tools() -> None:
    """Raise ToolMissing unless ffmpeg and ffprobe are on PATH."""
    for tool in (FFMPEG, FFPROBE):
        if shutil.which(tool) is None:
            raise ToolMissing(
                f"{tool} is not installed or not on PATH. Install it with `sudo apt-get install ffmpeg` "
                "(or run `make demo`, which installs it)."
            )


@lru_cache(maxsize=1)
def ffmpeg_version() -> str:
    """The first line of ``ffmpeg -version`` (recorded in every sidecar)."""
    try:
        out = run_tool([FFMPEG, "-hide_banner", "-version"], timeout=30)
    except OSError:
        return "unknown"
    text = out.stdout.decode("utf-8", "replace")
    line = text.splitlines()[0] if text else "unknown"
    return line.replace("ffmpeg version ", "").split(" Copyright")[0]


def escape_filter_path(path: str | Path) -> str:
    """Escape a path for use inside a filter argument such as ``subtitles=``.

    Two levels, because the filtergraph is parsed twice (docs/field-notes.md): first
    the filter's option value (``\\ ' :``), then the graph (``\\ ' [ ] , ;``).
    """
    text = str(path)
    level1 = re.sub(r"([\\':])", r"\\\1", text)
    return re.sub(r"([\\'\[\],;])", r"\\\1", level1)


@dataclass
class Probe:
    """What ffprobe says about one file."""

    path: Path
    format_name: str
    duration: float | None
    streams: list[dict[str, Any]] = field(default_factory=list)
    tags: dict[str, Any] = field(default_factory=dict)

    def first(self, codec_type: str) -> dict[str, Any] | None:
        for s in self.streams:
            if s.get("codec_type") == codec_type and not (s.get("disposition") or {}).get("attached_pic"):
                return s
        return None

    @property
    def video(self) -> dict[str, Any] | None:
        return self.first("video")

    @property
    def audio(self) -> dict[str, Any] | None:
        return self.first("audio")

    @property
    def width(self) -> int:
        v = self.video
        return int(v["width"]) if v else 0

    @property
    def height(self) -> int:
        v = self.video
        return int(v["height"]) if v else 0

    @property
    def fps(self) -> float:
        v = self.video
        if not v:
            return 0.0
        for key in ("avg_frame_rate", "r_frame_rate"):
            num, _, den = str(v.get(key, "0/1")).partition("/")
            try:
                value = float(num) / float(den or 1)
            except (ValueError, ZeroDivisionError):
                continue
            if value > 0:
                return value
        return 0.0

    @property
    def fps_fraction(self) -> str:
        v = self.video or {}
        for key in ("avg_frame_rate", "r_frame_rate"):
            val = str(v.get(key, "0/0"))
            if val not in ("0/0", "0/1"):
                return val
        return "30/1"

    @property
    def rotation(self) -> int:
        v = self.video or {}
        for sd in v.get("side_data_list") or []:
            if "rotation" in sd:
                return int(float(sd["rotation"])) % 360
        rot = (v.get("tags") or {}).get("rotate")
        return int(rot) % 360 if rot else 0


# Every demuxer any caller accepts; ``probe`` opens nothing else. A playlist (hls, dash), a concat list, a
# lavfi graph or any other demuxer that can reach other files or URLs is refused before it reads a byte.
PROBE_DEMUXERS = sorted({name for group in (IMAGE_DEMUXERS, VIDEO_DEMUXERS, AUDIO_DEMUXERS)
                         for name in group for name in name.split(",")})
# Decoder names PyAV reports where ffprobe reports the codec's own name (callers compare codec names).
_CODEC_NAMES = {"mp3float": "mp3", "mp2float": "mp2", "aac_fixed": "aac", "libdav1d": "av1", "libopus": "opus",
                "libvorbis": "vorbis"}


# FFmpeg's colour enums (pixfmt.h) as ffprobe names them; unknown values are left out, as ffprobe does.
_COLOUR_NAMES = {
    "color_range": {1: "tv", 2: "pc"},
    "color_space": {0: "gbr", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "ycgco",
                    9: "bt2020nc", 10: "bt2020c"},
    "color_primaries": {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film",
                        9: "bt2020"},
    "color_transfer": {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear",
                       13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 18: "arib-std-b67"},
}
_COLOUR_ATTRS = {"color_range": "color_range", "color_space": "colorspace", "color_primaries": "color_primaries",
                 "color_transfer": "color_trc"}


def _rate(value: Any) -> str:
    return f"{value.numerator}/{value.denominator}" if value else "0/0"


def _stream_facts(stream: Any) -> dict[str, Any]:
    """One stream as ffprobe's JSON would describe it (the keys omad reads)."""
    cc = stream.codec_context
    name = cc.codec.name if cc.codec is not None else cc.name
    facts: dict[str, Any] = {
        "index": stream.index,
        "codec_type": stream.type,
        "codec_name": _CODEC_NAMES.get(name, name),
        "disposition": {"attached_pic": int(bool(int(stream.disposition) & 0x400))},
        "tags": dict(stream.metadata),
    }
    if stream.duration is not None and stream.time_base:
        facts["duration"] = f"{float(stream.duration * stream.time_base):.6f}"
    if stream.frames:
        facts["nb_frames"] = str(stream.frames)
    if stream.type == "video":
        facts.update(width=cc.width, height=cc.height, pix_fmt=cc.pix_fmt or "",
                     avg_frame_rate=_rate(stream.average_rate), r_frame_rate=_rate(stream.base_rate))
        for key, attr in _COLOUR_ATTRS.items():
            name = _COLOUR_NAMES[key].get(int(getattr(cc, attr, 2) or 2))
            if name:
                facts[key] = name
    elif stream.type == "audio":
        facts.update(sample_rate=str(cc.sample_rate), channels=cc.channels)
    return facts


def _rotation(container: Any, stream: Any) -> int:
    """The display rotation of ``stream`` (a phone video's), from its first decoded frame; 0 if it has none."""
    import av.error as av_error

    try:
        for frame in container.decode(stream):
            return int(round(frame.rotation or 0))
    except (av_error.FFmpegError, ValueError, OSError):
        return 0  # a first frame that does not decode is ffmpeg's to report, in the stage's own run
    return 0


def open_untrusted(path: str | Path, *, timeout: float = 60.0, file_label: str | None = None) -> Any:
    """``path`` opened in process (a PyAV container) under the restrictions ``probe`` states.

    Only plain files may be opened and only the demuxers in ``PROBE_DEMUXERS``
    may read them; failures are omad errors naming ``file_label``. The caller
    closes the container (it is a context manager).
    """
    # Imported here, not at the top: ~50 ms that only probing needs, kept off every `omad` command's start.
    import av
    import av.error as av_error

    p = Path(path)
    label = file_label or p.name
    # pattern_type=none: image2 reads one file, never the numbered sequence a name like "a%03d.jpg" spells.
    options = {"protocol_whitelist": "file", "format_whitelist": ",".join(PROBE_DEMUXERS), "pattern_type": "none"}
    try:
        return av.open(str(p), options=options, timeout=(timeout, timeout))
    except av_error.ExitError as e:
        raise ToolTimeout(f"reading the file took longer than {timeout:.0f}s.", file=label) from e
    except av_error.ArgumentError as e:
        raise InputError(
            "is not in a format omad reads (its content is some other container, a playlist or a list of files). "
            "Drop an MP4, MOV, MKV or WebM video, or a WAV, MP3, M4A or FLAC recording.",
            file=label,
            details={"reason": str(e)},
        ) from e
    except (av_error.FFmpegError, OSError, ValueError) as e:
        why = getattr(e, "strerror", None) or str(e)
        raise InputError(
            f"is not a media file ffmpeg can read ({why}). Check that the file is complete and drop it again.",
            file=label,
            details={"stderr_tail": str(e)[-1000:], "unreadable": True},
        ) from e


def probe(path: str | Path, *, timeout: float = 60.0, file_label: str | None = None) -> Probe:
    """Read ``path``'s container and streams in process (PyAV); an unreadable or non-media file is an InputError.

    The security checks of a separate ffprobe stay: only plain files may be
    opened (``protocol_whitelist``), and only the demuxers in
    ``PROBE_DEMUXERS`` may read the file (``format_whitelist``), so a
    playlist named ``.mp4`` is refused before it can name another file.
    Callers still check ``format_name`` against their own allow-list. No
    process is started: ~1 ms against ~70-100 ms for ffprobe here.
    """
    import av

    p = Path(path)
    container = open_untrusted(p, timeout=timeout, file_label=file_label)
    with container:
        fmt = container.format.name
        streams = [_stream_facts(s) for s in container.streams]
        video = next((s for s, f in zip(container.streams, streams, strict=True)
                      if f["codec_type"] == "video" and not f["disposition"]["attached_pic"]), None)
        if video is not None and fmt.startswith("mov"):
            rotation = _rotation(container, video)
            if rotation:
                streams[video.index]["side_data_list"] = [{"rotation": rotation}]
        duration = container.duration / av.time_base if container.duration is not None else None
        tags = dict(container.metadata)
    return Probe(path=p, format_name=fmt, duration=duration, streams=streams, tags=tags)


_PROGRESS_RE = re.compile(r"^(out_time_us|out_time_ms|progress)=(.*)$")


def _summary(args: Sequence[str]) -> dict[str, Any]:
    """What an ffmpeg run does, for its span: its options, codecs and filter names; never a path or a value."""
    flags: list[str] = []
    codecs: list[str] = []
    formats: list[str] = []
    filters: list[str] = []
    inputs = 0
    for i, arg in enumerate(args):
        text = str(arg)
        if not text.startswith("-") or text[1:2].isdigit() or not text[1:2]:
            continue
        flags.append(text)
        value = str(args[i + 1]) if i + 1 < len(args) else ""
        if text == "-i":
            inputs += 1
        elif text.split(":")[0] in ("-c", "-codec", "-vcodec", "-acodec"):
            codecs.append(value)
        elif text == "-f":
            formats.append(value)
        elif text.split(":")[0] in ("-vf", "-af", "-filter", "-filter_complex", "-lavfi"):
            for part in re.split(r"[,;]", value):
                name = re.sub(r"\[[^\]]*\]", "", part).split("=", 1)[0].strip()
                if re.fullmatch(r"[a-z0-9_]+", name):
                    filters.append(name)
    return {"omad.tool": "ffmpeg", "omad.ffmpeg.options": " ".join(flags)[:500],
            "omad.ffmpeg.codecs": ",".join(dict.fromkeys(codecs)),
            "omad.ffmpeg.formats": ",".join(dict.fromkeys(formats)),
            "omad.ffmpeg.filters": ",".join(dict.fromkeys(filters)), "omad.ffmpeg.inputs": inputs}


def run_ffmpeg(
    args: Sequence[str],
    *,
    timeout: float,
    duration: float | None = None,
    progress: Callable[[float], None] | None = None,
    file_label: str | None = None,
    stage: str | None = None,
    cancel: threading.Event | None = None,
    loglevel: str = "error",
) -> str:
    """Run ffmpeg with ``args`` (everything after the program name); returns the tail of its stderr.

    ``loglevel`` above ``error`` is for runs whose report is the point (loudnorm's
    measurement prints at ``info``).

    ``duration`` (seconds of output expected) turns ffmpeg's ``-progress``
    output into calls of ``progress(fraction)``. Failures are mapped:
    a timeout or a kill by a signal or a full disk is transient, a file ffmpeg
    cannot read is an input error, anything else fails the stage with the
    stderr tail attached.

    Traced as an ``ffmpeg`` span (options, codecs and filter names, the
    file's label, return code and seconds) when tracing is on.
    """
    if not tracing.enabled():
        return _run_ffmpeg(args, timeout=timeout, duration=duration, progress=progress, file_label=file_label,
                           stage=stage, cancel=cancel, loglevel=loglevel)
    started = time.monotonic()
    label = Path(file_label).name if file_label else None  # a label, never a full path, in a span
    with tracing.span("ffmpeg", {**_summary(args), "omad.file": label, "omad.stage": stage}):
        try:
            out = _run_ffmpeg(args, timeout=timeout, duration=duration, progress=progress, file_label=file_label,
                              stage=stage, cancel=cancel, loglevel=loglevel)
        except OmadError as e:
            tracing.annotate({"omad.ffmpeg.returncode": e.details.get("returncode"),
                              "omad.ffmpeg.seconds": round(time.monotonic() - started, 3)})
            raise
        tracing.annotate({"omad.ffmpeg.returncode": 0, "omad.ffmpeg.seconds": round(time.monotonic() - started, 3),
                          "omad.outcome": "done"})
        return out


def _run_ffmpeg(
    args: Sequence[str],
    *,
    timeout: float,
    duration: float | None,
    progress: Callable[[float], None] | None,
    file_label: str | None,
    stage: str | None,
    cancel: threading.Event | None,
    loglevel: str,
) -> str:
    """``run_ffmpeg`` itself, untraced: run under :class:`procs.Supervised`, then :func:`ffmpeg_failure`."""
    require_tools()
    cmd = [FFMPEG, "-hide_banner", "-nostdin", "-y", "-loglevel", loglevel, "-progress", "pipe:1", *args]
    try:
        proc = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
                     errors="replace")
    except OSError as e:
        raise ToolMissing(f"could not run {FFMPEG}: {e}") from e
    stderr_chunks: list[str] = []

    def _drain_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            stderr_chunks.append(line)
            if len(stderr_chunks) > 200:
                del stderr_chunks[:100]

    drain = threading.Thread(target=_drain_stderr, daemon=True)
    drain.start()
    # SIGTERM, then SIGKILL on timeout or cancel: ffmpeg inside libass may ignore SIGTERM for minutes.
    with Supervised(proc, timeout=timeout, cancel=cancel) as watch:
        assert proc.stdout is not None
        for line in proc.stdout:
            _report_progress(line, duration, progress)
        rc = proc.wait()
    drain.join(timeout=5)
    proc.stdout.close()
    if proc.stderr is not None:
        proc.stderr.close()
    error = ffmpeg_failure(rc, "".join(stderr_chunks)[-2000:], watch.stopped_for, timeout=timeout,
                           file_label=file_label, stage=stage, argv=[str(a) for a in cmd][:80])
    if error is not None:
        raise error
    return "".join(stderr_chunks)  # the last 100-200 lines


def _report_progress(line: str, duration: float | None, progress: Callable[[float], None] | None) -> None:
    """One line of ffmpeg's ``-progress`` output as a call of ``progress(fraction)``."""
    m = _PROGRESS_RE.match(line.strip())
    if not m or progress is None or not duration:
        return
    key, value = m.groups()
    if key in ("out_time_us", "out_time_ms") and value.strip().lstrip("-").isdigit():
        progress(max(0.0, min(1.0, int(value) / 1_000_000 / duration)))
    elif key == "progress" and value == "end":
        progress(1.0)


def ffmpeg_failure(
    rc: int,
    tail: str,
    stopped_for: str | None,
    *,
    timeout: float,
    file_label: str | None = None,
    stage: str | None = None,
    argv: list[str] | None = None,
) -> OmadError | None:
    """How an ffmpeg run ended, as omad's error (None: it succeeded). A pure function of what was seen.

    omad stopping it wins (timeout: retried; cancel: shutting down), then a signal, a full disk or a file
    cut short (transient), a file ffmpeg cannot read (the drop is bad), anything else (the stage failed,
    with the stderr tail attached).
    """
    details = {"returncode": rc, "stderr_tail": tail, "argv": argv or []}
    if stopped_for == "timeout":
        return ToolTimeout(
            f"ffmpeg ran longer than the stage timeout ({timeout:.0f}s) and was stopped; "
            "it will be retried. Raise jobs.stage_timeouts if the input is very long.",
            file=file_label, stage=stage, details=details,
        )
    if stopped_for == "cancel":
        return TransientError("ffmpeg was stopped because omad is shutting down.", file=file_label, stage=stage)
    if rc == 0:
        return None
    if rc < 0:
        return TransientError(f"ffmpeg was killed by signal {-rc}; the job will be retried.",
                              file=file_label, stage=stage, details=details)
    if _ENOSPC_PAT.search(tail):
        return TransientError("the disk is full; free some space. The job will be retried.",
                              file=file_label, stage=stage, details=details)
    if _CUT_SHORT_PAT.search(tail):
        return TransientError(
            "ends before its own index says it should: it may still have been copying. omad will try again; "
            "if the file really is cut short, it fails after jobs.max_attempts. Drop a complete copy.",
            file=file_label, stage=stage, details=details,
        )
    last = tail.strip().splitlines()[-1] if tail.strip() else ""
    if _INPUT_PAT.search(tail):
        return InputError(
            f"ffmpeg could not read this input ({last or 'unknown error'}). Check that the file plays and drop it "
            "again.",
            file=file_label, stage=stage, details={**details, "unreadable": True},
        )
    return StageFailed(f"ffmpeg failed: {last or f'exit code {rc}'}", file=file_label, stage=stage,
                       details=details)
