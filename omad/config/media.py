"""Video format, captions, Ken Burns and loudness: how results look and sound."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Section


class VideoConfig(Section):
    preset: Literal["landscape", "vertical", "custom"] = Field(
        "landscape", description="landscape 1920x1080 or vertical 1080x1920; custom uses width/height"
    )
    width: int = Field(1920, ge=16, description="output width when preset is custom")
    height: int = Field(1080, ge=16, description="output height when preset is custom")
    long_side: int = Field(
        1920, ge=64, le=7680, description="landscape, vertical and square frames: the long side in pixels "
        "(1920: 1920x1080, 1080x1920, 1080x1080)"
    )
    fps: int = Field(30, ge=1, le=120, description="output frame rate for generated video")
    crf: int = Field(20, ge=0, le=51, description="libx264 quality (lower is better and larger)")
    x264_preset: str = Field("veryfast", description="libx264 speed preset")
    x264_threads: int = Field(
        0, ge=0, le=64, description="libx264 threads (0: auto); 1 gives byte-identical output on every run, slower"
    )
    encoder: Literal["auto", "libx264", "h264_nvenc"] = Field(
        "auto", description="H.264 encoder: auto uses h264_nvenc when an NVIDIA GPU can encode, else libx264"
    )
    audio_bitrate: str = Field("160k", description="AAC bitrate")

    def size(self, fmt: str | None = None) -> tuple[int, int]:
        """The output frame: a brief's ``format`` (landscape, vertical or square) when given, else the preset."""
        long = self.long_side - self.long_side % 2
        short = round(long * 9 / 16 / 2) * 2
        if fmt == "square":
            return short, short
        preset = fmt if fmt in ("landscape", "vertical") else self.preset
        if preset == "landscape":
            return long, short
        if preset == "vertical":
            return short, long
        return self.width - self.width % 2, self.height - self.height % 2


class CaptionConfig(Section):
    font: str = Field("DejaVu Sans", description="font family for burned captions (must cover accents)")
    size_ratio: float = Field(0.055, gt=0, lt=0.5, description="font size as a fraction of video height")
    outline_ratio: float = Field(0.08, ge=0, description="outline width as a fraction of the font size")
    margin_ratio: float = Field(0.06, ge=0, lt=0.5, description="bottom margin as a fraction of video height")
    primary_colour: str = Field("#FFFFFF", description="text colour, #RRGGBB")
    outline_colour: str = Field("#000000", description="outline colour, #RRGGBB")
    bold: bool = Field(True, description="bold captions")
    style: Literal["plain", "word_highlight"] = Field(
        "plain", description="narration captions: plain, or word_highlight (karaoke: the spoken word lights up)"
    )
    highlight_colour: str = Field(
        "#FFD400", pattern=r"^#[0-9A-Fa-f]{6}$", description="word_highlight: colour of the spoken word, #RRGGBB"
    )
    max_line_chars: int = Field(42, ge=10, le=120, description="narration captions: characters per line at most")
    max_lines: int = Field(2, ge=1, le=4, description="narration captions: lines per caption at most")
    min_seconds: float = Field(1.0, ge=0.1, description="narration captions: least time on screen")
    max_seconds: float = Field(6.0, ge=1.0, description="narration captions: most time on screen")
    max_cps: float = Field(17.0, gt=0, description="narration captions: reading speed, characters per second")


class Img2VidConfig(Section):
    default_seconds: float = Field(8.0, gt=0, description="clip length for an image without audio")
    motion: str = Field("auto", description="zoom_in, zoom_out, pan_left, pan_right, pan_up, pan_down or auto")
    fit: Literal["cover", "fit"] = Field(
        "cover", description="another aspect: cover (crop to fill) or fit (on a blurred copy of itself)"
    )
    zoom: float = Field(1.15, ge=1.0, le=2.0, description="how far a zoom goes (1.15 = 15%)")


class AudioConfig(Section):
    loudness_lufs: float = Field(-16.0, le=0, description="integrated loudness target for published audio")
    true_peak_db: float = Field(-1.5, le=0, description="true-peak ceiling")
    addaudio_mode: Literal["replace", "mix"] = Field(
        "replace", description="addaudio: replace or mix over the original"
    )
    length: Literal["shortest", "pad", "loop"] = Field(
        "pad", description="addaudio when lengths differ: cut to shortest, pad video with last frame, or loop video"
    )
    duck_db: float = Field(-14.0, le=0, description="level of the original/music under a voice, in dB")
