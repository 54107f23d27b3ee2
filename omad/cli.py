"""The ``omad`` command: run, once, worker, status, retry, pause, resume, priority, doctor, config, token, key,
notify, voices.

Every command takes ``--config``, ``--inbox``, ``--outbox`` and ``--state-dir``;
without ``--config``, ``$OMAD_CONFIG`` or ``./config/omad.yaml`` is read when
present, else the built-in defaults apply.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from gettext import NullTranslations
from pathlib import Path
from typing import Any

from . import __version__
from .cli_controls import add_control_commands, attach_extras, queue_line
from .config import Config, dump_config_yaml, load_config
from .errors import ConfigError, OmadError

__all__ = ["main"]


def _config(args: argparse.Namespace) -> Config:
    path = args.config or os.environ.get("OMAD_CONFIG")
    if path is None and Path("config/omad.yaml").is_file():
        path = "config/omad.yaml"
    return load_config(path, {"inbox": args.inbox, "outbox": args.outbox, "state_dir": args.state_dir})


def _paths(cfg: Config) -> Any:
    from .daemon import Paths

    shared = cfg.executor.shared_dir if cfg.executor.kind == "celery" else ""
    return Paths(Path(cfg.inbox).absolute(), Path(cfg.outbox).absolute(), Path(cfg.state_dir).absolute(),
                 Path(shared).absolute() if shared else None)


def _setup_logging(cfg: Config, paths: Any) -> None:
    from .log import configure_logging

    configure_logging(paths.outbox / "logs", cfg.log.level)


def cmd_run(args: argparse.Namespace) -> int:
    from .daemon import Daemon

    cfg = _config(args)
    paths = _paths(cfg)
    _setup_logging(cfg, paths)
    daemon = Daemon(cfg, paths)
    server = None
    if cfg.web.enabled:
        from .web import start_server

        server = start_server(daemon)
    notifier = None
    if cfg.notify.webhooks:
        from .webhooks import Notifier

        notifier = Notifier(cfg.notify, server.metrics.registry if server is not None else None).attach(daemon)

    extras = attach_extras(cfg, daemon, server)

    def _stop(signum: int, _frame: object) -> None:
        daemon.stop_event.set()
        daemon.wake.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        daemon.run()
    finally:
        if server is not None:
            server.shutdown()
        if notifier is not None:
            notifier.close()
        for extra in extras:
            extra.close()
    return 0


def cmd_once(args: argparse.Namespace) -> int:
    from .daemon import Daemon

    cfg = _config(args)
    paths = _paths(cfg)
    _setup_logging(cfg, paths)
    daemon = Daemon(cfg, paths, once=True)

    def _stop(signum: int, _frame: object) -> None:  # stop like `omad run`: running tools stopped, none orphaned
        daemon.stop_event.set()
        daemon.wake.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    code = daemon.run_once(max_wait=args.max_wait)
    done = [daemon.journal.get(i) for i in daemon.claimer.created]
    for job in done:
        if job is not None:
            outputs = (job.result or {}).get("outputs") or {}
            where = ", ".join(Path(p).name for p in outputs.values()) if isinstance(outputs, dict) else ""
            print(f"{job.status.value:9} {job.route:11} {job.name}  {where}")
    return code


def _bar(fraction: float, width: int = 20) -> str:
    filled = int(round(max(0.0, min(1.0, fraction)) * width))
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def _live_state(cfg: Config) -> dict[str, Any] | None:
    """Lanes and GPU residency from a running daemon's /api/status, if one answers."""
    if not cfg.web.enabled or not cfg.web.port:
        return None
    import urllib.request

    host = "127.0.0.1" if cfg.web.host in ("0.0.0.0", "") else "[::1]" if cfg.web.host == "::" else cfg.web.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    request = urllib.request.Request(f"http://{host}:{cfg.web.port}/api/status?limit=1")
    token = os.environ.get("OMAD_TOKEN")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=0.5) as r:
            data: dict[str, Any] = json.loads(r.read())
    except (OSError, ValueError):
        return None
    return {"lanes": data.get("lanes", []), "gpu": data.get("gpu", {}), "waiting_files": data.get("waiting_files")}


