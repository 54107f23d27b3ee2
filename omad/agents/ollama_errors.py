"""The one boundary between the ``ollama``/``httpx`` exceptions and omad's error tree.

Every Ollama call (the agents' roles, the guardrails' safety model) runs inside
:func:`ollama_call`, which maps library errors by :data:`TABLE`, first match
wins, ``from`` the cause:

    ollama.ResponseError 404        ModelMissing (ToolMissing)   pull it, or a fallback model answers
    ollama.ResponseError 408/429/5xx TransientError               retried with backoff
    ollama.ResponseError other      StageFailed
    ConnectionError, ConnectError,  OllamaUnreachable            retried by the caller, then transient
      ConnectTimeout
    httpx.TimeoutException          ToolTimeout
    httpx.InvalidURL, UnsupportedProtocol  ConfigError           llm.host is wrong
    httpx.HTTPError (the rest)      TransientError               the connection broke mid-call
    httpx.StreamError, CookieConflict, ollama.RequestError,
      ValueError (json/pydantic)    StageFailed                  not an Ollama chat answer

``tests/test_ollama_errors.py`` walks every exception class of ``ollama`` and
``httpx`` and fails on one this table does not cover, so a new library version
cannot slip an unmapped error past it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import ollama

from ..errors import ConfigError, OmadError, StageFailed, ToolMissing, ToolTimeout, TransientError

__all__ = ["Call", "ModelMissing", "OllamaUnreachable", "TABLE", "map_error", "ollama_call", "START_HINT"]

START_HINT = "Start it with `ollama serve` (or `sudo systemctl start ollama`), or set llm.host / OLLAMA_HOST"


class ModelMissing(ToolMissing):
    """Ollama answered 404: the model is not pulled."""

    kind = "tool_missing"


class OllamaUnreachable(TransientError):
    """Nothing answered at the Ollama host (refused, or no answer to the connect)."""


@dataclass(frozen=True)
class Call:
    """What was being asked, for the messages: ``what`` reads like "role editor with model qwen2:1.5b"."""

    host: str
    model: str
    what: str
    timeout: float
    stage: str | None = None
    #: said when the model is not pulled, after the pull command
    missing_hint: str = "or name another model in the config"


def _response(e: Exception, call: Call) -> OmadError:
    assert isinstance(e, ollama.ResponseError)
    details = {"host": call.host, "model": call.model, "status": e.status_code, "error": e.error[:300]}
    if e.status_code == 404:
        return ModelMissing(f"the model {call.model} is not pulled on Ollama at {call.host} ({call.what}). "
                            f"Run `ollama pull {call.model}`, {call.missing_hint}.", stage=call.stage,
                            details=details)
    if e.status_code >= 500 or e.status_code in (408, 429):
        return TransientError(f"Ollama at {call.host} failed {call.what}: {e.error[:300]} (HTTP {e.status_code}). "
                              "Out of memory? Try a smaller model; the job will be retried.", stage=call.stage,
                              details=details)
    return StageFailed(f"Ollama at {call.host} refused {call.what}: {e.error[:300]} (HTTP {e.status_code}).",
                       stage=call.stage, details=details)


def _unreachable(e: Exception, call: Call) -> OmadError:
    return OllamaUnreachable(f"Ollama is not reachable at {call.host} ({call.what}). {START_HINT} to where it runs.",
                             stage=call.stage, details={"host": call.host, "model": call.model,
                                                        "error": type(e).__name__})


def _timeout(e: Exception, call: Call) -> OmadError:
    return ToolTimeout(f"Ollama at {call.host} did not answer {call.what} within {call.timeout:g} s "
                       "(llm.timeout_seconds). A first call loads the model and can be slow: raise the timeout or "
                       "use a smaller model.", stage=call.stage,
                       details={"host": call.host, "model": call.model, "error": type(e).__name__})


def _bad_host(e: Exception, call: Call) -> OmadError:
    return ConfigError(f"llm.host / OLLAMA_HOST gives {call.host}, which is not a usable URL ({e}).",
                       stage=call.stage, details={"host": call.host})


def _broken(e: Exception, call: Call) -> OmadError:
    return TransientError(f"the connection to Ollama at {call.host} failed during {call.what} ({type(e).__name__}). "
                          "Check that Ollama is still running; the job will be retried.", stage=call.stage,
                          details={"host": call.host, "model": call.model, "error": type(e).__name__})


def _not_ollama(e: Exception, call: Call) -> OmadError:
    return StageFailed(f"Ollama at {call.host} sent something that is not an answer omad can read for {call.what} "
                       f"({type(e).__name__}). Is llm.host really an Ollama server?", stage=call.stage,
                       details={"host": call.host, "model": call.model, "error": type(e).__name__})


#: Library exception classes and how each becomes an omad error; the first match wins.
TABLE: tuple[tuple[tuple[type[BaseException], ...], Callable[[Exception, Call], OmadError]], ...] = (
    ((ollama.ResponseError,), _response),
    ((ConnectionError, httpx.ConnectError, httpx.ConnectTimeout), _unreachable),
    ((httpx.TimeoutException,), _timeout),
    ((httpx.InvalidURL, httpx.UnsupportedProtocol), _bad_host),
    ((httpx.HTTPError,), _broken),
    ((httpx.StreamError, httpx.CookieConflict, ollama.RequestError, ValueError), _not_ollama),
)

_ALL: tuple[type[BaseException], ...] = tuple(cls for classes, _ in TABLE for cls in classes)


def map_error(e: Exception, call: Call) -> OmadError | None:
    """The omad error for a library exception, or None when the table does not cover it."""
    for classes, make in TABLE:
        if isinstance(e, classes):
            return make(e, call)
    return None


@contextmanager
def ollama_call(call: Call) -> Iterator[None]:
    """Run an Ollama request; any library exception leaves as an omad error, ``from`` the cause."""
    try:
        yield
    except OmadError:
        raise
    except _ALL as e:
        mapped = map_error(e, call) if isinstance(e, Exception) else None
        if mapped is None:  # pragma: no cover - every class in _ALL is in the table
            raise
        raise mapped from e
