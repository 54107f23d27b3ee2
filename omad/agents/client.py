"""The Ollama client the agents talk through: structured answers, retries, fallbacks, error mapping.

``LlmClient`` wraps the official ``ollama.AsyncClient``. Each ``structured``
call sends the pydantic model's JSON schema as ``format=``, validates the
answer, re-asks the same model ``llm.retries`` times after an invalid or empty
answer, then tries the role's fallback model, and finally fails naming the
role, the models and the reason. Every call goes through the GPU lane (one at
a time, with the model registered in the lane's residency so an F5 voice is
evicted before a large LLM and Ollama models are unloaded with
``keep_alive=0`` before F5 needs the card) unless ``llm.remote`` is set.

Every request runs inside ``ollama_errors.ollama_call``, the one boundary
that translates ``ollama`` and ``httpx`` exceptions into omad's error tree;
none escapes. It must never log or put into an error message the
text a model wrote or was sent: those may hold personal data that guardrails
redact later.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import ExitStack, asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import ollama
from pydantic import BaseModel, ValidationError

from .. import tracing
from ..errors import OmadError, StageFailed, ToolMissing, TransientError
from .host import doctor_checks, estimate_vram_gb, ollama_host, tls_context, unload_model
from .ollama_errors import START_HINT, Call, ModelMissing, OllamaUnreachable, ollama_call

if TYPE_CHECKING:
    from ..config import LlmConfig
    from ..guardrails import Guardrails
    from ..lanes import Lanes

__all__ = [
    "CallRecord",
    "LlmClient",
    "PromptRef",
    "doctor_checks",
    "estimate_vram_gb",
    "ollama_host",
    "unload_model",
]

log = logging.getLogger("omad.agents")

MAX_BACKOFF_SECONDS = 30.0

M = TypeVar("M", bound=BaseModel)

@dataclass(frozen=True)
class PromptRef:
    """Which prompt file a call used, so the job record can name it and its hash."""

    file: str
    sha256: str

    @classmethod
    def of(cls, file: str, text: str) -> PromptRef:
        return cls(file=file, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())


@dataclass
class CallRecord:
    """What one role's call cost and how it went; goes into the job record as is.

    ``tries`` lists every request made (model, outcome, tokens, latency), so a
    fallback shows both models. Token counts and latency are summed over all
    tries; the Ollama durations are those of the answer that was used.
    """

    role: str
    model: str
    prompt_file: str = ""
    prompt_sha256: str = ""
    attempts: int = 0
    fallback_used: bool = False
    tokens_in: int = 0
    tokens_out: int = 0
    latency_seconds: float = 0.0
    total_duration_seconds: float = 0.0
    load_duration_seconds: float = 0.0
    eval_duration_seconds: float = 0.0
    tries: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ns(value: int | None) -> float:
    return round((value or 0) / 1e9, 4)


def _describe_validation(err: ValidationError) -> str:
    # Only locations and messages: the input values may hold personal data.
    parts = []
    for e in err.errors(include_url=False, include_input=False):
        loc = ".".join(str(x) for x in e["loc"]) or "answer"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts[:5]) + (f" (+{len(parts) - 5} more)" if len(parts) > 5 else "")


class _GpuTurn:
    """One Ollama call's hold on the GPU lane slot and the model's residency.

    The slot is a blocking, thread-based lane; waiting for it happens in a worker
    thread so concurrent roles do not block the event loop. If the waiting
    coroutine is cancelled, whichever side finishes last releases the slot.
    """

    def __init__(self) -> None:
        self.stack = ExitStack()
        self._lock = threading.Lock()
        self._state = "pending"

    def enter(self, enter: Callable[[ExitStack], None]) -> None:
        enter(self.stack)
        with self._lock:
            if self._state == "abandoned":
                self.stack.close()
            else:
                self._state = "held"

    def abandon(self) -> None:
        with self._lock:
            if self._state == "held":
                self.stack.close()
            self._state = "abandoned"


@functools.cache
def _schema(model: type[BaseModel]) -> dict[str, Any]:
    # Building a JSON schema walks the whole model (a few ms); answer models never change at run time.
    return model.model_json_schema()


@functools.cache
def _in_thread(fn: Callable[[], None]) -> asyncio.Future[None]:
    """Run a blocking wait in its own daemon thread.

    Not the loop's default executor: ``asyncio.run`` waits for that one's threads
    at exit, so a plan stopped by its timeout would still wait for the GPU slot.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if future.done():
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)

    def work() -> None:
        error: BaseException | None = None
        try:
            fn()
        except BaseException as e:  # handed to the awaiting coroutine
            error = e
        # A closed loop raises RuntimeError; whatever fn took was then released by _GpuTurn.abandon.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=work, name="omad-gpu-wait", daemon=True).start()
    return future