def _print_live(live: dict[str, Any], tr: NullTranslations) -> None:
    _ = tr.gettext
    for lane in live["lanes"]:
        print(_("lane %(name)s  busy %(busy)s/%(capacity)s  waiting %(waiting)s  %(holders)s")
              % {"name": f"{lane['name']:3}", "busy": lane["busy"],
                 "capacity": f"{lane['capacity']}+{lane['lent']}" if lane.get("lent") else lane["capacity"],
                 "waiting": lane["waiting"], "holders": ", ".join(lane.get("holders") or [])})
    gpu = live["gpu"]
    residents = ", ".join(f"{r['model']} ({r['vram_gb']} GB)" for r in gpu.get("residents") or []) or _("none")
    print(_("gpu  %(resident)s/%(budget)s GB resident: %(models)s")
          % {"resident": gpu.get("resident_gb", 0), "budget": gpu.get("budget_gb", 0), "models": residents})
    if live.get("waiting_files"):
        n = int(live["waiting_files"])
        print(tr.ngettext("inbox: %(num)d file waiting to settle or for a partner",
                          "inbox: %(num)d files waiting to settle or for a partner", n) % {"num": n})


def _print_status(cfg: Config, paths: Any, as_json: bool, limit: int) -> None:
    from .i18n import resolve, translations
    from .journal import Journal
    from .summary import job_summary
    from .web.templating import STATUS_LABELS

    tr = translations(resolve(cfg.web.language, terminal=True))
    _ = tr.gettext

    def label(status: str) -> str:
        return _(STATUS_LABELS[status]) if status in STATUS_LABELS else status

    if not paths.journal.exists():
        print(json.dumps({"jobs": []}) if as_json else _("no jobs yet (the journal does not exist)."))
        return
    journal = Journal(paths.journal)
    try:
        price = cfg.metrics
        rows = [{**job_summary(j, price), "outputs": (j.result or {}).get("outputs")}
                for j in journal.jobs(limit=limit)]
        live = _live_state(cfg)
        if as_json:
            from .controls import read_queue_state

            print(json.dumps({"jobs": rows, "counts": journal.counts(), "currency": price.currency,
                              "daemon": live, "queue": read_queue_state(journal).to_dict()}, indent=2))
            return
        print(queue_line(cfg, journal))
        if live is not None:
            _print_live(live, tr)
        else:
            print(_("(no running daemon answered on web.port: lane and GPU state unknown; with "
                    "web.require_token, set $OMAD_TOKEN)"))
        if not rows:
            print(_("no jobs yet."))
            return
        for r in rows:
            secs = f"{r['seconds']:.1f}s" if r["seconds"] is not None else "-"
            print(f"{r['id'][:18]:18} {label(r['status']):10} {r['route']:11} {_bar(r['progress'])} "
                  f"{(r['stage'] or '-'):10} {secs:>8} {r['cost']['estimated']:.4f} {price.currency}  {r['name']}")
            if r["message"]:
                print(f"{'':18} {r['message']}")
        counts = journal.counts()
        print("  ".join(f"{label(k)}: {v}" for k, v in sorted(counts.items())))
    finally:
        journal.close()


def cmd_status(args: argparse.Namespace) -> int:
    cfg = _config(args)
    paths = _paths(cfg)
    if not args.watch:
        _print_status(cfg, paths, args.json, args.limit)
        return 0
    try:
        while True:
            sys.stdout.write("\x1b[2J\x1b[H")
            print(f"omad status  {time.strftime('%H:%M:%S')}  (Ctrl-C to leave)\n")
            _print_status(cfg, paths, False, args.limit)
            sys.stdout.flush()
            time.sleep(1.0)
    except KeyboardInterrupt:
        return 0


def cmd_retry(args: argparse.Namespace) -> int:
    from .daemon import retry_job
    from .journal import JobStatus, Journal

    cfg = _config(args)
    paths = _paths(cfg)
    journal = Journal(paths.journal)
    try:
        ids = [j.id for j in journal.jobs([JobStatus.FAILED])] if args.failed else [args.job_id]
        if not ids or ids == [None]:
            print("nothing to retry." if args.failed else "give a JOB_ID or --failed.")
            return 0 if args.failed else 2
        code = 0
        for job_id in ids:
            try:
                print(retry_job(journal, paths, job_id))
            except OmadError as e:
                print(f"{job_id}: {e}", file=sys.stderr)
                code = 1
        return code
    finally:
        journal.close()


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import print_checks, run_checks

    cfg = _config(args)
    return print_checks(run_checks(cfg, _paths(cfg), worker=args.worker))


