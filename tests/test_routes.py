"""Every route from a drop to a finished file, with real ffmpeg and espeak-ng, checked with ffprobe."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import Env, ffmpeg, make_audio, make_image, make_video

import omad.media.audio
from omad.media.ffmpeg import probe
from omad.media.subtitles import read_srt

SMALL = {"preset": "custom", "width": 320, "height": 180, "fps": 15, "x264_preset": "ultrafast"}


def loudness(path: Path) -> float:
    out = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-af", "ebur128", "-f", "null", "-"],
                         capture_output=True, text=True).stderr
    return float(re.findall(r"I:\s+(-?[\d.]+) LUFS", out)[-1])


@pytest.fixture
def small(make_env: Callable[..., Env]) -> Env:
    return make_env(video=SMALL, img2vid={"default_seconds": 2.0})


def test_text_becomes_wav_and_srt_timed_to_it(small: Env) -> None:
    """GIVEN a pt-BR .txt with numbers, money and a CPF
    THEN a loudness-normalised WAV and an SRT timed to it come out; the CPF is spoken and captioned redacted."""
    (small.inbox / "aviso.txt").write_text(
        "Bom dia! O ingresso custa R$ 12,50 no dia 25/12.\nMeu CPF é 529.982.247-25, anote.", encoding="utf-8")
    assert small.once() == 0
    wav, srt = small.outbox / "aviso.wav", small.outbox / "aviso.srt"
    info = probe(wav)
    assert info.audio is not None and info.audio["codec_name"] == "pcm_s16le"
    cues, _ = read_srt(srt, "aviso.srt")
    assert [c.text for c in cues][0] == "Bom dia!"
    # The last caption goes when the voice stops, not after the engine's trailing silence.
    assert info.duration is not None and info.duration - 0.6 < cues[-1].end <= info.duration + 0.01
    assert all(a.end <= b.start for a, b in zip(cues, cues[1:], strict=False))
    text = srt.read_text()
    assert "R$ 12,50" in text and "529.982.247-25" not in text and "CPF removido" in text
    assert loudness(wav) == pytest.approx(-16.0, abs=1.0)
    side = small.sidecar("aviso")
    assert side["guardrail_findings"][0]["type"] == "cpf"
    assert "529.982.247" not in (small.outbox / "aviso.json").read_text()


@pytest.mark.parametrize("text", ["", "   \n", "🎉🎉 👍"])
def test_text_with_nothing_to_say_fails_with_a_message(small: Env, text: str) -> None:
    (small.inbox / "vazio.txt").write_text(text, encoding="utf-8")
    assert small.once() == 1
    err = small.failed_error("vazio")
    assert err["message"].startswith("vazio.txt: ") and err["error"]["kind"] == "input"


def test_image_alone_becomes_a_clip_of_the_default_length(small: Env) -> None:
    make_image(small.inbox / "foto.jpg", "640x480")
    assert small.once() == 0
    info = probe(small.outbox / "foto.mp4")
    assert (info.width, info.height) == (320, 180)
    assert info.fps == pytest.approx(15)
    assert info.duration == pytest.approx(2.0, abs=0.1)
    assert info.audio is None
    assert small.sidecar("foto")["stages"][0]["facts"]["motion"] in (
        "zoom_in", "zoom_out", "pan_left", "pan_right", "pan_up", "pan_down")


def _loudnorm_measurements(monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> list[Path]:
    """The files ``module``'s ``measure_loudness`` (loudnorm's first pass) is asked to measure, from now on."""
    measured: list[Path] = []
    real_measure = module.measure_loudness

    def _measure(path: Path, **kw: Any) -> dict[str, Any]:
        measured.append(path)
        result: dict[str, Any] = real_measure(path, **kw)
        return result

    monkeypatch.setattr(module, "measure_loudness", _measure)
    return measured


@pytest.mark.parametrize("held", [True, False], ids=["numpy", "too-long-for-numpy"])
def test_image_with_audio_lasts_as_long_as_the_audio(small: Env, monkeypatch: pytest.MonkeyPatch, held: bool) -> None:
    """GIVEN an image and a recording THEN a clip as long as the recording, its sound at the loudness target:
    normalised in numpy, or (a recording longer than numpy holds) measured by loudnorm and encoded through its
    gain."""
    if not held:
        monkeypatch.setattr(omad.media.audio, "SOUNDTRACK_MAX_FRAMES", 48000)
    measured = _loudnorm_measurements(monkeypatch, omad.media.audio)
    make_image(small.inbox / "capa.png", "300x300")
    make_audio(small.inbox / "capa.mp3", seconds=3.2)
    assert small.once() == 0
    assert [p.name for p in measured] == ([] if held else ["audio.wav"])  # the recording, decoded
    info = probe(small.outbox / "capa.mp4")
    assert info.audio is not None
    assert info.duration == pytest.approx(3.2, abs=0.15)
    assert loudness(small.outbox / "capa.mp4") == pytest.approx(-16.0, abs=1.0)


def test_not_an_image_fails_naming_the_file(small: Env) -> None:
    (small.inbox / "falso.jpg").write_text("isto não é uma imagem")
    assert small.once() == 1
    assert small.failed_error("falso")["message"].startswith("falso.jpg: ")


@pytest.mark.parametrize(
    "mode,length,video_s,audio_s,expected",
    [
        ("replace", "pad", 1.0, 2.0, 2.0),
        ("replace", "shortest", 2.0, 1.0, 1.0),
        ("mix", "pad", 2.0, 1.0, 2.0),
        ("replace", "loop", 1.0, 2.5, 2.5),
    ],
)
def test_video_gets_a_new_soundtrack(make_env: Callable[..., Env], mode: str, length: str, video_s: float,
                                     audio_s: float, expected: float) -> None:
    env = make_env(audio={"addaudio_mode": mode, "length": length})
    make_video(env.inbox / "clipe.mp4", seconds=video_s)
    make_audio(env.inbox / "clipe.wav", seconds=audio_s, freq=550)
    assert env.once() == 0
    info = probe(env.outbox / "clipe.mp4")
    assert info.audio is not None and info.video is not None
    assert info.duration == pytest.approx(expected, abs=0.15)
    assert loudness(env.outbox / "clipe.mp4") == pytest.approx(-16.0, abs=1.0)
    facts = env.sidecar("clipe")["stages"][0]["facts"]
    assert facts["length_policy"] == length


def test_a_new_soundtrack_too_long_for_numpy_goes_through_loudnorm(make_env: Callable[..., Env],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN a soundtrack longer than omad holds in numpy (the limit lowered to a second) THEN the mix is measured
    by loudnorm and encoded through its second pass, as before, and lands on the target."""
    monkeypatch.setattr(omad.media.audio, "SOUNDTRACK_MAX_FRAMES", 48000)
    measured = _loudnorm_measurements(monkeypatch, omad.media.audio)
    env = make_env(audio={"addaudio_mode": "mix", "length": "pad"})
    make_video(env.inbox / "clipe.mp4", seconds=2.0)
    make_audio(env.inbox / "clipe.wav", seconds=1.5, freq=550)
    assert env.once() == 0
    assert [p.name for p in measured] == ["soundtrack.wav"]
    assert loudness(env.outbox / "clipe.mp4") == pytest.approx(-16.0, abs=1.0)
    assert float(env.sidecar("clipe")["stages"][0]["facts"]["loudness"]["measured_lufs"]) < -16.0


