"""The ``stability`` source: pictures from Stability AI's API with the user's key, over real HTTP to a fake.

The fake (``tests/fake_stability.py``) is a local HTTP server speaking the request omad sends;
each test checks what reached it, and every refusal becomes SourceUnavailable with a message
a person can act on, so the asset stage falls back to the next source.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_stability import KEY, FakeStability, Scripted
from PIL import Image

from omad.assets.base import SourceUnavailable, Want
from omad.assets.stability import KEY_ENV, StabilitySource
from omad.config import Config, load_config
from omad.errors import GuardrailBlocked
from omad.guardrails import Guardrails, GuardrailsFile
from omad.lanes import Lanes
from omad.stage import StageContext


@pytest.fixture
def fake() -> Iterator[FakeStability]:
    with FakeStability() as server:
        yield server


def _config(url: str, key: str = KEY, **opts: object) -> Config:
    return load_config(None, {"assets": {"stability": {"api_key": key, "url": url, "timeout_seconds": 5, **opts},
                                         "allow_hosts": ["127.0.0.1"]}})  # the fake listens on loopback


def _ctx(tmp_path: Path, config: Config, guardrails: Guardrails | None = None) -> StageContext:
    work = tmp_path / "work"
    work.mkdir(parents=True, exist_ok=True)
    return StageContext(job_id="job-1", route="agent-video", name="x", work=work, inputs={}, options={},
                        config=config, lanes=Lanes(1), stage="assets", guardrails=guardrails or Guardrails())


def _want(orientation: str = "landscape", description: str = "um farol à noite") -> Want:
    return Want(scene=2, description=description, keywords=("farol", "mar"), orientation=orientation,  # type: ignore[arg-type]
                min_width=320, min_height=180, seconds=3.0)


def test_a_picture_is_generated_with_the_key_and_recorded(fake: FakeStability, tmp_path: Path) -> None:
    """GIVEN a key WHEN a portrait scene asks THEN one request carries the key, the prompt, the aspect and the
    job's seed; the PNG lands in work/assets; the record names the source, prompt and terms."""
    ctx = _ctx(tmp_path, _config(fake.url))
    found = StabilitySource().find(_want("portrait"), ctx)
    assert found is not None
    [req] = fake.requests
    assert req.headers["Authorization"] == f"Bearer {KEY}" and req.headers["Accept"] == "image/*"
    assert req.fields["prompt"] == "um farol à noite, mar" and req.fields["aspect_ratio"] == "9:16"
    assert req.fields["output_format"] == "png" and req.fields["seed"] == str(found.extra["seed"])
    with Image.open(found.path) as img:
        assert img.format == "PNG" and img.size == (90, 160)
    assert found.path == ctx.work / "assets" / "scene02-stability.png"
    assert found.source == "stability" and found.why == "um farol à noite, mar" and "terms" in found.licence


def test_without_a_key_nothing_is_sent(fake: FakeStability, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(SourceUnavailable, match=r"assets\.stability\.api_key"):
        StabilitySource().find(_want(), _ctx(tmp_path, _config(fake.url, key="")))
    assert fake.requests == []
    monkeypatch.setenv(KEY_ENV, KEY)
    assert StabilitySource().find(_want(), _ctx(tmp_path, _config(fake.url, key=""))) is not None


@pytest.mark.parametrize(("reply", "expected"), [
    (Scripted.error(401, "unauthorized", "bad key"), r"refused the key \(401"),
    (Scripted.error(402, "payment_required", "insufficient credits"), "no credits left"),
    (Scripted.error(429, "rate_limit", "too many requests"), "rate limit"),
    (Scripted.error(403, "content_moderation", "flagged"), "content moderation"),
    (Scripted.error(500, "internal_error", "oops"), r"answered 500 \(internal_error: oops\)"),
    (Scripted(200, b"\x89PNG", {"finish-reason": "CONTENT_FILTERED"}), "filtered"),
    (Scripted(200, b"<html>not a picture</html>", {"Content-Type": "image/png"}), "not a picture omad will use"),
    (Scripted(200, b"x" * 3_000_000, {"Content-Type": "image/png"}), r"more than 2 MB"),
])
def test_every_refusal_is_unavailable_with_a_reason(fake: FakeStability, tmp_path: Path, reply: Scripted,
                                                   expected: str) -> None:
    """GIVEN the service refuses (key, credits, rate, moderation, error, filtered, junk, oversized)
    THEN SourceUnavailable says why and no partial file is left in work/assets."""
    fake.replies.append(reply)
    ctx = _ctx(tmp_path, _config(fake.url, max_download_mb=2))
    with pytest.raises(SourceUnavailable, match=expected):
        StabilitySource().find(_want(), ctx)
    assert list((ctx.work / "assets").iterdir()) == []


def test_an_unreachable_service_is_unavailable(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(SourceUnavailable, match="could not be reached"):
        StabilitySource().find(_want(), _ctx(tmp_path, _config(f"http://127.0.0.1:{port}/x")))


def test_the_prompt_passes_the_guardrails_before_it_leaves(fake: FakeStability, tmp_path: Path) -> None:
    """GIVEN an e-mail in the description THEN the fake sees it redacted; GIVEN a blocked topic THEN the job
    stops and no request is made."""
    found = StabilitySource().find(_want(description="farol de ana@example.com"), _ctx(tmp_path, _config(fake.url)))
    assert found is not None and "ana@example.com" not in fake.requests[0].fields["prompt"]
    guard = Guardrails(GuardrailsFile.model_validate(
        {"blocked_topics": [{"name": "violence", "keywords": ["violência"], "action": "block"}]}))
    with pytest.raises(GuardrailBlocked):
        StabilitySource().find(_want(description="violência no porto"), _ctx(tmp_path, _config(fake.url), guard))
    assert len(fake.requests) == 1
