"""A FAKE Ollama HTTP server for tests. It runs no model.

It speaks the parts of Ollama's HTTP API that the official ``ollama`` client
uses (``/api/chat``, ``/api/generate``, ``/api/tags``, ``/api/ps``,
``/api/show``, ``/api/version``) on a local port, from a thread, so tests drive
omad's real client over real HTTP. Each model has a queue of scripted replies
(valid JSON, invalid JSON, empty, an HTTP error, a dropped connection, a
delay); when a queue is empty the fake writes a plausible pt-BR answer for
omad's agent roles from the request's JSON schema and inputs. Every request is
recorded so tests can check what omad sent (the schema, ``keep_alive``, the
``keep_alive=0`` unloads, that no personal data reached a model).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeOllama", "Reply", "Recorded", "DEFAULT_MODELS"]

DEFAULT_MODELS = (
    "qwen2.5:3b-instruct",
    "phi3.5:3.8b-mini",
    "gemma2:2b",
    "mistral:7b-instruct",
    "qwen2:1.5b",
)

_MOTIONS = ("zoom_in", "pan_left", "zoom_out", "pan_right", "pan_up", "pan_down")
_SENTENCES = (
    "Hoje vamos entender {topic} de um jeito simples e direto.",
    "Pense no seu dia a dia e em como isso aparece na sua rotina.",
    "Os detalhes fazem diferença, e vale a pena olhar com calma.",
    "Muita gente começa sem saber por onde ir, e tudo bem.",
    "O importante é dar o primeiro passo com informação confiável.",
    "Com pequenas escolhas, o resultado aparece ao longo do tempo.",
    "Observe como cada parte se conecta com a seguinte.",
    "Essa ideia vale para quem está começando e para quem já sabe.",
)


@dataclass
class Reply:
    """One scripted answer for a model's next chat or generate request."""

    kind: str  # "auto", "content", "error", "drop", "raw"
    content: str = ""
    status: int = 200
    delay: float = 0.0

    @classmethod
    def auto(cls, delay: float = 0.0) -> Reply:
        """The fake's own plausible answer for the request's schema."""
        return cls("auto", delay=delay)

    @classmethod
    def json(cls, obj: Any, delay: float = 0.0) -> Reply:
        return cls("content", json.dumps(obj, ensure_ascii=False), delay=delay)

    @classmethod
    def text(cls, content: str, delay: float = 0.0) -> Reply:
        """Message content that is not what was asked for (invalid JSON, prose...)."""
        return cls("content", content, delay=delay)

    @classmethod
    def empty(cls) -> Reply:
        return cls("content", "")

    @classmethod
    def error(cls, status: int, message: str) -> Reply:
        return cls("error", message, status=status)

    @classmethod
    def missing(cls) -> Reply:
        return cls("error", "", status=404)

    @classmethod
    def drop(cls) -> Reply:
        """Close the connection without answering."""
        return cls("drop")

    @classmethod
    def raw(cls, body: str, status: int = 200) -> Reply:
        """A raw HTTP body instead of an Ollama response."""
        return cls("raw", body, status=status)


@dataclass
class Recorded:
    method: str
    path: str
    body: Any
    started: float
    ended: float = 0.0

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None