class LlmClient:
    """Structured calls to Ollama for one pipeline run; use as ``async with LlmClient(...) as llm``."""

    def __init__(self, config: LlmConfig, lanes: Lanes | None = None, *, holder: str = "agents") -> None:
        self.config = config
        self.lanes = lanes
        self.holder = holder
        self.host = ollama_host(config)
        self._client: ollama.AsyncClient | None = None

    async def __aenter__(self) -> LlmClient:
        # ollama's default timeout is none at all; a hung server must not hang a job.
        timeout = httpx.Timeout(self.config.timeout_seconds, connect=min(10.0, self.config.timeout_seconds))
        self._client = ollama.AsyncClient(host=self.host, timeout=timeout, verify=tls_context())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.close()  # type: ignore[no-untyped-call]
            self._client = None

    # -- the GPU lane -------------------------------------------------------------------------------

    @asynccontextmanager
    async def _gpu_turn(self, role: str, model: str) -> AsyncIterator[None]:
        lanes = self.lanes
        if lanes is None or self.config.remote:
            yield
            return
        vram = estimate_vram_gb(model, self.config.model_vram_gb)
        host, timeout = self.host, self.config.timeout_seconds

        def enter(stack: ExitStack) -> None:
            stack.enter_context(lanes.gpu.slot(f"{self.holder}:{role}"))
            try:
                # Ollama loads lazily on the call itself, so "load" only marks the model resident.
                stack.enter_context(
                    lanes.residency.acquire(
                        f"ollama:{model}", vram, lambda: model, lambda m: unload_model(host, m, min(timeout, 30.0))
                    )
                )
            except BaseException:
                stack.close()
                raise

        turn = _GpuTurn()
        try:
            await _in_thread(lambda: turn.enter(enter))
        except asyncio.CancelledError:
            turn.abandon()
            raise
        try:
            yield
        finally:
            turn.stack.close()

    # -- one request -------------------------------------------------------------------------------

    async def _chat(
        self, role: str, model: str, messages: Sequence[dict[str, str]], schema: dict[str, Any]
    ) -> ollama.ChatResponse:
        """One chat request, with connection retries; every library error leaves as an omad error."""
        client = self._client
        if client is None:
            raise RuntimeError("LlmClient used outside `async with`")
        delay = self.config.connect_backoff_seconds
        tries = self.config.connect_retries + 1
        started = time.monotonic()
        call = Call(self.host, model, f"role {role} with model {model}", self.config.timeout_seconds,
                    missing_hint="or let the role's fallback model answer")
        for attempt in range(1, tries + 1):
            try:
                with ollama_call(call):
                    async with self._gpu_turn(role, model):
                        return await client.chat(
                            model=model,
                            messages=list(messages),
                            format=schema,
                            options={"temperature": self.config.temperature},
                            keep_alive=self.config.keep_alive,
                        )
            except OllamaUnreachable as e:
                # Refused (nothing listening) or no answer to the connect (a host that is down): both may pass.
                if attempt >= tries:
                    waited = time.monotonic() - started
                    raise TransientError(
                        f"Ollama is not reachable at {self.host} (role {role}, model {model}; "
                        f"tried {tries} times over {waited:.1f} s). {START_HINT} to where it runs.",
                        details={"host": self.host, "role": role, "model": model, "tries": tries},
                    ) from e
                log.warning("ollama not reachable at %s (try %d of %d); retrying", self.host, attempt, tries)
                await asyncio.sleep(min(delay, MAX_BACKOFF_SECONDS))
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    # -- the guardrails' safety model --------------------------------------------------------------

    async def safety_check(
        self, guard: Guardrails, text: str, where: str, *, file: str | None = None
    ) -> list[dict[str, Any]]:
        """Run the guardrails' content-safety model on ``text`` through the GPU lane; findings as dicts.

        A block raises GuardrailBlocked (from the guardrails module); its own
        Ollama errors are mapped there.
        """
        client = self._client
        if client is None:
            raise RuntimeError("LlmClient used outside `async with`")
        model = guard.rules.safety_model.model
        t0_ns = time.time_ns()
        try:
            async with self._gpu_turn("guardrails", model):
                result = await guard.acheck_safety(text, where, client, file=file, keep_alive=self.config.keep_alive)
        except OmadError as e:
            _trace_call("guardrails", model, t0_ns, None, "blocked" if e.kind == "guardrail" else "error",
                        error_kind=None if e.kind == "guardrail" else e.kind)
            raise
        _trace_call("guardrails", model, t0_ns, None, "ok")
        return [f.to_dict() for f in result.findings]

    # -- structured answers -------------------------------------------------------------------------

    async def structured(
        self,
        role: str,
        model: str,
        fallback: str,
        messages: Sequence[dict[str, str]],
        schema_model: type[M],
        *,
        prompt: PromptRef | None = None,
        check: Callable[[M], None] | None = None,
    ) -> tuple[M, CallRecord]:
        """Ask ``model`` for an answer matching ``schema_model``; re-ask, then fall back, then fail.

        ``check`` may raise ``ValueError`` for an answer that parses but does not
        fit the request (a scene number out of range): it counts as invalid.
        Raises ``ToolMissing`` when neither model is pulled (with the pull
        command), ``StageFailed`` when no model gave a valid answer.
        """
        record = CallRecord(
            role=role,
            model=model,
            prompt_file=prompt.file if prompt else "",
            prompt_sha256=prompt.sha256 if prompt else "",
        )
        schema = _schema(schema_model)
        models = [model] + ([fallback] if fallback and fallback != model else [])
        missing: list[str] = []
        reason = ""
        started = time.monotonic()
        for index, current in enumerate(models):
            convo = [dict(m) for m in messages]
            for _ in range(self.config.retries + 1):
                t0, t0_ns = time.monotonic(), time.time_ns()
                try:
                    response = await self._chat(role, current, convo, schema)
                except ModelMissing:
                    _trace_call(role, current, t0_ns, None, "model not pulled")
                    missing.append(current)
                    record.tries.append({"model": current, "outcome": "model not pulled", "latency_seconds": 0.0})
                    record.warnings.append(f"model {current} is not pulled: run `ollama pull {current}`")
                    break
                except OmadError as e:
                    _trace_call(role, current, t0_ns, None, "error", error_kind=e.kind)
                    raise
                finally:
                    record.latency_seconds = round(time.monotonic() - started, 4)
                content = (response.message.content or "").strip()
                parsed, reason = _parse(schema_model, content, check)
                _trace_call(role, current, t0_ns, response,
                            "ok" if parsed is not None else ("invalid" if content else "empty"))
                _count_try(record, current, response, "ok" if parsed is not None else reason, time.monotonic() - t0)
                if parsed is not None:
                    _answered(record, current, index > 0, response)
                    return parsed, record
                log.warning("agent %s: model %s gave an unusable answer: %s", role, current, reason)
                # Show the model its mistake once more, as a real user would; the reason holds no content.
                convo = [dict(m) for m in messages] + [
                    {"role": "assistant", "content": content},
                    {"role": "user", "content": _retry_instruction(reason, schema)},
                ]
        if missing and len(missing) == len(models):
            raise self._models_missing(role, missing)
        tried = ", ".join(t["model"] for t in record.tries if t["outcome"] != "model not pulled")
        raise StageFailed(
            f"role {role} got no usable answer from model {tried or model} after {record.attempts} attempts: {reason}. "
            f"Try another model in llm.roles.{role} (model/fallback) or raise llm.retries.",
            details={"role": role, "models": models, "reason": reason, "record": record.to_dict()},
        )

    def _models_missing(self, role: str, missing: list[str]) -> ToolMissing:
        pulls = " and ".join(f"`ollama pull {m}`" for m in missing)
        return ToolMissing(
            f"role {role} needs model {' or '.join(missing)}, which Ollama at {self.host} does not have. "
            f"Run {pulls} on the Ollama host, or set llm.roles.{role}.model to a model you have.",
            details={
                "role": role,
                "models": missing,
                "host": self.host,
                "pull": [f"ollama pull {m}" for m in missing],
            },
        )


