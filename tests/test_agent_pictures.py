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
                   assets={"privacy": privacy, "library": {"folders": [str(library)]},
                           "stock": {"pexels_url": f"{stock.url}/pexels", "pexels_key": KEY,
                                     "providers": ["pexels"]}})
    (env.inbox / "natureza.yaml").write_text(BRIEF, encoding="utf-8")
    assert env.once(max_wait=120) == 0
    side = env.sidecar("natureza")
    assert [s["name"] for s in side["stages"]] == ["plan", "assets", "voice", "render"]
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
    assert side2["route"] == "video" and [s["name"] for s in side2["stages"]] == ["assets", "voice", "render"]
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