def cmd_worker(args: argparse.Namespace) -> int:
    from .cluster.service import run_worker
    from .log import configure_logging

    cfg = _config(args)
    queues = [q.strip() for q in args.queues.split(",") if q.strip()]
    bad = [q for q in queues if q not in ("cpu", "gpu")]
    if bad or not queues:
        raise ConfigError(f"--queues takes cpu, gpu or cpu,gpu (not {args.queues!r}).")
    if args.windows:
        from .windows import parse_window

        for text in args.windows:
            try:
                parse_window(text)
            except ValueError as e:
                raise ConfigError(f"--windows: {e}.") from e
        # The worker starts tasks of either lane only inside these windows (as lanes.*.windows do).
        cfg.lanes.cpu.windows = list(args.windows)
        cfg.lanes.gpu.windows = list(args.windows)
    configure_logging(None, cfg.log.level)
    return run_worker(cfg, queues=queues, concurrency=args.concurrency, hostname=args.hostname,
                      exit_when_idle=args.exit_when_idle, loglevel=cfg.log.level.upper())


def cmd_config(args: argparse.Namespace) -> int:
    cfg = _config(args) if not args.defaults else Config()
    sys.stdout.write(dump_config_yaml(cfg))
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from .web.auth import TokenStore, tokens_path

    cfg = _config(args)
    store = TokenStore(tokens_path(cfg.web, _paths(cfg).state))
    if args.action in ("add", "new", "revoke") and not args.name:
        print(f"give the token a NAME: omad token {args.action} NAME", file=sys.stderr)
        return 2
    if args.action in ("add", "new"):
        from .web.scopes import Scope

        scopes = [Scope(s) for s in args.scope or []]
        token = store.add(args.name, scopes or None)
        print(token)
        rights = "scopes " + ", ".join(sorted(scopes)) if scopes else "full rights (read, submit, admin)"
        print(f"token '{args.name}' made with {rights}; this is the only time it is shown. Only its hash is kept, "
              f"in {store.path}.", file=sys.stderr)
        return 0
    if args.action == "revoke":
        n = store.revoke(args.name)
        print(f"revoked {n} token(s) named '{args.name}'; requests with it now get 403.")
        return 0
    tokens = store.tokens()
    if not tokens:
        print(f"no tokens in {store.path}. Make one with `omad token add NAME`.")
    for t in tokens:
        made = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(t.get("created_at") or 0)))
        state = "revoked " + time.strftime("%Y-%m-%d %H:%M", time.localtime(float(t["revoked_at"]))) \
            if t.get("revoked_at") else "live"
        rights = ",".join(map(str, t["scopes"])) if t.get("scopes") else "read,submit,admin"
        print(f"{str(t.get('name')):24} {made}  {state:24} {rights}")
    return 0


def cmd_key(args: argparse.Namespace) -> int:
    """``omad key new``: a signing key for task messages and results (executor.kind: celery)."""
    from .trust import CREDENTIAL, KEY_ENV, new_key

    key = new_key()
    if args.file:
        path = Path(args.file)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            print(f"{path} exists; omad never overwrites a key (every worker would need the new one).",
                  file=sys.stderr)
            return 1
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
        print(f"signing key written to {path} (mode 600). Give the same file to the daemon and every worker: "
              f"LoadCredential={CREDENTIAL}:{path.absolute()} in their units.", file=sys.stderr)
        return 0
    print(key)
    print(f"a signing key; give the same one to the daemon and every worker (${KEY_ENV}, executor.signing_key or "
          f"the systemd credential {CREDENTIAL}). It is shown only now.", file=sys.stderr)
    return 0


def cmd_notify(args: argparse.Namespace) -> int:
    from .webhooks import Notifier, public_url

    cfg = _config(args)
    _setup_logging(cfg, _paths(cfg))
    if not cfg.notify.webhooks and not cfg.notify.apprise:
        print("no webhooks or Apprise targets configured: add notify.webhooks or notify.apprise to the config.",
              file=sys.stderr)
        return 1
    notifier = Notifier(cfg.notify)
    failed = 0
    for hook, outcome in notifier.send_test(args.event):
        print(f"{outcome.status:>4}  {public_url(hook.url)}  {outcome.message}")
        failed += 0 if outcome.ok else 1
    if cfg.notify.apprise:
        from .notify import AppriseNotifier, mask_url

        for target, delivery in AppriseNotifier(cfg.notify).send_test(args.event):
            print(f"{'ok' if delivery.ok else 'FAIL':>4}  {mask_url(target.url)}  {delivery.message}")
            failed += 0 if delivery.ok else 1
    return 1 if failed else 0