@dataclass
class _State:
    models: set[str]
    queues: dict[str, deque[Reply]] = field(default_factory=lambda: defaultdict(deque))
    loaded: dict[str, float] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    handler_seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class FakeOllama:
    """A fake Ollama server on ``url``; use as a context manager. Records requests in ``requests``."""

    def __init__(self, models: Iterable[str] = DEFAULT_MODELS, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._state = _State(models=set(models))
        self._host = host
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle

    def start(self) -> FakeOllama:
        state = self._state

        class Handler(_Handler):
            fake = state

        self._server = ThreadingHTTPServer((self._host, self._port), Handler)
        self._server.daemon_threads = True
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-ollama", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    # -- scripting

    def queue(self, model: str, *replies: Reply) -> None:
        with self._state.lock:
            self._state.queues[model].extend(replies)

    def add_model(self, model: str) -> None:
        with self._state.lock:
            self._state.models.add(model)

    def remove_model(self, model: str) -> None:
        with self._state.lock:
            self._state.models.discard(model)

    # -- what happened

    @property
    def requests(self) -> list[Recorded]:
        with self._state.lock:
            return list(self._state.requests)

    @property
    def loaded(self) -> list[str]:
        with self._state.lock:
            return sorted(self._state.loaded)

    @property
    def handler_seconds(self) -> float:
        """Time spent inside the fake's handlers, scripted delays excluded (for overhead benchmarks)."""
        with self._state.lock:
            return self._state.handler_seconds

    def chats(self, model: str | None = None) -> list[Recorded]:
        """Chat requests that asked something (not unloads), optionally for one model."""
        return [
            r
            for r in self.requests
            if r.path == "/api/chat" and r.body.get("messages") and (model is None or r.model == model)
        ]

    def unloads(self) -> list[str]:
        """Models unloaded with ``keep_alive: 0`` and no messages/prompt, in order."""
        out = []
        for r in self.requests:
            body = r.body if isinstance(r.body, dict) else {}
            empty = not body.get("messages") and not body.get("prompt")
            if r.path in ("/api/chat", "/api/generate") and body.get("keep_alive") == 0 and empty:
                out.append(str(body.get("model")))
        return out

    def sent_text(self) -> str:
        """Everything omad sent to any model, as one string (for 'never reached a model' checks)."""
        return "\n".join(json.dumps(r.body, ensure_ascii=False) for r in self.requests if r.body)


class _Handler(BaseHTTPRequestHandler):
    fake: _State
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm and delayed
        # ACKs add ~40 ms per response, a cost of this fake that real Ollama does not have.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        return

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        started = time.perf_counter()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw.decode("utf-8", "replace")
        rec = Recorded(method, self.path, body, time.monotonic())
        with self.fake.lock:
            self.fake.requests.append(rec)
        delay = 0.0
        try:
            delay = self._route(method, body if isinstance(body, dict) else {})
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            rec.ended = time.monotonic()
            with self.fake.lock:
                self.fake.handler_seconds += time.perf_counter() - started - delay

    def _send(self, status: int, payload: Any) -> None:
        data = (payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str, body: dict[str, Any]) -> float:
        path = self.path.split("?")[0]
        if method == "GET" and path == "/api/version":
            self._send(200, {"version": "0.0.0-fake"})
        elif method == "GET" and path == "/api/tags":
            with self.fake.lock:
                models = sorted(self.fake.models)
            self._send(200, {"models": [_model_entry(m) for m in models]})
        elif method == "GET" and path == "/api/ps":
            with self.fake.lock:
                loaded = sorted(self.fake.loaded)
            self._send(200, {"models": [_ps_entry(m) for m in loaded]})
        elif method == "POST" and path == "/api/show":
            model = str(body.get("model", ""))
            if not self._known(model):
                self._send(404, {"error": f"model '{model}' not found"})
            else:
                self._send(200, _show_entry(model))
        elif method == "POST" and path in ("/api/chat", "/api/generate"):
            return self._generate(path, body)
        else:
            self._send(404, "404 page not found")
        return 0.0

    def _known(self, model: str) -> bool:
        with self.fake.lock:
            return model in self.fake.models or (":" not in model and f"{model}:latest" in self.fake.models)

    def _generate(self, path: str, body: dict[str, Any]) -> float:
        model = str(body.get("model", ""))
        is_chat = path == "/api/chat"
        asked = body.get("messages") if is_chat else body.get("prompt")
        if not self._known(model):
            self._send(404, {"error": f'model "{model}" not found, try pulling it first'})
            return 0.0
        if not asked:
            # Ollama's load (empty request) and unload (keep_alive 0) calls.
            unload = body.get("keep_alive") == 0
            with self.fake.lock:
                if unload:
                    self.fake.loaded.pop(model, None)
                else:
                    self.fake.loaded[model] = time.time()
            reason = "unload" if unload else "load"
            self._send(200, _response(model, is_chat, "", done_reason=reason))
            return 0.0
        with self.fake.lock:
            queue = self.fake.queues.get(model)
            reply = queue.popleft() if queue else Reply.auto()
            cold = model not in self.fake.loaded
            self.fake.loaded[model] = time.time()
        if reply.delay:
            time.sleep(reply.delay)
        if reply.kind == "drop":
            self.close_connection = True
            return reply.delay
        if reply.kind == "raw":
            self._send(reply.status, reply.content)
            return reply.delay
        if reply.kind == "error":
            message = reply.content or f'model "{model}" not found, try pulling it first'
            self._send(reply.status, {"error": message})
            return reply.delay
        content = reply.content if reply.kind == "content" else _auto_answer(body)
        prompt_chars = len(json.dumps(asked, ensure_ascii=False))
        self._send(200, _response(model, is_chat, content, prompt_chars=prompt_chars, cold=cold))
        return reply.delay


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _details(model: str) -> dict[str, Any]:
    family = model.split(":")[0].rstrip("0123456789.")
    size = model.split(":")[1].split("-")[0].upper() if ":" in model else "7B"
    return {
        "parent_model": "",
        "format": "gguf",
        "family": family,
        "families": [family],
        "parameter_size": size,
        "quantization_level": "Q4_K_M",
    }


def _model_entry(model: str) -> dict[str, Any]:
    return {
        "name": model,
        "model": model,
        "modified_at": _now(),
        "size": 2_000_000_000,
        "digest": f"{abs(hash(model)):064x}"[:64],
        "details": _details(model),
    }


def _ps_entry(model: str) -> dict[str, Any]:
    entry = _model_entry(model)
    entry.update(
        size_vram=2_000_000_000,
        expires_at=(datetime.now(UTC) + timedelta(minutes=5)).isoformat().replace("+00:00", "Z"),
        context_length=4096,
    )
    return entry


def _show_entry(model: str) -> dict[str, Any]:
    return {
        "modelfile": f"# fake modelfile for {model}\nFROM {model}\n",
        "parameters": "temperature 0.7",
        "template": "{{ .Prompt }}",
        "details": _details(model),
        "model_info": {"general.architecture": _details(model)["family"]},
        "capabilities": ["completion"],
        "modified_at": _now(),
    }


def _response(
    model: str, is_chat: bool, content: str, *, done_reason: str = "stop", prompt_chars: int = 0, cold: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {"model": model, "created_at": _now(), "done": True, "done_reason": done_reason}
    if is_chat:
        out["message"] = {"role": "assistant", "content": content}
    else:
        out["response"] = content
    if done_reason == "stop":
        tokens_in, tokens_out = max(1, prompt_chars // 4), max(1, len(content) // 4)
        out.update(
            total_duration=(tokens_in + tokens_out) * 1_000_000 + (500_000_000 if cold else 0),
            load_duration=500_000_000 if cold else 1_000_000,
            prompt_eval_count=tokens_in,
            prompt_eval_duration=tokens_in * 200_000,
            eval_count=tokens_out,
            eval_duration=tokens_out * 800_000,
        )
    return out


# -- the fake's own answers ---------------------------------------------------------------------


def _inputs(body: dict[str, Any]) -> dict[str, Any]:
    messages = body.get("messages") or [{"role": "user", "content": str(body.get("prompt", ""))}]
    for m in reversed(messages):
        if m.get("role") == "user":
            try:
                data = json.loads(m.get("content", ""))
            except json.JSONDecodeError:
                continue  # a retry instruction: the inputs are in an earlier message
            return data if isinstance(data, dict) else {}
    return {}


def _sentences(topic: str, words: int, offset: int) -> str:
    out: list[str] = []
    count = 0
    i = offset
    while count < max(4, words) - 2:
        sentence = _SENTENCES[i % len(_SENTENCES)].format(topic=topic)
        out.append(sentence)
        count += len(sentence.split())
        i += 1
    return " ".join(out)


def _respell(text: str) -> str:
    # What an audio producer does for pt-BR TTS: acronyms spelled out, a breath before the close.
    return text.replace("IA", "i-á").replace("ONG", "ôngui").replace(". ", ", ... ", 1)


def _auto_answer(body: dict[str, Any]) -> str:
    schema = body.get("format") if isinstance(body.get("format"), dict) else None
    title = schema.get("title") if schema else None
    data = _inputs(body)
    answer: Any
    if title == "SupervisorAnswer":
        brief = data.get("brief", {})
        images = brief.get("images", [])
        topic = brief.get("topic") or brief.get("prompt") or "o tema pedido"
        answer = {
            "objective": f"Explicar {topic} de forma clara",
            "audience": brief.get("audience") or "público geral",
            "tone": brief.get("tone") or "amigável",
            "target_duration_seconds": brief.get("duration_seconds") or 30,
            "scene_count": max(2, len(images)) if images else 3,
            "workers": ["script_writer", "visual_planner", "audio_producer", "editor"],
        }
    elif title == "ScriptAnswer":
        n = int(data.get("scene_count", 3))
        per = int(data.get("words_per_scene", 20))
        brief = data.get("brief", {})
        topic = str(brief.get("topic") or "este assunto")
        answer = {
            "hook": "Você sabia que isso muda tudo?",
            "scenes": [
                {"narration": _sentences(topic, per, i * 2), "on_screen_text": f"Parte {i + 1}"} for i in range(n)
            ],
            "call_to_action": "Compartilhe com quem precisa saber.",
        }
    elif title == "VisualAnswer":
        images = [i["file"] for i in data.get("assets", [])]
        scenes = data.get("scenes", [])
        answer = {
            "scenes": [
                {
                    "scene": s["scene"],
                    "asset": images[k] if k < len(images) else "",
                    "motion": _MOTIONS[k % len(_MOTIONS)],
                    "description": f"Uma imagem para {s.get('on_screen_text') or 'a cena'}",
                    "keywords": [w for w in str(s.get("on_screen_text", "")).lower().split() if len(w) > 2][:6],
                }
                for k, s in enumerate(scenes)
            ]
        }
    elif title == "AudioAnswer":
        answer = {
            "scenes": [{"scene": s["scene"], "narration": _respell(s["narration"])} for s in data.get("scenes", [])],
            "speed": 1.0,
            "music_db": -20.0,
            # The first mood the user's folders offer, as a producer who likes it cheerful would.
            "mood": (data.get("music_moods") or [""])[0],
        }
    elif title == "EditorAnswer":
        answer = {
            "decision": "keep",
            "scenes": [
                {"from_scenes": [s["scene"]], "narration": s["narration"], "on_screen_text": s["on_screen_text"]}
                for s in data.get("scenes", [])
            ],
            "notes": "A duração estimada está perto da duração alvo.",
        }
    elif title == "PostAnswer":
        video = data.get("video", {})
        said = [str(n) for n in video.get("scenes", [])]
        answer = {
            "title": video.get("title") or (video.get("on_screen") or ["Um vídeo curto"])[0],
            "description": " ".join(said[:2]) or "Um vídeo curto.",
            "hashtags": ["#Vídeo", "dica rápida", "#Ciência"],
        }
    elif schema is not None:
        answer = _from_schema(schema, schema)
    else:
        answer = "ok"
    return answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)


def _from_schema(node: dict[str, Any], root: dict[str, Any]) -> Any:
    """A minimal valid instance of a JSON schema (for schemas the fake has no role answer for)."""
    if "$ref" in node:
        name = node["$ref"].split("/")[-1]
        return _from_schema(root.get("$defs", {})[name], root)
    if "enum" in node:
        return node["enum"][0]
    if "const" in node:
        return node["const"]
    if "anyOf" in node:
        return _from_schema(node["anyOf"][0], root)
    kind = node.get("type")
    if kind == "object":
        return {k: _from_schema(v, root) for k, v in node.get("properties", {}).items()}
    if kind == "array":
        return [_from_schema(node.get("items", {}), root) for _ in range(max(1, node.get("minItems", 1)))]
    if kind == "integer":
        return int(node.get("minimum", node.get("exclusiveMinimum", 0) + 1))
    if kind == "number":
        return float(node.get("minimum", node.get("exclusiveMinimum", 0) + 1))
    if kind == "boolean":
        return True
    return "texto"