def test_audio_over_the_limit_is_refused(make_env: Callable[..., Env]) -> None:
    env = make_env(intake={"max_audio_seconds": 1.0})
    make_video(env.inbox / "longo.mp4", seconds=1.0)
    make_audio(env.inbox / "longo.wav", seconds=2.0)
    assert env.once() == 1
    msg = env.failed_error("longo")["message"]
    assert "longo.wav" in msg and "intake.max_audio_seconds" in msg


def _bundle(env: Env, name: str, brief: str, files: dict[str, Callable[[Path], object]]) -> Path:
    folder = env.root / "staging" / name
    folder.mkdir(parents=True)
    for fname, make in files.items():
        make(folder / fname)
    (folder / "brief.yaml").write_text(brief, encoding="utf-8")
    folder.rename(env.inbox / name)
    return env.inbox / name


def test_scene_brief_becomes_narrated_captioned_video_with_poster(small: Env) -> None:
    """GIVEN a bundle with a scene brief: a title card, an image scene with a title, background music
    THEN the outbox has X.mp4 (narration, captions), X.srt and a poster X.jpg."""
    brief = """
version: 1
kind: video
name: promo
music: trilha.mp3
scenes:
  - title: "Coração de Ação"
    narration: "Olá a todos. Vamos começar."
    background: "#2a4d69"
  - image: foto.jpg
    title: Paisagem
    narration: "Uma imagem com movimento."
    motion: pan_right
"""
    _bundle(small, "promo-pasta", brief, {
        "foto.jpg": lambda p: make_image(p, "800x450"),
        "trilha.mp3": lambda p: make_audio(p, seconds=2.0, freq=220),
    })
    assert small.once(max_wait=120) == 0
    out = small.outbox / "promo.mp4"
    info = probe(out)
    assert (info.width, info.height) == (320, 180) and info.audio is not None
    cues, _ = read_srt(small.outbox / "promo.srt", "promo.srt")
    assert [c.text for c in cues] == ["Olá a todos.", "Vamos começar.", "Uma imagem com movimento."]
    assert info.duration == pytest.approx(cues[-1].end + 0.6, abs=0.6)
    assert probe(small.outbox / "promo.jpg").width == 320
    side = small.sidecar("promo")
    assert [s["name"] for s in side["stages"]] == ["assets", "voice", "render", "post"]
    render = side["stages"][2]["facts"]
    assert [s["kind"] for s in render["scenes"]] == ["title", "image"] and render["music"] is True
    assert loudness(out) == pytest.approx(-16.0, abs=1.0)


