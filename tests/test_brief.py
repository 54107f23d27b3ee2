"""Briefs are validated strictly: unknown keys listed, aliases bombs refused, paths kept in the bundle."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Env

from omad.brief import NarrateBrief, VideoBrief, load_brief, resolve_asset
from omad.errors import InputError


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_unknown_key_is_refused_with_the_allowed_ones(tmp_path: Path) -> None:
    p = write(tmp_path, "b.yaml", "version: 1\nkind: narrate\ntext: oi\nvoz: pt-br\n")
    with pytest.raises(InputError) as exc:
        load_brief(p, 262144)
    msg = str(exc.value)
    assert msg.startswith("b.yaml: ") and "unknown key 'voz'" in msg and "voice" in msg and "text_file" in msg


def test_unknown_nested_key_lists_the_nested_allowed_keys(tmp_path: Path) -> None:
    p = write(tmp_path, "b.yaml", "version: 1\nkind: video\nscenes:\n  - narration: oi\n    imagem: a.jpg\n")
    with pytest.raises(InputError) as exc:
        load_brief(p, 262144)
    assert "scenes.0.imagem" in str(exc.value) and "image" in str(exc.value) and "motion" in str(exc.value)


def test_alias_bomb_is_refused_not_expanded(tmp_path: Path) -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]")
    p = write(tmp_path, "bomb.yaml", "\n".join(lines) + "\nkind: narrate\n")
    with pytest.raises(InputError) as exc:
        load_brief(p, 262144)
    assert "alias" in str(exc.value)


def test_oversized_brief_is_refused(tmp_path: Path) -> None:
    p = write(tmp_path, "big.yaml", "version: 1\nkind: narrate\ntext: '" + "a" * 5000 + "'\n")
    with pytest.raises(InputError) as exc:
        load_brief(p, 1000)
    assert "intake.max_brief_bytes" in str(exc.value)


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("- a\n- b\n", "must be a mapping"),
        ("version: 1\n", "has no 'kind'"),
        ("version: 1\nkind: podcast\n", "'kind' must be one of"),
        ("version: 2\nkind: narrate\ntext: a\n", "version"),
        ("version: 1\nkind: video\n", "needs 'scenes'"),
        ("version: 1\nkind: narrate\n", "needs 'text'"),
        ("kind: [unclosed\n", "not valid YAML"),
        ("version: 1\nkind: video\nscenes:\n  - motion: spin\n", "motion"),
    ],
)
def test_bad_briefs_say_what_is_wrong(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(InputError) as exc:
        load_brief(write(tmp_path, "x.yaml", text), 262144)
    assert fragment in str(exc.value)


def test_json_brief_and_bom(tmp_path: Path) -> None:
    p = tmp_path / "b.json"
    p.write_bytes('\ufeff{"version": 1, "kind": "narrate", "text": "Olá"}'.encode())
    assert isinstance(load_brief(p, 262144), NarrateBrief)
    p2 = write(tmp_path, "c.json", '{"version": 1, "kind": "narrate", "text": }')
    with pytest.raises(InputError, match="not valid JSON"):
        load_brief(p2, 262144)


def test_prompt_only_video_brief_is_an_agent_brief(tmp_path: Path) -> None:
    b = load_brief(write(tmp_path, "a.yaml", "version: 1\nkind: video\nprompt: Um vídeo sobre abelhas\n"), 262144)
    assert isinstance(b, VideoBrief) and b.is_agent


def test_asset_paths_stay_in_the_bundle(tmp_path: Path) -> None:
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "ok.jpg").write_bytes(b"x")
    (tmp_path / "outside.jpg").write_bytes(b"x")
    assert resolve_asset(tmp_path / "bundle", "ok.jpg", "brief.yaml", "image").name == "ok.jpg"
    for bad in ("../outside.jpg", "/etc/passwd", "~/x.jpg"):
        with pytest.raises(InputError):
            resolve_asset(tmp_path / "bundle", bad, "brief.yaml", "image")
    (tmp_path / "bundle" / "link.jpg").symlink_to(tmp_path / "outside.jpg")
    with pytest.raises(InputError, match="outside"):
        resolve_asset(tmp_path / "bundle", "link.jpg", "brief.yaml", "image")


def test_bundle_without_brief_is_quarantined(make_env: Callable[..., Env]) -> None:
    env = make_env()
    staging = env.root / "fotos"
    staging.mkdir()
    (staging / "a.jpg").write_bytes(b"x")
    staging.rename(env.inbox / "fotos")
    assert env.once() == 1
    err = env.failed_error("fotos")
    assert "brief.yaml" in err["message"]
    assert (env.outbox / "failed" / "fotos" / "fotos" / "a.jpg").exists()