def cmd_voices(args: argparse.Namespace) -> int:
    from .tts.voices import SAMPLE_TEXT, list_voices, say

    cfg = _config(args)
    if args.action == "say":
        if not args.name:
            print('give a voice: omad voices say NAME "texto" [-o out.wav] (`omad voices` lists them)', file=sys.stderr)
            return 2
        out = Path(args.output or f"{args.name.replace(':', '-')}.wav")
        facts = say(cfg, args.name, args.text or SAMPLE_TEXT, out)
        print(f"{out}: {facts['duration']:.2f} s, {facts['engine']} voice {facts['voice']}, "
              f"{facts['sample_rate']} Hz, RTF {facts.get('rtf')}")
        return 0
    voices = list_voices(cfg)
    if args.json:
        print(json.dumps([v.to_dict() for v in voices], indent=2, ensure_ascii=False))
        return 0
    print(f"{'NAME':28} {'ENGINE':7} {'LANGUAGE':9} {'QUALITY':8} {'SIZE':>8} {'RATE':>6}  SPEAKERS")
    for v in voices:
        size = f"{v.size_bytes / 2**20:.1f} MB" if v.size_bytes else "-"
        speakers = ", ".join(v.speakers[:5]) + (f" (+{len(v.speakers) - 5})" if len(v.speakers) > 5 else "") \
            if v.speakers else "1"
        print(f"{v.name:28} {v.engine:7} {v.language:9} {v.quality:8} {size:>8} {v.sample_rate:>6}  {speakers}")
    if not any(v.engine == "piper" for v in voices):
        print("no Piper voice installed: `omad models pull piper:pt_BR-faber-medium` gets a natural pt-BR voice.",
              file=sys.stderr)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from . import models

    cfg = _config(args)
    if args.action == "list":
        print("\n".join(models.listing(cfg)))
        return 0
    if not args.name:
        raise ConfigError("omad models pull needs a NAME: whisper-<size> (e.g. whisper-base), piper:<voice>, "
                          "or a path.")
    source = Path(args.source).expanduser() if args.source else None
    got = models.pull(cfg, args.name, source=source, revision=args.revision)
    print(f"{got.kind.value} model '{got.name}' installed in {got.path} ({got.size} bytes, sha256 {got.sha256}, "
          f"from {got.source})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="config file (default: $OMAD_CONFIG or ./config/omad.yaml)")
    common.add_argument("--inbox", help="watched folder (default ./inbox)")
    common.add_argument("--outbox", help="results folder (default ./outbox)")
    common.add_argument("--state-dir", dest="state_dir", help="journal and work dirs (default ./.omad)")
    p = argparse.ArgumentParser(prog="omad", description="Turn files dropped into a folder into finished media.")
    p.add_argument("--version", action="version", version=f"omad {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("run", parents=[common], help="run the daemon in the foreground").set_defaults(fn=cmd_run)
    once = sub.add_parser("once", parents=[common], help="process every ready drop now, wait, exit 1 if any failed")
    once.add_argument("--max-wait", type=float, default=None, help="seconds to wait for files still being copied")
    once.set_defaults(fn=cmd_once)
    st = sub.add_parser("status", parents=[common], help="jobs, their stage and progress")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.add_argument("--watch", action="store_true", help="refresh every second")
    st.add_argument("--limit", type=int, default=50, help="newest N jobs")
    st.set_defaults(fn=cmd_status)
    rt = sub.add_parser("retry", parents=[common], help="retry a failed job (puts its inputs back in the inbox)")
    rt.add_argument("job_id", nargs="?", help="job id or unique prefix")
    rt.add_argument("--failed", action="store_true", help="retry every failed job")
    rt.set_defaults(fn=cmd_retry)
    dr = sub.add_parser("doctor", parents=[common], help="check tools, folders, disk and journal")
    dr.add_argument("--worker", action="store_true", help="on a worker: also check the broker, the queues and "
                                                          "the shared folder")
    dr.set_defaults(fn=cmd_doctor)
    wk = sub.add_parser("worker", parents=[common], help="run stage tasks from Redis (executor.kind: celery)")
    wk.add_argument("--queues", default="cpu,gpu", help="cpu, gpu or cpu,gpu (default both)")
    wk.add_argument("--concurrency", type=int, default=1, help="stages at once (a GPU worker: 1)")
    wk.add_argument("--hostname", default=None, help="the worker's name (default omad@HOST)")
    wk.add_argument("--exit-when-idle", dest="exit_when_idle", type=float, default=None, metavar="SECONDS",
                    help="stop once no task has run for this long (an on-demand GPU machine)")
    wk.add_argument("--windows", action="append", default=[], metavar="WINDOW",
                    help="start tasks only inside this window, local time ('00:00-07:00', 'mon-fri 22:00-06:00'); "
                         "repeat for more (default: the config's lanes.*.windows)")
    wk.set_defaults(fn=cmd_worker)
    add_control_commands(sub, common)
    cf = sub.add_parser("config", parents=[common], help="print the configuration as documented YAML")
    cf.add_argument("--dump", action="store_true", help="(default) print the effective configuration")
    cf.add_argument("--defaults", action="store_true", help="print the built-in defaults")
    cf.set_defaults(fn=cmd_config)
    tk = sub.add_parser("token", parents=[common], help="API and web UI tokens: add (or new), list, revoke")
    tk.add_argument("action", choices=["add", "new", "list", "revoke"])
    tk.add_argument("name", nargs="?", help="the token's name (add, revoke)")
    tk.add_argument("--scope", action="append", choices=["read", "submit", "admin"],
                    help="limit the token (repeat for several): read jobs and results, submit jobs, admin (retry, "
                         "cancel, failed originals, logs). Without it: full rights")
    tk.set_defaults(fn=cmd_token)
    ky = sub.add_parser("key", help="the signing key of task messages and results (executor.kind: celery)")
    ky.add_argument("action", choices=["new"])
    ky.add_argument("--file", default=None, help="write it to this new file (mode 600) instead of printing it")
    ky.set_defaults(fn=cmd_key)
    nt = sub.add_parser("notify", parents=[common],
                        help="webhooks and Apprise targets: `omad notify test` sends a sample")
    nt.add_argument("action", choices=["test"])
    nt.add_argument("--event", choices=["job.done", "job.failed"], default="job.done")
    nt.set_defaults(fn=cmd_notify)
    vc = sub.add_parser("voices", parents=[common], help="installed narration voices; `omad voices say NAME \"texto\"`")
    vc.add_argument("action", nargs="?", choices=["list", "say"], default="list")
    vc.add_argument("name", nargs="?", help="say: a voice `omad voices` lists (or an espeak-ng voice)")
    vc.add_argument("text", nargs="?", help="say: the words (default: a pt-BR sample sentence)")
    vc.add_argument("-o", "--output", help="say: the WAV to write (default NAME.wav)")
    vc.add_argument("--json", action="store_true", help="list: machine-readable output")
    vc.set_defaults(fn=cmd_voices)


    md = sub.add_parser("models", parents=[common], help="speech models and voices: list, or pull one explicitly")
    md.add_argument("action", choices=["list", "pull"])
    md.add_argument("name", nargs="?", help="pull: whisper-<size>, piper:<voice>, or a local model folder/.onnx")
    md.add_argument("--from", dest="source", help="pull: copy from this local folder or .onnx instead of the Hub")
    md.add_argument("--revision", default="main", help="pull: the Hub revision (branch, tag or commit)")
    md.set_defaults(fn=cmd_models)
    return p


def keep_freed_memory() -> None:
    """glibc keeps up to 64 MB of freed memory for reuse instead of handing it back to the kernel at once.

    omad allocates and frees the same large blocks over and over: each frame of a render (~6 MB at 1080p) and
    each loudness pass's buffers (~10 MB, two per narration). With glibc's defaults much of that memory went
    back to the kernel and was faulted in and zeroed again on the next use: ~15 % of the CPU of a batch of
    short narrations (docs/benchmarks.md). Blocks under 16 MB now come from the heap, and up to 64 MB freed at
    a heap's top is kept (32 MB kept saved nothing measurable). The same two settings go to omad's children
    through glibc's environment variables: an encoder reading 1.8 GB of raw frames through a pipe (a 19 s
    1080p scene video) allocated and zeroed a fresh buffer for much of it (~0.3 CPU-s of page faults). Not
    glibc, or ``MALLOC_TRIM_THRESHOLD_`` or ``MALLOC_MMAP_THRESHOLD_`` set: nothing is changed.
    """
    if sys.platform != "linux" or "MALLOC_TRIM_THRESHOLD_" in os.environ or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return  # musl and others: their allocator, their defaults
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    mallopt(m_mmap_threshold, 16 << 20)
    mallopt(m_trim_threshold, 64 << 20)
    os.environ["MALLOC_MMAP_THRESHOLD_"] = str(16 << 20)  # read by each child's glibc when it starts
    os.environ["MALLOC_TRIM_THRESHOLD_"] = str(64 << 20)


def main(argv: Sequence[str] | None = None) -> int:
    # numpy's OpenBLAS starts a thread per core on its first matrix product and those threads spin for a while
    # after each one: with omad's small products (word timing) they burned ~19 % of the CPU of a batch of short
    # narrations and ~2 % of a render, fighting x264 for the cores. One thread does these products as fast.
    # Set before numpy is first imported (nothing on the way here imports it); an explicit setting wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    keep_freed_memory()
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except OmadError as e:
        print(f"omad: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
