"""Pictures for scenes: the library index and search, the stock clients against the fake stock server,
the asset stage's order of sources, its fallbacks, privacy and guardrails (real files, real HTTP, real probes)."""

from __future__ import annotations

import json
import socket
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import make_video, photo
from fake_stock import FakeStock, StockItem
from PIL import Image

from omad.assets.base import Found, SourceUnavailable, Want
from omad.assets.library import LibraryIndex, stem, tokens, xmp_words
from omad.assets.stock import PEXELS_LICENCE, DownloadCache, make_site
from omad.brief import parse_brief
from omad.config import Config
from omad.stage import StageContext
from omad.stages.assets import ASSET_BRIEF, AssetStage, source_order


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """GIVEN a user's folders: tagged photos, one by folder name only, a clip, a broken file, a link out."""
    root = tmp_path / "Fotos"
    photo(root / "Natureza" / "Abelhas" / "IMG_0001.jpg")
    photo(root / "casa" / "DSC0002.jpg", keywords="colmeia;mel;honey", description="Uma colmeia de madeira")
    photo(root / "viagem" / "P1.jpg", (360, 640), subjects=("pôr do sol", "sunset"))
    make_video(root / "clips" / "ondas do mar.mp4", seconds=1.0, size="320x180", audio=False)
    (root / "quebrada.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    outside = photo(tmp_path / "secreto" / "abelha-secreta.jpg")
    (root / "link-abelha.jpg").symlink_to(outside)
    return root


def want(*keywords: str, description: str = "", kinds: tuple[Any, ...] = ("photo", "video"),
         size: tuple[int, int] = (320, 180)) -> Want:
    return Want(scene=0, description=description, keywords=keywords,
                orientation="landscape" if size[0] >= size[1] else "portrait", min_width=size[0],
                min_height=size[1], seconds=3.0, kinds=kinds)


# ---------------------------------------------------------------- words


def test_words_meet_across_accents_case_and_plurals() -> None:
    assert tokens("Abelhas NATIVAS") == tokens("abelha nativa") == ["abelha", "nativa"]
    assert stem("flores") == stem("flor") and stem("coracoes") == stem("coracao")
    assert tokens("Corações") == tokens("coração")
    assert stem("animais") == "animal" and stem("jardins") == "jardim" and stem("bees") == "bee"
    assert tokens("IMG_0001 de 2024") == []  # camera names, numbers and stop words say nothing


def test_xmp_is_read_without_expanding_entities() -> None:
    packet = (b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><x:xmpmeta>'
              b"<dc:title><rdf:Alt><rdf:li xml:lang='x-default'>Praia &amp; mar</rdf:li></rdf:Alt></dc:title>"
              b"<dc:subject><rdf:Bag><rdf:li>&b;</rdf:li><rdf:li>beach</rdf:li></rdf:Bag></dc:subject></x:xmpmeta>")
    assert xmp_words(packet) == ["Praia & mar", "&b;", "beach"]
    assert xmp_words(b"<dc:subject>" + b"a" * 300_000 + b"</dc:subject>") == []


# ---------------------------------------------------------------- library


def test_library_is_indexed_by_names_folders_exif_and_xmp(library: Path, tmp_path: Path) -> None:
    with LibraryIndex(tmp_path / "idx.sqlite", [library]) as index:
        report = index.scan()
        assert report.files == 5 and report.indexed == 5  # the link out of the folder is not followed
        assert report.broken and "quebrada.jpg" in report.broken[0]
        best = {w: index.search(want(w))[0][1].path.name for w in ("abelhas", "honey", "sunset", "mar")}
        assert best == {"abelhas": "IMG_0001.jpg", "honey": "DSC0002.jpg", "sunset": "P1.jpg",
                        "mar": "ondas do mar.mp4"}
        assert index.search(want("Colméias", "madeira"))[0][2] == ["colmeia", "madeira"]
        assert index.search(want("abelha", kinds=("video",))) == []
        assert index.search(want("secreta")) == [] and index.search(want("quebrada")) == []
        clip = index.search(want("ondas"))[0][1]
        assert clip.kind == "video" and clip.seconds == pytest.approx(1.0, abs=0.1)
        portrait = index.search(want("sunset", size=(180, 320)))[0][1]
        assert (portrait.width, portrait.height) == (360, 640)


def test_library_rescan_reads_only_what_changed(library: Path, tmp_path: Path) -> None:
    with LibraryIndex(tmp_path / "idx.sqlite", [library]) as index:
        index.scan()
        assert index.scan().indexed == 0
        photo(library / "casa" / "nova-flor.jpg")
        (library / "viagem" / "P1.jpg").unlink()
        again = index.scan()
        assert (again.indexed, again.removed) == (1, 1)
        assert index.search(want("flores"))[0][1].path.name == "nova-flor.jpg"
    # An unmounted folder is "not there now", never "everything deleted".
    moved = tmp_path / "elsewhere"
    library.rename(moved)
    with LibraryIndex(tmp_path / "idx.sqlite", [library]) as index:
        gone = index.scan()
        assert gone.removed == 0 and gone.missing_folders == [str(library)]
    moved.rename(library)
    with LibraryIndex(tmp_path / "idx.sqlite", [library]) as index:
        assert index.scan().indexed == 0


# ---------------------------------------------------------------- stock


@pytest.fixture
def stock(tmp_path: Path) -> Iterator[FakeStock]:
    with FakeStock() as fake:
        beach = photo(tmp_path / "stock" / "beach.jpg", (800, 450), colour=(20, 120, 200))
        tall = photo(tmp_path / "stock" / "tall.jpg", (450, 800))
        clip = make_video(tmp_path / "stock" / "waves.mp4", seconds=1.0, size="640x360", audio=False)
        fake.add(StockItem("pexels", "photo", 1001, {"praia", "beach"}, beach, 800, 450, "Ana Fotógrafa"))
        fake.add(StockItem("pexels", "photo", 1002, {"praia", "beach"}, tall, 450, 800))
        fake.add(StockItem("pexels", "video", 2001, {"ondas", "waves"}, clip, 640, 360, "Bruno", 1.0))
        fake.add(StockItem("pixabay", "photo", 3001, {"praia", "beach"}, beach, 800, 450, "carla"))
        fake.add(StockItem("pixabay", "video", 4001, {"ondas", "waves"}, clip, 640, 360, "davi", 1.0))
        (tmp_path / "stock" / "junk.jpg").write_bytes(b"<html>not a picture</html>")
        fake.add(StockItem("pixabay", "photo", 3002, {"lixo"}, tmp_path / "stock" / "junk.jpg", 800, 450))
        yield fake


def assets_config(tmp_path: Path, fake: FakeStock | None = None, **assets: Any) -> Config:
    stock_cfg: dict[str, Any] = {"timeout_seconds": 5}
    if fake is not None:
        stock_cfg.update(pexels_url=f"{fake.url}/pexels", pixabay_url=f"{fake.url}/pixabay",
                         pexels_key="pexels-test-key", pixabay_key="pixabay-test-key")
    stock_cfg.update(assets.pop("stock", {}))
    # The fake sites listen on loopback, which picture requests refuse unless the host is allowed by name.
    data = {"state_dir": str(tmp_path / "state"), "video": {"preset": "custom", "width": 320, "height": 180},
            "assets": {"stock": stock_cfg, "allow_hosts": ["127.0.0.1"], **assets}}
    return Config.model_validate(data)


class _Ctx:
    """What a stock site needs of a stage context: somewhere to warn."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def test_pexels_photo_is_found_downloaded_checked_cached_and_credited(stock: FakeStock, tmp_path: Path) -> None:
    cfg = assets_config(tmp_path, stock)
    cache = DownloadCache(tmp_path / "cache", 10**9)
    site = make_site("pexels", cfg.assets, cache)
    ctx: Any = _Ctx()
    found = site.find(want("praia", "beach"), ctx)
    assert found is not None and found.kind == "photo" and found.id == "1001"
    assert found.licence == PEXELS_LICENCE and found.author == "Ana Fotógrafa"
    assert found.credit == "Photo by Ana Fotógrafa on Pexels" and found.url == "https://www.pexels.com/photo/1001/"
    assert found.path.parent == tmp_path / "cache" / "pexels"
    with Image.open(found.path) as im:
        assert im.size == (800, 450)
    search = stock.searches("pexels")[0]
    assert search.headers["Authorization"] == "pexels-test-key" and search.query["orientation"] == "landscape"
    again = make_site("pexels", cfg.assets, cache).find(want("praia", "beach"), ctx)  # the next job
    assert again is not None and again.path == found.path
    assert len([r for r in stock.requests if "/files/" in r.path]) == 1  # downloaded once, by id
    clip = site.find(want("ondas", kinds=("video",)), ctx)
    assert clip is not None and clip.kind == "video" and clip.credit == "Video by Bruno on Pexels"
    site.close()


def test_pixabay_photos_and_clips_and_a_download_that_is_not_a_picture(stock: FakeStock, tmp_path: Path) -> None:
    cfg = assets_config(tmp_path, stock)
    site = make_site("pixabay", cfg.assets, DownloadCache(tmp_path / "cache", 10**9))
    ctx: Any = _Ctx()
    found = site.find(want("beach"), ctx)
    assert found is not None and found.credit == "Image by carla from Pixabay" and "Pixabay" in found.licence
    assert stock.searches("pixabay")[0].query["orientation"] == "horizontal"
    clip = site.find(want("waves", kinds=("video",)), ctx)
    assert clip is not None and clip.path.suffix == ".mp4"
    assert site.find(want("lixo"), ctx) is None
    assert any("pixabay photo 3002" in w and "not used" in w for w in ctx.warnings)
    assert not list((tmp_path / "cache" / "pixabay").glob("photo-3002*"))
    site.close()


@pytest.mark.parametrize(("status", "retry", "expected"), [
    (401, "", "the API key was rejected (HTTP 401)"),
    (403, "", "the API key was rejected (HTTP 403)"),
    (429, "120", "quota is spent (HTTP 429) (Retry-After: 120 s)"),
    (500, "", "answered HTTP 500"),
])
def test_stock_failures_are_clear_and_unavailable(stock: FakeStock, tmp_path: Path, status: int, retry: str,
                                                  expected: str) -> None:
    stock.fail("pexels", status, retry)
    site = make_site("pexels", assets_config(tmp_path, stock).assets, DownloadCache(tmp_path / "c", 10**9))
    with pytest.raises(SourceUnavailable) as err:
        site.find(want("praia"), _Ctx())  # type: ignore[arg-type]
    assert expected in err.value.message and err.value.message.startswith("pexels: ")
    assert "pexels-test-key" not in err.value.message


def test_pixabay_wrong_key_and_no_key_and_no_network(stock: FakeStock, tmp_path: Path) -> None:
    cfg = assets_config(tmp_path, stock, stock={"pixabay_key": "wrong-secret"})
    site = make_site("pixabay", cfg.assets, DownloadCache(tmp_path / "c", 10**9))
    with pytest.raises(SourceUnavailable, match=r"key was rejected \(HTTP 400\)") as err:
        site.find(want("beach"), _Ctx())  # type: ignore[arg-type]
    assert "wrong-secret" not in str(err.value)
    no_key = make_site("pexels", assets_config(tmp_path).assets, DownloadCache(tmp_path / "c", 10**9))
    with pytest.raises(SourceUnavailable, match=r"no API key.*OMAD_PEXELS_KEY"):
        no_key.find(want("beach"), _Ctx())  # type: ignore[arg-type]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    down = assets_config(tmp_path, stock, stock={"pixabay_url": f"http://127.0.0.1:{closed}"})
    site = make_site("pixabay", down.assets, DownloadCache(tmp_path / "c", 10**9))
    with pytest.raises(SourceUnavailable, match="cannot be reached") as err:
        site.find(want("beach"), _Ctx())  # type: ignore[arg-type]
    assert "pixabay-test-key" not in str(err.value)


def test_a_download_larger_than_the_cap_is_refused(stock: FakeStock, tmp_path: Path) -> None:
    stock.declare_oversize("pexels")
    cfg = assets_config(tmp_path, stock, stock={"max_download_mb": 5})
    ctx: Any = _Ctx()
    site = make_site("pexels", cfg.assets, DownloadCache(tmp_path / "c", 10**9))
    assert site.find(want("beach", kinds=("photo",)), ctx) is None
    assert any("max_download_mb" in w for w in ctx.warnings)
    assert not any((tmp_path / "c").rglob("*.jpg"))


def test_source_order_spells_out_stock_and_ends_with_a_title_card() -> None:
    assert source_order(["library", "stock", "generate", "title"], ["pexels", "pixabay"]) == [
        "library", "pexels", "pixabay", "generate", "title"]
    assert source_order(["pixabay", "title", "library"], ["pexels"]) == ["pixabay", "title"]
    assert source_order(["library"], ["pexels"]) == ["library", "title"]


def test_privacy_is_local_only_unless_a_key_is_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OMAD_PEXELS_KEY", raising=False)
    monkeypatch.delenv("OMAD_PIXABAY_KEY", raising=False)
    assert Config().assets.effective_privacy() == "local_only"
    monkeypatch.setenv("OMAD_PIXABAY_KEY", "k")
    assert Config().assets.effective_privacy() == "allow_remote"
    assert Config.model_validate({"assets": {"privacy": "local_only"}}).assets.effective_privacy() == "local_only"


# ---------------------------------------------------------------- the stage


SCENES = {
    "version": 1, "kind": "video", "name": "praia",
    "scenes": [
        {"narration": "As abelhas trabalham.", "keywords": ["abelhas", "bees"], "description": "abelhas numa flor"},
        {"narration": "A praia ao fim do dia.", "keywords": ["praia", "beach"]},
        {"narration": "As ondas do mar.", "keywords": ["ondas", "waves"]},
        {"narration": "Fale com joao@exemplo.com.", "keywords": ["joao@exemplo.com", "xyzzy"]},
        {"narration": "Sem palavras.", "title": "Só um título"},
    ],
}


def run_stage(tmp_path: Path, cfg: Config, scenes: dict[str, Any] | None = None,
              agents: bool = False) -> tuple[StageContext, Any]:
    bundle = tmp_path / "job" / "inputs"
    bundle.mkdir(parents=True, exist_ok=True)
    brief = bundle / "brief.yaml"
    brief.write_text(yaml.safe_dump(scenes or SCENES, allow_unicode=True), encoding="utf-8")
    work = tmp_path / "job"
    artifacts = {}
    if agents:
        (work / "scenes.yaml").write_text(brief.read_text(encoding="utf-8"), encoding="utf-8")
        artifacts["scene_brief"] = "scenes.yaml"
    ctx = StageContext(job_id="j1", route="agent-video" if agents else "video", name="praia", work=work,
                       inputs={"brief": brief}, options={}, config=cfg, lanes=None,  # type: ignore[arg-type]
                       artifacts=artifacts, stage="assets")
    stage = AssetStage()
    try:
        result = stage.run(ctx)
    finally:
        stage.cleanup(ctx)
    return ctx, result


def test_stage_asks_library_then_stock_then_gives_a_title_card(library: Path, stock: FakeStock,
                                                             tmp_path: Path) -> None:
    """GIVEN keywords on each scene, a library that has bees, stock that has a beach and waves
    THEN bees come from the library, the beach from Pexels, the waves from the library's own clip, the scene
    whose words hold an e-mail searches only the clean word (and finds nothing), the plain scene is left alone."""
    cfg = assets_config(tmp_path, stock, library={"folders": [str(library)]},
                        sources=["library", "stock", "generate", "title"])
    ctx, result = run_stage(tmp_path, cfg)
    facts = result.facts
    assert facts["privacy"] == "allow_remote" and facts["searched"] == 4
    by_index = {s["index"]: s for s in facts["scenes"]}
    assert by_index[0]["source"] == "library" and "abelha" in by_index[0]["why"]
    assert by_index[1]["source"] == "pexels" and by_index[1]["licence"] == PEXELS_LICENCE
    assert by_index[1]["fallbacks"] == [{"source": "library", "reason": "nothing matched"}]
    assert by_index[2]["source"] == "library" and by_index[2]["kind"] == "video"
    assert by_index[3]["source"] == "title"
    reasons = {f["source"]: f["reason"] for f in by_index[3]["fallbacks"]}
    assert "assets.generate.model_path" in reasons["generate"]  # no model configured: the next source
    assert facts["credits"] == ["Photo by Ana Fotógrafa on Pexels"]
    assert facts["library"]["broken"] == 1
    assert all("joao@exemplo.com" not in json.dumps(r.query) for r in stock.requests)
    assert {f["type"] for f in result.guardrail_findings} == {"email"}
    assert result.artifacts == {"scene_brief": ASSET_BRIEF}
    written = yaml.safe_load((ctx.work / ASSET_BRIEF).read_text())
    out = parse_brief(written, "scenes")
    assert out.scenes is not None
    s0, s1, s2, s3, s4 = out.scenes
    assert s0.image and s0.asset and s0.asset.source == "library" and (ctx.work / "assets" / s0.image).is_file()
    assert s1.image and s1.asset and s1.asset.author == "Ana Fotógrafa" and s1.asset.id == "1001"
    assert s2.clip and s2.asset and s2.asset.kind == "video" and not s2.image
    assert s3.image is None and s3.asset is None and s4.asset is None and s4.image is None
    assert (ctx.work / "assets" / s2.clip).stat().st_size == (library / "clips" / "ondas do mar.mp4").stat().st_size
    side = json.dumps(facts)
    assert "pexels-test-key" not in side and "pixabay-test-key" not in side


def test_local_only_sends_nothing_and_says_why(library: Path, stock: FakeStock, tmp_path: Path) -> None:
    cfg = assets_config(tmp_path, stock, library={"folders": [str(library)]}, privacy="local_only")
    _, result = run_stage(tmp_path, cfg)
    assert stock.requests == []
    beach = next(s for s in result.facts["scenes"] if s["index"] == 1)
    assert beach["source"] == "title"
    assert {"source": "pexels", "reason": "privacy: local_only (nothing is sent out)"} in beach["fallbacks"]
    assert result.facts["remote_requests"] == 0


def test_an_unavailable_site_is_asked_once_and_the_next_one_answers(library: Path, stock: FakeStock,
                                                                    tmp_path: Path) -> None:
    stock.fail("pexels", 429, "60")
    cfg = assets_config(tmp_path, stock, sources=["stock"])
    ctx, result = run_stage(tmp_path, cfg)
    by_index = {s["index"]: s for s in result.facts["scenes"]}
    assert by_index[1]["source"] == "pixabay" and by_index[1]["credit"] == "Image by carla from Pixabay"
    assert "Retry-After: 60" in by_index[1]["fallbacks"][0]["reason"]
    assert len(stock.searches("pexels")) == 1  # not asked again for the other scenes
    assert any("pexels: the request quota is spent" in w for w in ctx.warnings)


def test_a_scene_brief_dropped_again_gets_its_pictures_back_without_a_search(library: Path, stock: FakeStock,
                                                                            tmp_path: Path) -> None:
    """GIVEN the scene brief the asset stage wrote, with one scene swapped for the user's own image
    WHEN it is run again THEN the other pictures come back from the library and the cache, with no request."""
    cfg = assets_config(tmp_path, stock, library={"folders": [str(library)]})
    ctx, _ = run_stage(tmp_path, cfg)
    written = yaml.safe_load((ctx.work / ASSET_BRIEF).read_text())
    downloads = [r for r in stock.requests if "/files/" in r.path]
    beach_searches = [r for r in stock.requests if "beach" in json.dumps(r.query)]
    again = tmp_path / "again"
    again.mkdir()
    photo(again / "job" / "inputs" / "minha.jpg")
    written["scenes"][0]["image"] = "minha.jpg"  # the user's swap; its asset record is left in place
    ctx2, result = run_stage(again, cfg, written)
    assert [r for r in stock.requests if "/files/" in r.path] == downloads
    assert [r for r in stock.requests if "beach" in json.dumps(r.query)] == beach_searches
    assert result.facts["searched"] == 1  # only the scene that had found nothing is searched again
    out = parse_brief(yaml.safe_load((ctx2.work / ASSET_BRIEF).read_text()), "again")
    assert out.scenes is not None
    assert out.scenes[0].image == "minha.jpg" and out.scenes[0].asset is None
    assert out.scenes[1].asset and out.scenes[1].asset.source == "pexels"
    assert out.scenes[1].image and (ctx2.work / "assets" / out.scenes[1].image).is_file()


def test_agents_scenes_without_keywords_search_by_their_title(library: Path, tmp_path: Path) -> None:
    cfg = assets_config(tmp_path, library={"folders": [str(library)]}, sources=["library"])
    scenes = {"version": 1, "kind": "video", "scenes": [{"narration": "Oi.", "title": "Abelhas nativas"},
                                                        {"narration": "Tchau.", "title": "Fim"}]}
    ctx, result = run_stage(tmp_path, cfg, scenes, agents=True)
    assert [s["source"] for s in result.facts["scenes"]] == ["library", "title"]
    assert result.facts["scenes"][1]["fallbacks"] == [{"source": "library", "reason": "nothing matched"}]
    assert len(list((ctx.work / "assets").iterdir())) == 1


def test_a_site_gives_each_scene_another_picture_while_others_match(stock: FakeStock, tmp_path: Path) -> None:
    stock.add(StockItem("pexels", "photo", 1003, {"praia"}, tmp_path / "stock" / "beach.jpg", 800, 450))
    site = make_site("pexels", assets_config(tmp_path, stock).assets, DownloadCache(tmp_path / "c", 10**9))
    ctx: Any = _Ctx()
    picks = [site.find(want("praia", kinds=("photo",)), ctx) for _ in range(3)]
    ids = [p.id for p in picks if p is not None]
    assert ids[:2] == ["1001", "1003"] and ids[2] in ("1001", "1003")
    site.close()


class _TestGenerateSource:
    """A test's own ``generate`` source (not omad's): it draws a real JPEG, where it is told to."""

    name = "generate"
    remote = False

    def __init__(self) -> None:
        self.outside: Path | None = None

    def find(self, want: Want, ctx: StageContext) -> Found | None:
        from omad.assets.base import asset_dir

        target = self.outside or asset_dir(ctx) / f"generated-{want.scene}.jpg"
        photo(target, (320, 180))
        return Found(path=target, kind="photo", source="generate", why=f"made from '{want.description}'",
                     id="tiny-model")


@pytest.mark.parametrize("outside", [False, True])
def test_generate_is_looked_up_by_name_and_its_file_must_be_in_work_assets(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, outside: bool) -> None:
    made: list[_TestGenerateSource] = []

    def factory() -> _TestGenerateSource:
        made.append(_TestGenerateSource())
        if outside:
            made[-1].outside = tmp_path / "elsewhere" / "x.jpg"
        return made[-1]

    module = types.ModuleType("omad.assets.generate")
    module.GenerateSource = factory  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "omad.assets.generate", module)
    cfg = assets_config(tmp_path, sources=["generate"], privacy="local_only")
    scenes = {"version": 1, "kind": "video",
              "scenes": [{"narration": "Oi.", "description": "um farol à noite", "keywords": ["farol"]}]}
    ctx, result = run_stage(tmp_path, cfg, scenes)
    (choice,) = result.facts["scenes"]
    assert len(made) == 1
    if outside:
        assert choice["source"] == "title"
        assert "outside the folders this source may use" in choice["fallbacks"][0]["reason"]
    else:
        assert choice["source"] == "generate" and choice["why"] == "made from 'um farol à noite'"
        out = parse_brief(yaml.safe_load((ctx.work / ASSET_BRIEF).read_text()), "x")
        assert out.scenes is not None and out.scenes[0].image == "generated-0.jpg"