def _parse(schema_model: type[M], content: str, check: Callable[[M], None] | None) -> tuple[M | None, str]:
    """The answer as ``schema_model``, or None and why it is unusable."""
    if not content:
        return None, "empty answer"
    try:
        parsed = schema_model.model_validate_json(content)
        if check is not None:
            check(parsed)
    except ValidationError as e:
        return None, f"answer does not match the schema ({_describe_validation(e)})"
    except ValueError as e:
        return None, f"answer does not fit the request ({e})"
    return parsed, ""


def _count_try(record: CallRecord, model: str, response: ollama.ChatResponse, outcome: str, seconds: float) -> None:
    tokens_in, tokens_out = response.prompt_eval_count or 0, response.eval_count or 0
    record.attempts += 1
    record.tokens_in += tokens_in
    record.tokens_out += tokens_out
    record.tries.append({"model": model, "outcome": outcome, "tokens_in": tokens_in, "tokens_out": tokens_out,
                         "latency_seconds": round(seconds, 4)})


def _answered(record: CallRecord, model: str, fallback_used: bool, response: ollama.ChatResponse) -> None:
    record.model = model
    record.fallback_used = fallback_used
    record.total_duration_seconds = _ns(response.total_duration)
    record.load_duration_seconds = _ns(response.load_duration)
    record.eval_duration_seconds = _ns(response.eval_duration)
    log.info("agent %s answered with %s (%d attempts, %d+%d tokens)", record.role, model, record.attempts,
             record.tokens_in, record.tokens_out)


