"""A prompt-only agent video gets its pictures through the daemon: the user's library where the planner's
keywords match, stock (the fake Pexels) where not, title cards otherwise; with local_only nothing leaves."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Env, photo
from fake_ollama import FakeOllama, Reply
from fake_stock import FakeStock, StockItem

SMALL = {"preset": "custom", "width": 320, "height": 180, "fps": 10, "x264_preset": "ultrafast"}
KEY = "pexels-test-key"
BRIEF = """
version: 1
kind: video
name: natureza
prompt: "Três cenas curtas: abelhas, uma praia e algo que ninguém tem."
duration_seconds: 9
"""
VISUAL = {"scenes": [
    {"scene": 1, "asset": "", "motion": "zoom_in", "description": "abelhas numa flor", "keywords": ["abelha", "bee"]},
    {"scene": 2, "asset": "", "motion": "pan_left", "description": "uma praia", "keywords": ["praia", "beach"]},
    {"scene": 3, "asset": "", "motion": "zoom_out", "description": "", "keywords": ["xyzzy", "plugh"]},
]}


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[FakeOllama, FakeStock]]:
    with FakeOllama() as ollama, FakeStock(pexels_key=KEY) as stock:
        beach = photo(tmp_path / "stock" / "beach.jpg", (640, 360), colour=(20, 120, 200))
        stock.add(StockItem("pexels", "photo", 1001, {"praia", "beach"}, beach, 640, 360, "Ana Fotógrafa"))
        ollama.queue("gemma2:2b", Reply.json(VISUAL))
        yield ollama, stock


def run(make_env: Callable[..., Env], servers: tuple[FakeOllama, FakeStock], tmp_path: Path,
        privacy: str) -> tuple[Env, dict[str, Any]]:
    ollama, stock = servers
    library = tmp_path / "Fotos"
    photo(library / "Natureza" / "Abelhas" / "IMG_0001.jpg", (640, 360), colour=(230, 200, 30))
    env = make_env(video=SMALL, llm={"host": ollama.url},
                   assets={"privacy": privacy, "library": {"folders": [str(library)]}, "allow_hosts": ["127.0.0.1"],
                           "stock": {"pexels_url": f"{stock.url}/pexels", "pexels_key": KEY,
                                     "providers": ["pexels"]}})
    (env.inbox / "natureza.yaml").write_text(BRIEF, encoding="utf-8")
    assert env.once(max_wait=120) == 0
    side = env.sidecar("natureza")
    assert [s["name"] for s in side["stages"]] == ["plan", "assets", "voice", "render", "post"]
    return env, side


def test_library_then_stock_then_title_card_with_licences_in_the_sidecar(
        make_env: Callable[..., Env], servers: tuple[FakeOllama, FakeStock], tmp_path: Path) -> None:
    """GIVEN a library with a photo in a folder called Abelhas and a stock site with a beach
    WHEN a prompt-only brief is dropped THEN scene 1 shows the library photo, scene 2 the Pexels photo
    (licence, author and credit recorded), scene 3 a title card, and the published scene brief says so."""
    env, side = run(make_env, servers, tmp_path, "allow_remote")
    assets = side["stages"][1]["facts"]
    assert [s["source"] for s in assets["scenes"]] == ["library", "pexels", "title"]
    beach = assets["scenes"][1]
    assert beach["author"] == "Ana Fotógrafa" and "Pexels License" in beach["licence"]
    assert beach["url"] == "https://www.pexels.com/photo/1001/"
    assert assets["credits"] == ["Photo by Ana Fotógrafa on Pexels"]
    render = side["stages"][3]["facts"]
    assert [s["kind"] for s in render["scenes"]] == ["image", "image", "title"]
    assert [s.get("source") for s in render["scenes"]] == ["library", "pexels", None]
    scenes = yaml.safe_load((env.outbox / "natureza.scenes.yaml").read_text())["scenes"]
    assert scenes[0]["asset"]["source"] == "library" and scenes[0]["image"].startswith("scene00-library")
    assert scenes[1]["asset"]["licence"].startswith("Pexels License") and "asset" not in scenes[2]
    texts = [p.read_text(errors="replace") for p in env.outbox.rglob("*") if p.suffix in (".json", ".yaml", ".jsonl")]
    assert texts and all(KEY not in t for t in texts)

    # AND WHEN the published scene brief is dropped again (renamed), it renders with the same pictures,
    # brought back from the library and the download cache: nothing is downloaded again.
    _, stock = servers
    downloads = [r for r in stock.requests if "/files/" in r.path]
    again = yaml.safe_load((env.outbox / "natureza.scenes.yaml").read_text())
    again["name"] = "natureza-de-novo"
    (env.inbox / "de-novo.yaml").write_text(yaml.safe_dump(again, allow_unicode=True), encoding="utf-8")
    assert env.once(max_wait=120) == 0
    side2 = env.sidecar("natureza-de-novo")
    assert side2["route"] == "video" and [s["name"] for s in side2["stages"]] == ["assets", "voice", "render", "post"]
    assert side2["stages"][0]["facts"]["searched"] == 1  # only the title-card scene is searched for again
    assert [s.get("source") for s in side2["stages"][2]["facts"]["scenes"]] == ["library", "pexels", None]
    assert [r for r in stock.requests if "/files/" in r.path] == downloads


def test_local_only_sends_no_request_and_records_why(
        make_env: Callable[..., Env], servers: tuple[FakeOllama, FakeStock], tmp_path: Path) -> None:
    _, stock = servers
    _, side = run(make_env, servers, tmp_path, "local_only")
    assert stock.requests == []
    assets = side["stages"][1]["facts"]
    assert assets["privacy"] == "local_only"
    assert [s["source"] for s in assets["scenes"]] == ["library", "title", "title"]
    why = {"source": "pexels", "reason": "privacy: local_only (nothing is sent out)"}
    assert why in assets["scenes"][1]["fallbacks"]


@pytest.mark.slow
@pytest.mark.images
def test_a_stock_clip_is_looped_and_cropped_and_a_generated_picture_fills_the_rest(
        make_env: Callable[..., Env], tmp_path: Path) -> None:
    """GIVEN a library photo for scene 1, only a 4:3 one-second stock *clip* for scene 2, and a local image model
    WHEN a prompt-only brief is dropped THEN scene 2 shows the clip looped over the scene and cropped to fill the
    16:9 frame (its red and blue bands at top and bottom cut away), scene 3 a generated picture, and the sidecar
    names each source with its licence."""
    import importlib.util
    import subprocess

    if not all(importlib.util.find_spec(m) for m in ("torch", "diffusers", "transformers")):
        pytest.skip("omad[images] extra not installed")
    from diffusers_tiny import build_tiny_pipeline

    from omad.media.ffmpeg import probe

    model = build_tiny_pipeline(tmp_path / "models" / "tiny-turbo")
    clip = tmp_path / "stock" / "praia.mp4"
    clip.parent.mkdir(parents=True)
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=c=0x00c000:s=400x300:r=25:d=1",
                    "-vf", "drawbox=x=0:y=0:w=400:h=30:c=red:t=fill,drawbox=x=0:y=270:w=400:h=30:c=blue:t=fill",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(clip)], check=True)
    with FakeOllama() as ollama, FakeStock(pexels_key=KEY) as stock:
        stock.add(StockItem("pexels", "video", 2002, {"praia", "beach"}, clip, 400, 300, "Bia Cinegrafista",
                            seconds=1.0))
        ollama.queue("gemma2:2b", Reply.json(VISUAL))
        library = tmp_path / "Fotos"
        photo(library / "Natureza" / "Abelhas" / "IMG_0001.jpg", (640, 360), colour=(230, 200, 30))
        env = make_env(video=SMALL, llm={"host": ollama.url}, assets={
            "privacy": "allow_remote", "library": {"folders": [str(library)]}, "allow_hosts": ["127.0.0.1"],
            "stock": {"pexels_url": f"{stock.url}/pexels", "pexels_key": KEY, "providers": ["pexels"]},
            "generate": {"model_path": str(model), "width": 64, "height": 64, "device": "cpu"}})
        (env.inbox / "natureza.yaml").write_text(BRIEF + "captions: false\n", encoding="utf-8")
        assert env.once(max_wait=240) == 0
    side = env.sidecar("natureza")
    stages = {s["name"]: s["facts"] for s in side["stages"]}
    assert [s["source"] for s in stages["assets"]["scenes"]] == ["library", "pexels", "generate"]
    assert stages["assets"]["scenes"][1]["kind"] == "video" and stages["assets"]["scenes"][1]["author"] == \
        "Bia Cinegrafista"
    assert stages["assets"]["scenes"][2]["licence"]
    render = stages["render"]["scenes"]
    assert [s["kind"] for s in render] == ["image", "clip", "image"]
    assert render[1]["fit"] == "cover" and render[1]["looped"] and render[1]["clip_audio"] in ("mute", "none")
    out = env.outbox / "natureza.mp4"
    info = probe(out)
    assert info.video is not None and (int(info.video["width"]), int(info.video["height"])) == (320, 180)
    # The middle of scene 2: the clip's green fills the frame, the bands at top and bottom are cropped away.
    middle = render[0]["seconds"] + render[1]["seconds"] / 2
    frame = subprocess.run(["ffmpeg", "-v", "error", "-ss", f"{middle:.2f}", "-i", str(out), "-frames:v", "1",
                            "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    assert len(frame) == 320 * 180 * 3

    def pixel(x: int, y: int) -> tuple[int, int, int]:
        i = (y * 320 + x) * 3
        return frame[i], frame[i + 1], frame[i + 2]

    for x, y in ((5, 3), (160, 3), (315, 3), (5, 176), (160, 176), (315, 176), (160, 90)):
        r, g, b = pixel(x, y)
        assert g > 150 and r < 80 and b < 80, ((x, y), (r, g, b))
