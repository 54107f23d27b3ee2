"""The Ollama boundary maps every exception the libraries can raise (httpx's own test, applied to us)."""

from __future__ import annotations

import inspect

import httpx
import ollama
import pytest

from omad.agents.ollama_errors import TABLE, Call, ModelMissing, OllamaUnreachable, map_error, ollama_call
from omad.errors import ConfigError, OmadError, StageFailed, ToolTimeout, TransientError

CALL = Call("http://127.0.0.1:11434", "qwen2:1.5b", "role editor with model qwen2:1.5b", 30.0)


def _exception_classes(module: object) -> set[type[BaseException]]:
    return {v for v in vars(module).values() if inspect.isclass(v) and issubclass(v, Exception)}


def test_every_exception_class_of_ollama_and_httpx_is_mapped() -> None:
    """GIVEN every exception class the installed ollama and httpx define
    THEN each is covered by the table: a new library version with a new error breaks this test."""
    covered = tuple(cls for classes, _ in TABLE for cls in classes)
    library = _exception_classes(ollama) | _exception_classes(httpx) | {ConnectionError}
    unmapped = sorted(f"{c.__module__}.{c.__name__}" for c in library if not issubclass(c, covered))
    assert not unmapped, f"Unmapped ollama/httpx exceptions: {unmapped}"


@pytest.mark.parametrize("exc,expected", [
    (ollama.ResponseError("model not found", 404), ModelMissing),
    (ollama.ResponseError("timeout", 408), TransientError),
    (ollama.ResponseError("slow down", 429), TransientError),
    (ollama.ResponseError("out of memory", 500), TransientError),
    (ollama.ResponseError("bad request", 400), StageFailed),
    (ConnectionError("refused"), OllamaUnreachable),
    (httpx.ConnectError("refused"), OllamaUnreachable),
    (httpx.ConnectTimeout("no answer"), OllamaUnreachable),
    (httpx.ReadTimeout("slow"), ToolTimeout),
    (httpx.InvalidURL("nope"), ConfigError),
    (httpx.RemoteProtocolError("closed"), TransientError),
    (ValueError("not json"), StageFailed),
    (ollama.RequestError("bad"), StageFailed),
])
def test_each_error_becomes_the_omad_error_its_policy_needs(exc: Exception, expected: type[OmadError]) -> None:
    mapped = map_error(exc, CALL)
    assert type(mapped) is expected or (expected is TransientError and type(mapped) is TransientError)
    assert mapped is not None and CALL.host in str(mapped)
    with pytest.raises(expected) as caught, ollama_call(CALL):
        raise exc
    assert caught.value.__cause__ is exc


def test_a_408_is_transient_for_the_agents_and_the_safety_check_alike() -> None:
    """One table for both callers: the agents used to retry 408 and the safety check did not."""
    from omad.guardrails import Guardrails, GuardrailsFile

    class Refusing:
        _client = httpx.Client(base_url="http://127.0.0.1:11434")

        def chat(self, **kwargs: object) -> object:
            raise ollama.ResponseError("request timeout", 408)

    guard = Guardrails(GuardrailsFile.model_validate({"safety_model": {"enabled": True, "model": "llama-guard3:1b"}}))
    with pytest.raises(TransientError):
        guard.check_safety("texto", "caption 1", Refusing())  # type: ignore[arg-type]
    assert map_error(ollama.ResponseError("request timeout", 408), CALL).retryable  # type: ignore[union-attr]