def _trace_call(role: str, model: str, start_ns: int, response: ollama.ChatResponse | None, outcome: str,
                *, error_kind: str | None = None) -> None:
    """One Ollama request as a span: role, model, token counts and Ollama's timings, never the text."""
    if not tracing.enabled():
        return
    attrs: dict[str, Any] = {"gen_ai.system": "ollama", "gen_ai.operation.name": "chat",
                             "gen_ai.request.model": model, "omad.llm.role": role, "omad.outcome": outcome}
    if response is not None:
        attrs.update({
            "gen_ai.usage.input_tokens": response.prompt_eval_count or 0,
            "gen_ai.usage.output_tokens": response.eval_count or 0,
            "omad.llm.total_seconds": _ns(response.total_duration),
            "omad.llm.load_seconds": _ns(response.load_duration),
            "omad.llm.prompt_eval_seconds": _ns(response.prompt_eval_duration),
            "omad.llm.eval_seconds": _ns(response.eval_duration),
        })
    tracing.record_span(f"llm {role}", start_ns, attrs, error_kind=error_kind)


def _retry_instruction(reason: str, schema: dict[str, Any]) -> str:
    return (
        f"A resposta anterior não serve: {reason}. Responda de novo apenas com um objeto JSON que siga "
        f"exatamente este esquema, sem texto fora do JSON:\n{json.dumps(schema, ensure_ascii=False)}"
    )

