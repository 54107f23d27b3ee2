"""Which options travel to workers is marked on the config model, and nothing secret or addressing travels."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from omad.cluster.task import merged_config, task_settings
from omad.config import Config, Reach, reach_of

#: option names that hold a secret, or say where to connect
_SECRET_OR_ADDRESS = re.compile(r"(^|_)(key|keys|secret|token|tokens|password|credential|url|host|endpoint)s?($|_)")


def _options(model: type[BaseModel], prefix: str, inherited: Reach | None) -> Iterator[tuple[str, Any, Reach | None]]:
    for name, info in model.model_fields.items():
        if info.exclude:
            continue
        reach = reach_of(info, inherited)
        path = f"{prefix}{name}"
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            yield path, info, reach
            yield from _options(sub, path + ".", reach)
        else:
            yield path, info, reach


def test_every_section_is_marked() -> None:
    """A new section must say whether it travels: an unmarked one fails here (and is never sent)."""
    unmarked = [name for name, info in Config.model_fields.items()
                if not info.exclude and reach_of(info, None) is None]
    assert not unmarked, f"mark these config sections with json_schema_extra=HOST or TRAVELS: {unmarked}"
    assert all(reach is not None for _, _, reach in _options(Config, "", None))


def test_no_secret_url_or_host_option_travels() -> None:
    """Walk every option: any whose name says key, secret, token, password, URL or host, or whose default is a
    URL, must be host-only."""
    bad = []
    for path, info, reach in _options(Config, "", None):
        name = path.rsplit(".", 1)[-1]
        default = info.default if isinstance(info.default, str) else ""
        if (_SECRET_OR_ADDRESS.search(name) or re.match(r"^[a-z]+://", default)) and reach is not Reach.HOST:
            bad.append(path)
    assert not bad, f"these options would travel in task messages: {bad}"


def test_keys_and_urls_never_leave_and_a_message_cannot_point_a_worker_elsewhere() -> None:
    """GIVEN a daemon with every key and URL set WHEN a task's settings are made THEN none of them is in it; and
    GIVEN a message whose settings name other URLs and keys THEN the worker keeps its own."""
    daemon = Config.model_validate({"assets": {
        "stock": {"pexels_key": "pexels-secret", "pixabay_key": "pixabay-secret", "pexels_url": "https://p.example"},
        "stability": {"api_key": "stability-secret", "url": "https://s.example/gen"}},
        "llm": {"host": "http://ollama.example:11434"}, "video": {"crf": 30}})
    text = json.dumps(task_settings(daemon))
    for secret in ("pexels-secret", "pixabay-secret", "stability-secret", "p.example", "s.example", "ollama.example"):
        assert secret not in text
    assert json.loads(text)["video"]["crf"] == 30
    worker = Config.model_validate({"assets": {"stock": {"pexels_key": "worker-key"}}})
    forged = {"assets": {"stock": {"pexels_url": "http://evil.example", "pexels_key": "x"},
                         "stability": {"url": "http://evil.example/", "api_key": "y"}, "cache_dir": "/etc"},
              "llm": {"host": "http://evil.example"}, "executor": {"broker_url": "redis://evil/0"},
              "web": {"host": "0.0.0.0"}, "video": {"crf": 18}}
    merged = merged_config(worker, forged)
    assert merged.assets.stock.pexels_url == "https://api.pexels.com" and merged.assets.stock.pexels_key == "worker-key"
    assert merged.assets.stability.url.startswith("https://api.stability.ai") and merged.assets.stability.api_key == ""
    assert merged.assets.cache_dir == "" and merged.llm.host == "" and merged.executor.broker_url == ""
    assert merged.web.host == "127.0.0.1" and merged.video.crf == 18
