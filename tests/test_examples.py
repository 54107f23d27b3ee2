"""The examples `make demo` drops cover every CPU route and all come out."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Env

from omad.brief import load_brief

REPO = Path(__file__).resolve().parent.parent


def test_agent_example_brief_is_valid() -> None:
    brief = load_brief(REPO / "examples-agent" / "abelhas" / "brief.yaml", 262144)
    assert brief.kind == "video" and not brief.scenes


@pytest.mark.slow
def test_demo_examples_all_publish(make_env: Callable[..., Env]) -> None:
    """GIVEN the examples/ folder dropped as `make demo` does (at a small frame size to keep CI quick)
    THEN every route publishes and nothing fails."""
    env = make_env(video={"preset": "custom", "width": 320, "height": 180, "fps": 15, "x264_preset": "ultrafast"})
    shutil.rmtree(env.inbox)
    shutil.copytree(REPO / "examples", env.inbox)
    assert env.once(max_wait=300) == 0
    # Sidecars only: a scene video also publishes X.post.json (the words to post it).
    routes = {env.sidecar(p.stem)["route"] for p in env.outbox.glob("*.json") if not p.name.endswith(".post.json")}
    assert routes == {"caption", "addaudio", "narrate", "img2vid", "video"}
    for name in ("palestra.mp4", "vinheta.mp4", "boas-vindas.wav", "boas-vindas.srt", "paisagem.mp4",
                 "lancamento.mp4", "lancamento.srt", "lancamento.jpg", "lancamento.post.json"):
        assert (env.outbox / name).stat().st_size > 0, name
