"""Which Ollama, and what it holds: the host, a model's VRAM estimate, unloading, and `omad doctor`'s checks.

Small calls that need no pipeline: the GPU lane's residency unloads through
:func:`unload_model` from any thread, and ``omad doctor`` lists what is pulled.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..config import from_env
from ..errors import ConfigError
from ..guardrails import guardrails_for

if TYPE_CHECKING:
    from ..config import Config, LlmConfig

__all__ = ["DEFAULT_HOST", "ollama_host", "estimate_vram_gb", "unload_model", "doctor_checks", "tls_context"]

log = logging.getLogger("omad.agents")

DEFAULT_HOST = "http://127.0.0.1:11434"
# VRAM estimate for a model whose size is not configured: q4 weights take about
# half a gigabyte per billion parameters, plus about 1 GB for the KV cache and
# runtime (3b -> 2.5 GB, 7b -> 4.5 GB). A tag without a size is assumed to be 7b.
GB_PER_BILLION_PARAMS = 0.5
RUNTIME_OVERHEAD_GB = 1.0
UNKNOWN_SIZE_BILLIONS = 7.0
_SIZE_RE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)b(?![a-z])", re.IGNORECASE)


def ollama_host(config: LlmConfig) -> str:
    """The Ollama URL: ``llm.host``, else ``$OLLAMA_HOST``, else the local default; always scheme://host:port.

    Like the ollama CLI, a bare ``host`` or ``host:port`` means http on port 11434
    by default, while an explicit ``http://``/``https://`` URL defaults to 80/443.
    """
    given = from_env(config.host, "llm.host")
    if not given:
        return DEFAULT_HOST
    has_scheme = "://" in given
    parts = urlsplit(given if has_scheme else "http://" + given)
    hostname = parts.hostname or "127.0.0.1"
    if ":" in hostname:  # an IPv6 literal keeps its brackets in a URL
        hostname = f"[{hostname}]"
    try:
        port = parts.port
    except ValueError as e:
        raise ConfigError(f"llm.host / OLLAMA_HOST '{given}' has an invalid port.") from e
    if port is None:
        port = (443 if parts.scheme == "https" else 80) if has_scheme else 11434
    return f"{parts.scheme}://{hostname}:{port}{parts.path.rstrip('/')}"


def estimate_vram_gb(model: str, configured: dict[str, float] | None = None) -> float:
    """VRAM a model takes in the GPU lane: ``llm.model_vram_gb[model]`` when set, else estimated from its tag.

    The estimate reads the parameter count from the tag (``qwen2.5:3b-instruct`` -> 3,
    ``phi3.5:3.8b-mini`` -> 3.8) and assumes q4 weights: 0.5 GB per billion
    parameters + 1 GB runtime. A tag without a size counts as 7b (4.5 GB).
    """
    if configured and model in configured:
        return configured[model]
    name, _, tag = model.partition(":")
    match = _SIZE_RE.search(tag) or _SIZE_RE.search(name)
    billions = float(match.group(1)) if match else UNKNOWN_SIZE_BILLIONS
    return round(billions * GB_PER_BILLION_PARAMS + RUNTIME_OVERHEAD_GB, 2)


def nothing_listens(host: str, timeout: float = 1.0) -> bool:
    """True when a connection to ``host`` (an :func:`ollama_host` URL) is refused or its name does not resolve.

    A cheap look before the ollama client (~0.3 s of imports) and the GPU lane are taken for an optional call
    (the post): only a plain "nobody is there" counts. A connect that times out, a network error or a proxy
    set in the environment (httpx would go through it, not straight to the host) leave it to the client.
    """
    if any(os.environ.get(k) for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                                       "all_proxy")):
        return False
    parts = urlsplit(host)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout):
            return False
    except (ConnectionRefusedError, socket.gaierror):
        return True
    except (OSError, ValueError):
        return False


def tls_context() -> ssl.SSLContext:
    import httpx

    # httpx builds a fresh TLS context (~40 ms of certificate loading) for every client it makes, even for
    # plain http; one shared context, with httpx's own defaults, keeps each call cheap.
    return httpx.create_ssl_context()


def unload_model(host: str, model: str, timeout: float = 30.0) -> None:
    """Ask Ollama to unload ``model`` now (``keep_alive=0``, no messages). Never raises.

    Called by the GPU lane's residency from any thread (evicting before F5 loads,
    idle unload, shutdown); an unreachable Ollama must not fail that other job,
    and the model then goes away by itself when its keep-alive ends.
    """
    import ollama

    try:
        with ollama.Client(host=host, timeout=timeout, verify=tls_context()) as c:
            c.chat(model=model, messages=[], keep_alive=0)
        log.info("unloaded ollama model %s", model)
    except ConnectionError:
        # Nothing answers there, so nothing is loaded there (the call that reserved the lane could not connect).
        log.info("ollama at %s is not reachable; model %s is not loaded there", host, model)
    except Exception as e:  # noqa: BLE001 - best effort by design, see docstring
        log.warning("could not unload ollama model %s at %s: %s", model, host, type(e).__name__)


def _installed(names: Sequence[str | None]) -> set[str]:
    found = set()
    for n in names:
        if n:
            found.add(n)
            if ":" not in n:
                found.add(n + ":latest")
            elif n.endswith(":latest"):
                found.add(n.removesuffix(":latest"))
    return found


def doctor_checks(config: Config) -> list[tuple[str, bool, str]]:
    """``omad doctor`` lines for the agents: Ollama reachable, and every role model pulled (with the pull command)."""
    import httpx
    import ollama

    from .ollama_errors import START_HINT

    llm = config.llm
    host = ollama_host(llm)
    checks: list[tuple[str, bool, str]] = []
    try:
        timeout = min(10.0, llm.timeout_seconds)
        with ollama.Client(host=host, timeout=timeout, verify=tls_context()) as c:
            listed = c.list()
        version = httpx.get(f"{host}/api/version", timeout=timeout).json().get("version", "?")
    except (ConnectionError, httpx.HTTPError, httpx.InvalidURL, ollama.ResponseError, ValueError) as e:
        checks.append(("ollama", False, f"not reachable at {host} ({type(e).__name__}). {START_HINT}."))
        return checks
    checks.append(("ollama", True, f"version {version} at {host}"))
    have = _installed([m.model for m in listed.models])
    users: dict[str, list[str]] = {}
    for role_name in type(llm.roles).model_fields:
        role = getattr(llm.roles, role_name)
        users.setdefault(role.model, []).append(role_name)
        if role.fallback:
            users.setdefault(role.fallback, []).append(f"{role_name} fallback")
    try:
        guard = guardrails_for(config)
    except ConfigError:
        guard = None  # the guardrails check reports a broken rules file; here only its model matters
    if guard is not None and guard.safety_enabled:
        users.setdefault(guard.rules.safety_model.model, []).append("guardrails safety_model")
    for model, used_by in users.items():
        ok = model in have or (":" not in model and f"{model}:latest" in have)
        detail = "pulled" if ok else f"missing: run `ollama pull {model}`"
        checks.append((f"ollama model {model}", ok, f"{detail} (used by {', '.join(used_by)})"))
    return checks
