"""The publisher: the words to post a finished video with (a pt-BR title, a description, hashtags).

One role, ``publisher`` (``llm.roles.publisher``: an Ollama model with a
JSON schema and a fallback model, like the agents' other roles), reads what
the video says (its title, its prompt or topic, each scene's narration) and
answers a :class:`~omad.agents.roles.PostAnswer`. Its words pass the
guardrails like every generated text: personal data is redacted, a blocked
word stops the job, the safety model (when enabled) reads them.

Without Ollama (not reachable, the models not pulled, no usable answer) the
post falls back to the brief: its title, or the first on-screen title, or the
drop's name; no description and no hashtags are made up. The reason is
recorded. Ollama is asked once, without the connection retries the agents
use: a scene video that never needed a model does not wait on one.
"""

from __future__ import annotations

import asyncio
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import StageFailed, ToolMissing, ToolTimeout, TransientError
from .host import nothing_listens, ollama_host

if TYPE_CHECKING:
    from ..config import Config
    from ..guardrails import Guardrails
    from ..lanes import Lanes
    from .client import CallRecord

__all__ = ["Post", "write_post", "hashtag", "MAX_TITLE"]

MAX_TITLE = 100
_MAX_HASHTAGS = 8


@dataclass
class Post:
    """What ``X.post.json`` holds."""

    title: str
    description: str = ""
    hashtags: list[str] = field(default_factory=list)
    #: "publisher" (the role wrote it) or "brief" (Ollama was not there: nothing invented)
    source: str = "brief"
    language: str = "pt-BR"
    why: str = ""
    findings: list[dict[str, Any]] = field(default_factory=list)
    records: list[CallRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"title": self.title, "description": self.description, "hashtags": self.hashtags,
                               "language": self.language, "source": self.source}
        if self.why:
            out["why"] = self.why
        return out


def hashtag(text: str) -> str:
    """``text`` as a hashtag: '#' and letters, digits and '_' only, accents dropped (empty when nothing is left)."""
    folded = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    word = re.sub(r"[^0-9A-Za-z_]", "", folded)
    return f"#{word[:39]}" if word and not word.isdigit() else ""


def _clip_title(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= MAX_TITLE:
        return text
    cut = text[: MAX_TITLE - 1].rsplit(" ", 1)[0]
    return cut + "\u2026"


async def _ask(video: dict[str, Any], config: Config, guard: Guardrails, lanes: Lanes | None, holder: str,
               label: str, language: str) -> Post:
    from .client import LlmClient
    from .roles import run_publisher

    # One try at the connection: the post is optional, the video is done.
    llm_cfg = config.llm.model_copy(update={"connect_retries": 0})
    async with LlmClient(llm_cfg, lanes, holder=holder) as llm:
        answer, record = await run_publisher(llm, llm_cfg, language, video)
        post = Post(title="", source="publisher", language=language, records=[record])
        cleaned: list[str] = []

        def clean(text: str, where: str) -> str:
            if not text.strip():
                return text
            outcome = guard.check(text, where, file=label)
            post.findings.extend(f.to_dict() for f in outcome.findings)
            cleaned.append(outcome.text)
            return outcome.text

        post.title = _clip_title(clean(answer.title, "publisher.title"))
        post.description = clean(answer.description.strip(), "publisher.description")
        tags = [hashtag(clean(t, f"publisher.hashtags[{i}]")) for i, t in enumerate(answer.hashtags)]
        post.hashtags = list(dict.fromkeys(t for t in tags if t))[:_MAX_HASHTAGS]
        if cleaned and guard.safety_enabled:
            post.findings.extend(await llm.safety_check(guard, "\n\n".join(cleaned), "publisher", file=label))
    return post


def write_post(video: dict[str, Any], fallback_title: str, *, config: Config, guard: Guardrails,
               lanes: Lanes | None = None, holder: str = "publisher", label: str = "brief", language: str = "pt-BR",
               cancel: threading.Event | None = None, timeout: float | None = None) -> Post:
    """The post for ``video`` from the publisher role, or from the brief when Ollama cannot write it.

    A guardrail block raises (the job stops, as for any generated text); a
    shutdown raises TransientError so the stage runs again later.
    """

    host = ollama_host(config.llm)
    if nothing_listens(host):
        # The common case without Ollama: no client, no GPU lane, no model marked resident for nothing.
        return Post(title=_clip_title(fallback_title), source="brief", language=language,
                    why=f"the publisher did not answer (Ollama is not reachable at {host}: nothing listens there); "
                        "the title is the brief's")

    async def main() -> Post:
        task = asyncio.ensure_future(_ask(video, config, guard, lanes, holder, label, language))
        while not task.done():
            await asyncio.wait({task}, timeout=0.2)
            if cancel is not None and cancel.is_set():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                raise TransientError("the post was stopped (omad is shutting down); it resumes later.", file=label)
        return task.result()

    try:
        return asyncio.run(asyncio.wait_for(main(), timeout))
    except (TransientError, ToolMissing, StageFailed, ToolTimeout, TimeoutError) as e:
        if isinstance(e, TransientError) and cancel is not None and cancel.is_set():
            raise
        why = str(e).splitlines()[0][:300] if str(e) else f"no answer within {timeout} s"
        return Post(title=_clip_title(fallback_title), source="brief", language=language,
                    why=f"the publisher did not answer ({why}); the title is the brief's")
