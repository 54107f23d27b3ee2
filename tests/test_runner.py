"""The retry policy is a pure function of the error, the attempt and the configuration."""

from __future__ import annotations

import pytest

from omad.config import Config
from omad.errors import ConfigError, GuardrailBlocked, InputError, StageFailed, ToolMissing, ToolTimeout, TransientError
from omad.runner import Decision, Next, decide

CFG = Config.model_validate({"jobs": {"max_attempts": 3, "backoff_seconds": 10, "backoff_max_seconds": 25}})
POLLING = Config.model_validate({"watch": {"mode": "polling", "settle_seconds": 2.0}})


@pytest.mark.parametrize("attempt,delay", [(1, 10.0), (2, 20.0)])
def test_a_transient_error_is_retried_with_doubling_backoff_capped(attempt: int, delay: float) -> None:
    assert decide(TransientError("disk full"), attempt, CFG, shutting_down=False) == Decision(Next.RETRY, delay)
    assert decide(ToolTimeout("slow"), attempt, CFG, shutting_down=False).next is Next.RETRY


def test_backoff_is_capped_and_attempts_run_out() -> None:
    cfg = Config.model_validate({"jobs": {"max_attempts": 5, "backoff_seconds": 10, "backoff_max_seconds": 25}})
    assert decide(TransientError("x"), 3, cfg, shutting_down=False) == Decision(Next.RETRY, 25.0)
    assert decide(TransientError("x"), 3, CFG, shutting_down=False) == Decision(Next.FAIL)


@pytest.mark.parametrize("err", [InputError("bad"), GuardrailBlocked("cpf"), StageFailed("boom"),
                                 ConfigError("typo"), ToolMissing("no espeak")])
def test_what_retrying_cannot_fix_fails_at_once(err: Exception) -> None:
    assert decide(err, 1, CFG, shutting_down=False) == Decision(Next.FAIL)  # type: ignore[arg-type]


def test_a_stage_stopped_by_shutdown_goes_back_to_the_queue_uncounted() -> None:
    assert decide(TransientError("stopped"), 3, CFG, shutting_down=True) == Decision(Next.REQUEUE)
    assert decide(InputError("bad"), 1, CFG, shutting_down=True) == Decision(Next.FAIL)


def test_polling_mode_gives_an_unreadable_input_one_more_look() -> None:
    unreadable = InputError("is not a media file", details={"unreadable": True})
    assert decide(unreadable, 1, POLLING, shutting_down=False) == Decision(Next.LOOK_AGAIN, 8.0)
    assert decide(unreadable, 2, POLLING, shutting_down=False) == Decision(Next.FAIL)
    assert decide(unreadable, 1, CFG, shutting_down=False) == Decision(Next.FAIL)  # inotify: writers are seen
    assert decide(InputError("bad brief"), 1, POLLING, shutting_down=False) == Decision(Next.FAIL)
