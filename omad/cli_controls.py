"""The ``omad`` commands for the operator's controls: pause, resume, priority; and the daemon's optional helpers.

``omad pause`` and ``omad resume`` write the journal's pause row (see
:mod:`omad.controls`): the running daemon reads it at every tick, so the
commands need no network, work with the web side off or behind tokens, and
the state survives a restart. ``omad run`` attaches hooks, Apprise
notifications and the GPU waker here when they are configured.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from types import ModuleType
from typing import Any

from .config import Config
from .errors import ConfigError

__all__ = ["add_control_commands", "attach_extras", "queue_line", "cmd_pause", "cmd_priority"]


def _cli() -> ModuleType:
    from . import cli

    return cli


def queue_line(cfg: Config, journal: Any) -> str:
    """One line: whether the queue is paused (and since when), and each lane's windows."""
    from .controls import Controls
    from .i18n import resolve, translations

    _ = translations(resolve(cfg.web.language, terminal=True)).gettext
    controls = Controls(cfg, journal)
    state = controls.state
    if state.paused:
        values = {"since": time.strftime("%Y-%m-%d %H:%M", time.localtime(state.since or 0)), "who": state.by}
        head = (_("queue: PAUSED since %(since)s by %(who)s") if state.by else _("queue: PAUSED since %(since)s")) \
            % values
        head += (_(" (running stages were stopped)") if state.now else _(" (running stages finish)")) \
            + _("; `omad resume` starts it again")
    else:
        head = _("queue: running")
    lanes = [f"{g.lane} {g.reason or _('open')} ({', '.join(g.windows)})" for g in controls.lanes() if g.windows]
    return head + ("; " + "; ".join(lanes) if lanes else "")


def _journal_for(cfg: Config) -> Any:
    from .journal import Journal

    paths = _cli()._paths(cfg)
    if not paths.journal.exists():
        raise ConfigError(f"no journal at {paths.journal}: start `omad run` once, or give the --state-dir it uses.")
    return Journal(paths.journal)


def cmd_pause(args: argparse.Namespace) -> int:
    """Pause (or resume) through the journal: the running daemon reads it at its next tick (no network needed)."""
    from .controls import write_queue_state

    journal = _journal_for(_cli()._config(args))
    try:
        who = f"cli:{os.environ.get('USER') or os.getuid()}"
        if args.command == "resume":
            write_queue_state(journal, paused=False, by=who)
            print("queue resumed: waiting stages start again (a running daemon sees it within a second).")
        else:
            write_queue_state(journal, paused=True, now=args.now, by=who)
            print("queue paused: " + ("running stages are stopped and go back to the queue without spending an "
                                      "attempt" if args.now else "running stages finish; no new stage starts")
                  + ". Drops are still taken in. `omad resume` starts it again.")
    finally:
        journal.close()
    return 0


def cmd_priority(args: argparse.Namespace) -> int:
    from .controls import parse_priority, priority_label

    journal = _journal_for(_cli()._config(args))
    try:
        try:
            value = parse_priority(args.priority)
        except ValueError as e:
            raise ConfigError(f"{e}.") from e
        job = journal.get(args.job_id)
        matches = [job] if job is not None else journal.find(args.job_id)
        if len(matches) != 1:
            print(f"no single job matches '{args.job_id}'. See `omad status`.", file=sys.stderr)
            return 1
        journal.update(matches[0].id, priority=value)
        print(f"{matches[0].id}: priority {priority_label(value)} ({value})")
    finally:
        journal.close()
    return 0


def attach_extras(cfg: Config, daemon: Any, server: Any) -> list[Any]:
    """Hooks, Apprise notifications and the GPU waker, each when configured; they close when the daemon stops."""
    out: list[Any] = []
    registry = server.metrics.registry if server is not None else None
    if cfg.hooks.after_publish or cfg.hooks.after_fail:
        from .hooks import Hooks

        out.append(Hooks(cfg.hooks).attach(daemon))
    if cfg.notify.apprise:
        from .notify import AppriseNotifier

        out.append(AppriseNotifier(cfg.notify, registry).attach(daemon))
    if cfg.executor.kind == "celery" and (cfg.executor.wake_mac or cfg.executor.wake_command):
        from .wake import GpuWaker

        out.append(GpuWaker(cfg.executor, registry).attach(daemon))
    return out


def add_control_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """``omad pause``, ``omad resume`` and ``omad priority``."""
    pa = sub.add_parser("pause", parents=[common], help="pause the queue: no new stage starts (drops are still "
                                                        "taken in)")
    pa.add_argument("--now", action="store_true", help="also stop running stages; their jobs go back to the queue "
                                                       "without spending an attempt")
    pa.set_defaults(fn=cmd_pause)
    sub.add_parser("resume", parents=[common], help="resume a paused queue").set_defaults(fn=cmd_pause)
    pr = sub.add_parser("priority", parents=[common], help="set a job's priority (higher first)")
    pr.add_argument("job_id", help="job id or unique prefix")
    pr.add_argument("priority", help="low, normal, high or an integer")
    pr.set_defaults(fn=cmd_priority)
