"""Which H.264 encoder omad's renders use: NVENC on an NVIDIA GPU when it really works, else libx264.

Owns the choice (``video.encoder``: ``auto``, ``libx264`` or ``h264_nvenc``),
the argv for each encoder with the same quality knobs (``video.crf``,
``video.x264_preset``) and colour tags, and the note that tells a sidecar's
reader why a GPU was not used. NVENC is trusted only after a real trial
encode: an ffmpeg built with ``h264_nvenc`` lists it even on a box with no
NVIDIA driver, and some NVIDIA GPUs (H100/H200 class) have no encoder block
at all. The trial runs once per process. It never decides what is encoded.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..config import VideoConfig
from ..procs import run_tool
from .ffmpeg import FFMPEG

# What omad's frames are (BT.709, limited range), told to the encoder so that players convert them back right.
# Here rather than beside the frame pipe, so that stages that only encode (captions) never import numpy.
COLOUR_TAGS = ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv"]

__all__ = ["Encoder", "VideoOutput", "choose_encoder", "nvenc_status", "x264", "nvenc"]

# x264 presets mapped to NVENC's p1 (fastest) .. p7 (best), by their place in the speed order.
_NVENC_PRESETS = {
    "ultrafast": "p1", "superfast": "p1", "veryfast": "p2", "faster": "p3", "fast": "p3",
    "medium": "p4", "slow": "p5", "slower": "p6", "veryslow": "p7", "placebo": "p7",
}  # fmt: skip


@dataclass(frozen=True)
class Encoder:
    """An encoder's name, its ffmpeg output arguments, and why it was chosen when that is worth saying."""

    name: str
    args: tuple[str, ...]
    note: str | None = None

    def facts(self) -> dict[str, Any]:
        out: dict[str, Any] = {"encoder": self.name}
        if self.note:
            out["encoder_note"] = self.note
        return out


def x264(crf: int, preset: str, note: str | None = None, *, tags: bool = True, threads: int = 0) -> Encoder:
    """libx264 at ``crf`` and ``preset``, yuv420p; ``tags``: mark it BT.709 limited range (omad's own frames).

    ``threads`` 1 makes the output the same bytes on every run (measured here: threaded x264 is not).
    """
    return Encoder("libx264", ("-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
                               *(("-threads", str(threads)) if threads else ()), *(COLOUR_TAGS if tags else ())), note)


def nvenc(crf: int, preset: str, *, tags: bool = True) -> Encoder:
    """h264_nvenc at constant quality ``crf`` (NVENC's CQ scale is close to x264's CRF), same pixel format and tags."""
    return Encoder("h264_nvenc", ("-c:v", "h264_nvenc", "-preset", _NVENC_PRESETS.get(preset, "p4"), "-tune", "hq",
                                  "-rc", "vbr", "-cq", str(crf), "-b:v", "0", "-pix_fmt", "yuv420p",
                                  *(COLOUR_TAGS if tags else ())))


def _nvidia_device() -> bool:
    """An NVIDIA driver's device node: without one no NVENC can work, and no ffmpeg need be started to say so."""
    return Path("/dev/nvidiactl").exists() or any(Path("/dev").glob("nvidia[0-9]*"))


@lru_cache(maxsize=1)
def nvenc_status() -> tuple[bool, str]:
    """Whether h264_nvenc encodes here (a real 0.2 s trial), and why not when it does not."""
    if not _nvidia_device():
        return False, "no NVIDIA GPU here (no /dev/nvidia* device)"
    if shutil.which(FFMPEG) is None:
        return False, f"{FFMPEG} is not installed"
    try:
        listed = run_tool([FFMPEG, "-hide_banner", "-encoders"], timeout=30)
    except OSError as e:
        return False, f"could not run {FFMPEG}: {e}"
    if b" h264_nvenc " not in listed.stdout:
        return False, "this ffmpeg has no h264_nvenc encoder"
    trial = run_tool([FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                      "color=c=black:s=256x144:r=30:d=0.2", "-c:v", "h264_nvenc", "-f", "null", "-"], timeout=30)
    if trial.returncode == 0 and trial.stopped_for is None:
        return True, "h264_nvenc encodes on this machine's GPU"
    lines = trial.stderr.decode("utf-8", "replace").strip().splitlines()
    # The encoder's own line ("[h264_nvenc @ 0x...] Cannot load libcuda.so.1") says why; ffmpeg's last one does not.
    own = [line.split("]", 1)[-1].strip() for line in lines if "h264_nvenc @" in line]
    why = own[0] if own else (lines[-1] if lines else f"exit code {trial.returncode}")
    return False, f"h264_nvenc is in ffmpeg but did not encode ({why}); no usable NVIDIA GPU or driver"


def choose_encoder(video: VideoConfig, *, tags: bool = True) -> Encoder:
    """The encoder for ``video.encoder``; a GPU that cannot encode falls back to libx264 with a note saying why.

    ``tags`` marks the output BT.709 limited range: right for omad's own
    frames; a re-encode of a dropped video passes ``False`` so the input's
    own colour description is kept.
    """
    if video.encoder == "libx264":
        return x264(video.crf, video.x264_preset, tags=tags, threads=video.x264_threads)
    ok, why = nvenc_status()
    if ok:
        return nvenc(video.crf, video.x264_preset, tags=tags)
    asked = "video.encoder is h264_nvenc, but " if video.encoder == "h264_nvenc" else ""
    return x264(video.crf, video.x264_preset, note=f"{asked}{why}: encoded with libx264 on the CPU", tags=tags,
                threads=video.x264_threads)


@dataclass(frozen=True)
class VideoOutput:
    """What a rendered clip is encoded as: its frame, rate, quality, encoder and audio bitrate, as one value.

    ``encoder`` None is libx264 at ``crf``, ``preset`` and ``threads``; :meth:`from_config` chooses the one
    ``video.encoder`` names (NVENC when it really works here).
    """

    width: int
    height: int
    fps: int
    crf: int = 20
    preset: str = "veryfast"
    threads: int = 0
    audio_bitrate: str = "160k"
    encoder: Encoder | None = None

    @classmethod
    def from_config(cls, video: VideoConfig, size: tuple[int, int] | None = None) -> VideoOutput:
        """``video.*`` as an output (``size`` overrides the preset's frame: a brief's format)."""
        width, height = size or video.size()
        return cls(width=width, height=height, fps=video.fps, crf=video.crf, preset=video.x264_preset,
                   threads=video.x264_threads, audio_bitrate=video.audio_bitrate, encoder=choose_encoder(video))

    @property
    def chosen(self) -> Encoder:
        """The encoder the clip is made with."""
        return self.encoder or x264(self.crf, self.preset, threads=self.threads)
