"""The words to post a video with: the publisher role writes X.post.json; without Ollama the brief's title."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from conftest import Env
from fake_ollama import FakeOllama, Reply

from omad.agents.publisher import MAX_TITLE, hashtag

SMALL = {"preset": "custom", "width": 160, "height": 90, "fps": 10, "x264_preset": "ultrafast"}
BRIEF = ("version: 1\nkind: video\ntitle: Abelhas nativas\nscenes:\n"
         "  - title: Abelhas\n    narration: \"As abelhas nativas não têm ferrão.\"\n"
         "  - title: Flores\n    narration: \"Elas polinizam as flores da mata.\"\n")


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


def test_the_publisher_writes_the_post(make_env: Callable[..., Env], fake: FakeOllama) -> None:
    """GIVEN a scene brief and Ollama WHEN the video is made THEN X.post.json holds the publisher's title,
    description and hashtags (cleaned into hashtags), also in the sidecar, with the role's call recorded."""
    env = make_env(video=SMALL, llm={"host": fake.url, "remote": True})
    (env.inbox / "abelhas.yaml").write_text(BRIEF, encoding="utf-8")
    assert env.once(max_wait=120) == 0
    post = json.loads((env.outbox / "abelhas.post.json").read_text(encoding="utf-8"))
    assert post["source"] == "publisher" and post["title"] == "Abelhas nativas"
    assert post["description"] == "As abelhas nativas não têm ferrão. Elas polinizam as flores da mata."
    assert post["hashtags"] == ["#Video", "#dicarapida", "#Ciencia"] and post["language"] == "pt-BR"
    sidecar = env.sidecar("abelhas")
    stage = next(s for s in sidecar["stages"] if s["name"] == "post")
    assert stage["facts"]["post"] == post
    assert ".post.json" in sidecar["outputs"]
    [chat] = [c for c in fake.chats() if "publicador" in c.body["messages"][0]["content"]]
    assert chat.body["model"] == "qwen2.5:3b-instruct" and chat.body["format"]["title"] == "PostAnswer"
    assert "não têm ferrão" in chat.body["messages"][1]["content"]


def test_the_publishers_words_pass_the_guardrails(make_env: Callable[..., Env], fake: FakeOllama) -> None:
    """GIVEN a publisher that writes a CPF and an e-mail into the description WHEN the post is written
    THEN they are redacted in X.post.json and the findings are recorded (masked)."""
    fake.queue("qwen2.5:3b-instruct", Reply(kind="content", content=json.dumps({
        "title": "Abelhas", "description": "Fale com joao.silva@exemplo.com.br, CPF 529.982.247-25.",
        "hashtags": ["#abelhas"]})))
    env = make_env(video=SMALL, llm={"host": fake.url, "remote": True})
    (env.inbox / "abelhas.yaml").write_text(BRIEF, encoding="utf-8")
    assert env.once(max_wait=120) == 0
    text = (env.outbox / "abelhas.post.json").read_text(encoding="utf-8")
    assert "joao.silva@exemplo.com.br" not in text and "529.982.247-25" not in text
    kinds = {f["type"] for f in env.sidecar("abelhas")["guardrail_findings"]}
    assert {"cpf", "email"} <= kinds


def test_without_ollama_the_title_comes_from_the_brief_and_nothing_is_invented(
        make_env: Callable[..., Env]) -> None:
    """GIVEN no Ollama WHEN a scene video is made THEN the video is published, and X.post.json has the brief's
    title, no description and no hashtags, and says why."""
    env = make_env(video=SMALL, llm={"host": "http://127.0.0.1:9", "connect_retries": 3})
    (env.inbox / "abelhas.yaml").write_text(BRIEF, encoding="utf-8")
    assert env.once(max_wait=120) == 0
    assert (env.outbox / "abelhas.mp4").exists()
    post = json.loads((env.outbox / "abelhas.post.json").read_text(encoding="utf-8"))
    assert post["title"] == "Abelhas nativas" and post["description"] == "" and post["hashtags"] == []
    assert post["source"] == "brief" and "not reachable" in post["why"]
    assert any("publisher did not answer" in w for w in env.sidecar("abelhas")["warnings"])


def test_hashtags_and_titles_are_cleaned() -> None:
    assert hashtag("São Paulo!") == "#SaoPaulo" and hashtag("##abelhas nativas") == "#abelhasnativas"
    assert hashtag("2024") == "" and hashtag("   ") == ""
    from omad.agents.publisher import _clip_title

    long = "palavra " * 30
    assert len(_clip_title(long)) <= MAX_TITLE and _clip_title(long).endswith("\u2026")


def test_a_refused_connection_is_seen_before_the_client_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN a host where nothing listens, one that listens, and a proxy in the environment WHEN the post
    looks for Ollama THEN only the refused (or unresolvable) host counts as absent: anything else is left to
    the client, which goes through the proxy, retries or times out as configured."""
    import socket

    from omad.agents.host import nothing_listens

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: a connect is refused
        assert nothing_listens(f"http://127.0.0.1:{port}")
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen()
            assert not nothing_listens(f"http://127.0.0.1:{server.getsockname()[1]}")
        assert nothing_listens("http://no-such-host.invalid:11434")
        monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
        assert not nothing_listens(f"http://127.0.0.1:{port}")


def test_without_ollama_the_post_takes_no_gpu_lane_and_imports_no_client() -> None:
    """GIVEN no Ollama WHEN the post is written in a fresh interpreter THEN the ollama client library was
    never imported and nothing was marked resident on the GPU lane (a shutdown has nothing to unload)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from omad.agents.publisher import write_post\n"
        "from omad.config import Config\n"
        "from omad.guardrails import guardrails_for\n"
        "from omad.lanes import Lanes\n"
        "cfg = Config.model_validate({'llm': {'host': 'http://127.0.0.1:9'}})\n"
        "lanes = Lanes(cpu_slots=1)\n"
        "post = write_post({'title': 'Abelhas'}, 'Abelhas', config=cfg, guard=guardrails_for(cfg), lanes=lanes)\n"
        "assert post.source == 'brief' and 'not reachable' in post.why, post\n"
        "assert 'ollama' not in sys.modules and 'httpx' not in sys.modules, 'client imported'\n"
        "assert lanes.residency.snapshot() == [], lanes.residency.snapshot()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