def test_scene_naming_a_missing_asset_fails_naming_it(small: Env) -> None:
    brief = "version: 1\nkind: video\nscenes:\n  - image: nao-existe.png\n    narration: Oi.\n"
    _bundle(small, "faltando", brief, {})
    assert small.once() == 1
    msg = small.failed_error("faltando")["message"]
    assert "nao-existe.png" in msg and "scenes[0].image" in msg and "brief.yaml" in msg


def test_path_escaping_the_bundle_is_refused(small: Env) -> None:
    (small.inbox / "segredo.jpg").write_bytes(b"x")
    brief = "version: 1\nkind: video\nscenes:\n  - image: ../segredo.jpg\n    narration: Oi.\n"
    _bundle(small, "fuga", brief, {})
    assert small.once() == 1
    assert "outside the brief's folder" in small.failed_error("fuga")["message"]


def test_root_brief_claims_the_files_it_names(small: Env) -> None:
    """A brief in the inbox root takes the files it names; they are not processed alone."""
    make_video(small.inbox / "bruto.mp4", seconds=1.0)
    make_audio(small.inbox / "voz.wav", seconds=1.5)
    (small.inbox / "pedido.yaml").write_text(
        "version: 1\nkind: addaudio\nvideo: bruto.mp4\naudio: voz.wav\nmode: replace\nlength: shortest\n")
    assert small.once() == 0
    assert probe(small.outbox / "pedido.mp4").duration == pytest.approx(1.0, abs=0.15)
    assert list(small.inbox.iterdir()) == []
    assert len(small.daemon().journal.jobs()) == 1


def test_narrate_brief_with_inline_text_and_voice(small: Env) -> None:
    (small.inbox / "fala.json").write_text(
        '{"version": 1, "kind": "narrate", "text": "Teste de voz.", "voice": {"name": "pt-br"}}')
    assert small.once() == 0
    assert probe(small.outbox / "fala.wav").duration > 0.3


def test_img2vid_brief_options(small: Env) -> None:
    make_image(small.inbox / "quadro.png", "500x500")
    (small.inbox / "quadro-v.yaml").write_text(
        "version: 1\nkind: img2vid\nimage: quadro.png\nseconds: 1.5\nmotion: zoom_out\nfit: fit\n")
    assert small.once() == 0
    info = probe(small.outbox / "quadro-v.mp4")
    assert info.duration == pytest.approx(1.5, abs=0.1)
    assert small.sidecar("quadro-v")["stages"][0]["facts"]["motion"] == "zoom_out"


def test_video_brief_vertical_format_from_config(make_env: Callable[..., Env]) -> None:
    env = make_env(video={"preset": "custom", "width": 180, "height": 320, "fps": 10, "x264_preset": "ultrafast"})
    (env.inbox / "v.yaml").write_text("version: 1\nkind: video\nscenes:\n  - title: Só um título\n    duration: 1\n")
    assert env.once() == 0
    info = probe(env.outbox / "v.mp4")
    assert (info.width, info.height) == (180, 320)
    assert info.duration == pytest.approx(3.0, abs=0.3)  # a silent scene lasts 3 s unless told longer


def test_corrupt_audio_in_addaudio_is_an_input_error(small: Env) -> None:
    make_video(small.inbox / "x.mp4", seconds=1.0)
    (small.inbox / "x.mp3").write_bytes(b"ID3" + b"\x00" * 100)
    assert small.once() == 1
    assert small.failed_error("x")["message"].startswith("x.mp3: ")


def test_ffmpeg_test_helper_is_real() -> None:
    """Guard for the fixtures themselves: they make real, decodable media."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = make_video(Path(d) / "a.mp4", seconds=0.5)
        ffmpeg("-i", str(p), "-f", "null", "-")
        assert probe(p).duration == pytest.approx(0.5, abs=0.1)


def test_brief_voice_speed_changes_the_pace(small: Env) -> None:
    text = "Uma frase de teste para medir o ritmo da fala, com várias palavras."
    (small.inbox / "lento.yaml").write_text(f"version: 1\nkind: narrate\ntext: {text}\nvoice: {{speed: 0.6}}\n")
    (small.inbox / "rapido.yaml").write_text(f"version: 1\nkind: narrate\ntext: {text}\nvoice: {{speed: 1.6}}\n")
    assert small.once() == 0
    slow, fast = probe(small.outbox / "lento.wav").duration, probe(small.outbox / "rapido.wav").duration
    assert slow is not None and fast is not None and slow > 2 * fast
