"""A real redis-server on a free port and real `omad worker` processes, for the celery executor's tests."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import yaml
from conftest import wait_for

REPO = Path(__file__).resolve().parents[1]

#: The signing key the tests' daemons and workers share (``omad key new`` makes one like it).
SIGNING_KEY = "test-signing-key-0123456789abcdef-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """redis-server without persistence (``--save "" --appendonly no``), as measured in docs/field-notes.md."""

    def __init__(self, folder: Path, password: str | None = None) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed: `make test` installs it (apt redis-server)")
        self.folder = folder
        self.password = password
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.folder)]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait()
        return self

    def _wait(self) -> bool:
        def answers() -> bool:
            try:
                return bool(self.client().ping())
            except Exception:
                return False

        wait_for(answers, 10, every=0.05, what="redis-server answering")
        return True

    def client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        """Kill -9 and start again on the same port: everything it held is gone (no persistence)."""
        self.stop()
        self.start()


class Worker:
    """One `omad worker` process with its own config file and state folder."""

    def __init__(self, root: Path, name: str, config: dict[str, Any], queues: str = "cpu,gpu",
                 concurrency: int = 1, exit_when_idle: float | None = None, metrics: bool = False) -> None:
        self.name = name
        self.node = name if "@" in name else f"omad@{name}"  # the node name omad gives it
        self.folder = root / f"worker-{name}"
        self.folder.mkdir(parents=True, exist_ok=True)
        data = json.loads(json.dumps(config))
        ex = data.setdefault("executor", {})
        ex["worker_state_dir"] = str(self.folder / "state")
        self.metrics_port = free_port() if metrics else 0
        ex["worker_metrics_port"] = self.metrics_port
        self.config_path = self.folder / "worker.yaml"
        self.config_path.write_text(yaml.safe_dump(data))
        self.args = [sys.executable, "-m", "omad.cli", "worker", "--config", str(self.config_path),
                     "--queues", queues, "--concurrency", str(concurrency), "--hostname", name]
        if exit_when_idle is not None:
            self.args += ["--exit-when-idle", str(exit_when_idle)]
        self.log = self.folder / "worker.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, redis: RedisServer, wait: bool = True, env: dict[str, str] | None = None) -> Worker:
        env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         cwd=self.folder, start_new_session=True)
        if wait:
            proc = self.proc

            def up() -> bool:
                if proc.poll() is not None:
                    raise RuntimeError(f"worker {self.name} exited: {self.log.read_text()[-3000:]}")
                return bool(redis.client().get(f"omad:worker:{self.node}") and self.children())

            try:
                wait_for(up, 60, what=f"worker {self.name} registered with its pool")
            except AssertionError as e:
                raise RuntimeError(f"worker {self.name} did not come up: {self.log.read_text()[-3000:]}") from e
        return self

    def children(self) -> list[psutil.Process]:
        assert self.proc is not None
        try:
            return psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return []

    def kill_child(self) -> None:
        """kill -9 of the pool child (the process running the stage)."""
        for child in self.children():
            child.send_signal(signal.SIGKILL)

    def kill(self) -> None:
        """kill -9 of the whole worker: main process and pool children."""
        assert self.proc is not None
        with_children = [self.proc.pid] + [c.pid for c in self.children()]
        for pid in with_children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def events(self, event: str) -> list[dict[str, Any]]:
        """The worker's JSON log lines with this event name."""
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("event") == event:
                    out.append(rec)
        return out
