"""Only what changed is made again: each scene's voice is cached by what determines it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from conftest import Env

from omad.config import Config
from omad.storyboard.voice_cache import VoiceCache, voice_key
from omad.text.caption_layout import LayoutRules
from omad.tts import Voice

SMALL = {"preset": "custom", "width": 160, "height": 90, "fps": 5, "x264_preset": "ultrafast"}
SENTENCES = ["Primeira cena sobre abelhas.", "As abelhas fazem mel.", "Elas vivem em colmeias.",
             "Cada colmeia tem uma rainha.", "As operárias trabalham muito.", "Flores dão néctar.",
             "O mel é doce.", "Abelhas polinizam plantas.", "Sem elas não há frutas.", "Obrigado por assistir."]


def _brief(sentences: list[str]) -> str:
    scenes = [{"title": f"Cena {i + 1}", "narration": s} for i, s in enumerate(sentences)]
    return yaml.safe_dump({"version": 1, "kind": "video", "scenes": scenes}, allow_unicode=True)


def _voice_facts(env: Env, name: str) -> dict[str, Any]:
    stages = env.sidecar(name)["stages"]
    facts: dict[str, Any] = next(s for s in stages if s["name"] == "voice")["facts"]
    return facts


def test_an_edited_storyboard_dropped_again_synthesizes_only_the_changed_scene(
        make_env: Callable[..., Env]) -> None:
    """GIVEN a ten-scene video rendered once
    WHEN the same storyboard with one sentence edited is dropped again as a new brief
    THEN its voice stage synthesizes exactly one scene and takes the other nine from the state dir's cache,
    and the video has every scene's narration (its captions carry the edit)."""
    env = make_env(video=SMALL)
    (env.inbox / "abelhas.yaml").write_text(_brief(SENTENCES), encoding="utf-8")
    assert env.once(max_wait=180) == 0
    first = _voice_facts(env, "abelhas")
    assert first["voice_cache"] == {"made": 10, "from_job": 0, "from_state": 0}

    edited = list(SENTENCES)
    edited[4] = "As operárias trabalham o dia todo."
    (env.inbox / "abelhas2.yaml").write_text(_brief(edited), encoding="utf-8")
    assert env.once(max_wait=180) == 0
    second = _voice_facts(env, "abelhas2")
    assert second["voice_cache"] == {"made": 1, "from_job": 0, "from_state": 9}
    srt = (env.outbox / "abelhas2.srt").read_text(encoding="utf-8")
    assert "o dia todo" in srt and "Obrigado por assistir" in srt
    tts = next(s for s in env.sidecar("abelhas2")["stages"] if s["name"] == "voice")["facts"]["tts"]
    assert sum(1 for t in tts if t.get("cached")) == 9


def _key(cfg: Config, text: str, *, voice: Voice | None = None, frame: tuple[int, int] = (1920, 1080),
         written: str | None = None) -> str:
    return voice_key(spoken=text, written=written or text, engine="espeak", version="1.51", voice=voice,
                     language="pt-BR", config=cfg, layout=LayoutRules(), frame=frame)


def test_the_key_follows_what_shapes_the_voice_and_nothing_else() -> None:
    """GIVEN one narration
    WHEN its spacing, voice, frame, caption text or settings change
    THEN only the changes that shape its sound or captions give a new key."""
    cfg = Config()
    base = _key(cfg, "Olá, mundo.")
    assert _key(cfg, "Olá,   mundo. ") == base  # spacing normalises away
    assert _key(cfg, "Olá, mundo!") != base
    assert _key(cfg, "Olá, mundo.", voice=Voice(name="pt-br", speed=1.2)) != base
    assert _key(cfg, "Olá, mundo.", frame=(1080, 1920)) != base
    assert _key(cfg, "Olá, mundo.", written="Olá, mundo!") != base
    slower = cfg.model_copy(update={"tts": cfg.tts.model_copy(update={"sentence_pause_seconds": 0.9})})
    assert _key(slower, "Olá, mundo.") != base


def test_the_state_dir_cache_stays_within_its_bound(tmp_path: Path) -> None:
    """GIVEN a state-dir cache bounded to about two entries
    WHEN five scenes are stored
    THEN the least recently used go first and the total stays within the bound,
    while the job folder keeps every one of its own."""
    wav = tmp_path / "s.wav"
    wav.write_bytes(b"\0" * 4000)
    cache = VoiceCache(tmp_path / "job", tmp_path / "state", max_bytes=9000)
    for i in range(5):
        cache.put(f"{i:064x}", {"wav": "s.wav", "duration": 1.0}, wav)
    shared = sorted(p.stem for p in (tmp_path / "state" / "cache" / "voice").glob("*.json"))
    assert len(shared) == 2 and shared[-1] == f"{4:064x}"
    total = sum(p.stat().st_size for p in (tmp_path / "state" / "cache" / "voice").iterdir())
    assert total <= 9000
    assert len(list((tmp_path / "job" / "cache" / "voice").glob("*.json"))) == 5
    out = tmp_path / "got.wav"
    fresh = VoiceCache(tmp_path / "job2", tmp_path / "state", max_bytes=9000)
    assert fresh.get(f"{4:064x}", out) == {"wav": "s.wav", "duration": 1.0}
    assert out.read_bytes() == wav.read_bytes() and fresh.hits["state"] == 1
    assert fresh.get(f"{0:064x}", out) is None and fresh.misses == 1


def test_a_damaged_entry_is_a_miss(tmp_path: Path) -> None:
    """GIVEN a cache entry whose record was cut short
    WHEN it is looked up THEN it is a miss, not an error."""
    wav = tmp_path / "s.wav"
    wav.write_bytes(b"RIFF")
    cache = VoiceCache(tmp_path / "job", None, 0)
    cache.put("a" * 64, {"wav": "s.wav"}, wav)
    record = tmp_path / "job" / "cache" / "voice" / f"{'a' * 64}.json"
    record.write_text(json.dumps({"format": 1})[:5])
    assert cache.get("a" * 64, tmp_path / "x.wav") is None
