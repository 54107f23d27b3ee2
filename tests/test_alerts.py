"""The alert rules and the dashboard, proved against Prometheus itself.

``promtool test rules`` runs the unit tests in ``tests/prometheus/alerts.test.yml`` (synthetic
series: each alert fires when it should, after its ``for:``, and stays quiet when it should not).
The slow test starts Debian's real ``prometheus`` scraping a real ``omad run`` on loopback with the
shipped scrape config and rules, drops files that fail, stops the daemon, and asks that Prometheus
for the alerts and for every query of the Grafana dashboard.
"""

from __future__ import annotations

import http.client
import json
import math
import shutil
import signal
import socket
import subprocess
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import make_video, wait_for, write_srt

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
RULES = DEPLOY / "prometheus-alerts.yml"
RULE_TESTS = REPO / "tests" / "prometheus" / "alerts.test.yml"
OMAD = str(REPO / ".venv" / "bin" / "omad")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian: apt-get install prometheus; `make test` installs it)")
    return path


def _alerts() -> dict[str, dict[str, Any]]:
    rules = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}


def _minutes(duration: str) -> float:
    units = {"s": 1 / 60, "m": 1.0, "h": 60.0}
    return float(duration[:-1]) * units[duration[-1]]


# -- unit tests of the rules --------------------------------------------------------------------------


def test_alert_rules_pass_their_promtool_unit_tests() -> None:
    """GIVEN the synthetic series of tests/prometheus/alerts.test.yml
    WHEN promtool evaluates the shipped rules on them
    THEN every alert fires, with its labels and rendered texts, exactly when the tests say."""
    promtool = _tool("promtool")
    done = subprocess.run([promtool, "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, timeout=120,
                          cwd=RULE_TESTS.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_is_tested_firing_after_its_for_and_quiet() -> None:
    """Each alert has a test where it is quiet one evaluation before it fires, no earlier than its
    ``for:``, and one where it never fires: adding an alert without its tests fails here."""
    tests = yaml.safe_load(RULE_TESTS.read_text())
    assert tests["rule_files"] == ["../../deploy/prometheus-alerts.yml"]
    step = _minutes(tests["evaluation_interval"])
    fires: dict[str, list[tuple[float, float]]] = {}
    quiet: dict[str, int] = {}
    for group in tests["tests"]:
        cases = group["alert_rule_test"]
        by_alert: dict[str, list[tuple[float, bool]]] = {}
        for c in cases:
            by_alert.setdefault(c["alertname"], []).append((_minutes(c["eval_time"]), bool(c["exp_alerts"])))
        for alert, points in by_alert.items():
            points.sort()
            if not any(firing for _, firing in points):
                quiet[alert] = quiet.get(alert, 0) + 1
            for (t0, f0), (t1, f1) in zip(points, points[1:], strict=False):
                if not f0 and f1 and t1 - t0 <= step:
                    fires.setdefault(alert, []).append((t0, t1))
    for name, rule in _alerts().items():
        wait = _minutes(rule.get("for", "0m"))
        assert fires.get(name), f"{name}: no test shows it quiet one evaluation before it fires"
        assert any(t1 >= wait for _, t1 in fires[name]), f"{name}: never tested past its for: {rule.get('for')}"
        assert quiet.get(name), f"{name}: no test where it must stay quiet"


def test_every_alert_says_what_happened_and_what_to_do() -> None:
    for name, rule in _alerts().items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        notes = rule["annotations"]
        assert notes.get("summary") and len(notes.get("description", "")) > 60, f"{name} needs a description"
        # A person paged at night needs a command or a setting to reach for, not only a symptom.
        acts = ("`", "lanes.", "intake.", "Free space", "Move ")
        assert any(a in notes["description"] for a in acts), f"{name}: its description says nothing to do"


def test_the_readme_lists_every_alert_with_its_for() -> None:
    rows = [line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("| `Omad")]
    listed: dict[str, str] = {}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        names = [n.strip(" `") for n in cells[0].split("/")]
        waits = [w.strip() for w in cells[-1].split("/")]
        listed.update(zip(names, waits, strict=True))
    assert listed == {name: rule.get("for", "0m") for name, rule in _alerts().items()}


# -- a real Prometheus scraping a real `omad run` -------------------------------------------------------


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (all held open together while they are picked)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _until(what: str, pred: Callable[[], bool], timeout: float, logs: Callable[[], str]) -> None:
    def seen() -> bool:
        with suppress(OSError):
            return pred()
        return False

    try:
        wait_for(seen, timeout, every=0.25, what=what)
    except AssertionError:
        raise AssertionError(f"{what}: not seen within {timeout:g} s\n{logs()}") from None


class _Prometheus:
    """Queries to the Prometheus under test, over its HTTP API."""

    def __init__(self, port: int) -> None:
        self.port = port

    def api(self, path: str, **params: str) -> Any:
        status, body = _get(self.port, f"/api/v1/{path}?{urllib.parse.urlencode(params)}")
        data = json.loads(body)
        assert status == 200 and data["status"] == "success", body.decode()
        return data["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", expr
        result: list[dict[str, Any]] = data["result"]
        return result

    def scalar(self, expr: str) -> float:
        result = self.query(expr)
        return sum(float(r["value"][1]) for r in result) if result else math.nan

    def alerts(self, name: str) -> list[dict[str, Any]]:
        return [a for a in self.api("alerts")["alerts"] if a["labels"]["alertname"] == name]


@contextmanager
def _process(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process that is stopped (SIGTERM, then SIGKILL) however the test ends."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=20)


def _tail(path: Path, n: int = 30) -> str:
    text = path.read_text(errors="replace") if path.exists() else "(no log)"
    return f"--- {path.name} ---\n" + "\n".join(text.splitlines()[-n:])


def _drop_caption(root: Path, inbox: Path, stem: str, seconds: float, srt: str | None = None) -> None:
    staging = root / "staging"
    make_video(staging / f"{stem}.mp4", seconds=seconds, size="160x90")
    write_srt(staging / f"{stem}.srt") if srt is None else write_srt(staging / f"{stem}.srt", srt)
    for p in sorted(staging.iterdir()):
        p.rename(inbox / p.name)


# Panels whose data this run makes real (not zeros or NaN): each needs a finite value > 0 in a target.
_MOVED = {
    "Done (24 h)", "Failed (24 h)", "Free disk", "Throughput (jobs/hour) by route", "Failures (jobs/hour) by route",
    "Stage errors and retries (per hour)", "Stage duration p50 / p95", "Drop to start p50 / p95",
    "Job duration p50 / p95 by route", "TTS real-time factor p50 by engine", "Estimated cost (24 h)",
    "Lane hours (24 h)", "Cost per hour by route", "Cost per finished job by route (1 h window)",
    "Published (bytes/hour)", "Lane utilisation (busy slots / capacity)",
}
# Measured only where torch reports CUDA memory; on a box without a GPU the series is absent.
_GPU_MEASURED = "omad_gpu_vram_peak_bytes"


@pytest.mark.slow
@pytest.mark.timeout(280)
def test_real_prometheus_sees_first_failures_a_stopped_daemon_and_every_dashboard_query() -> None:
    """GIVEN Debian's prometheus scraping a fresh `omad run` every second, with the shipped scrape
    config and alert rules
    WHEN three caption drops fail (and one caption and one narration succeed), then omad stops
    THEN increase() counts all three failures, OmadJobsFailing goes pending for caption,
    every dashboard query returns data from that Prometheus, and OmadDown goes pending."""
    prometheus = _tool("prometheus")
    with ExitStack() as stack:
        root = Path(tempfile.mkdtemp(prefix="omad-prom-"))
        stack.callback(shutil.rmtree, root, ignore_errors=True)  # registered first: runs after both stop
        omad_port, prom_port = _free_ports(2)
        inbox = root / "inbox"
        inbox.mkdir()
        config = {
            "inbox": str(inbox), "outbox": str(root / "outbox"), "state_dir": str(root / "state"),
            "watch": {"settle_seconds": 0.3, "rescan_seconds": 1.0},
            "intake": {"partner_grace_seconds": 0.5, "pair_timeout_seconds": 5.0},
            "lanes": {"cpu": 1},
            "web": {"enabled": True, "host": "127.0.0.1", "port": omad_port},
        }
        (root / "omad.yaml").write_text(yaml.safe_dump(config))
        scrape = yaml.safe_load((DEPLOY / "prometheus-scrape.yml").read_text())
        job = scrape["scrape_configs"][0]
        assert job["job_name"] == "omad"  # the rules' up{job="omad"} depends on it
        job.update(scrape_interval="1s", scrape_timeout="1s",
                   static_configs=[{"targets": [f"127.0.0.1:{omad_port}"]}])
        prom_config = {"global": {"evaluation_interval": "1s"}, "rule_files": [str(RULES)], **scrape}
        (root / "prometheus.yml").write_text(yaml.safe_dump(prom_config))
        omad_log, prom_log = root / "omad.log", root / "prometheus.log"

        def logs() -> str:
            return _tail(omad_log) + "\n" + _tail(prom_log)

        omad = stack.enter_context(_process([OMAD, "run", "--config", str(root / "omad.yaml")], omad_log))
        stack.enter_context(_process([
            prometheus, f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn",
        ], prom_log))
        prom = _Prometheus(prom_port)
        _until("omad answers /healthz", lambda: _get(omad_port, "/healthz")[0] == 200, 60, logs)
        _until("Prometheus is ready", lambda: _get(prom_port, "/-/ready")[0] == 200, 60, logs)
        # The zero series must have been scraped before the first failure, as after any start.
        _until("two scrapes of omad", lambda: prom.scalar('count_over_time(up{job="omad"}[1m])') >= 2, 60, logs)
        assert prom.scalar('up{job="omad"}') == 1
        assert prom.scalar('omad_jobs_finished_total{route="caption", status="failed"}') == 0

        for i, stem in enumerate(("um", "dois", "tres")):
            _drop_caption(root, inbox, stem, 0.5 + 0.1 * i, "1\nbroken\n")
        _drop_caption(root, inbox, "bom", 0.9)
        (root / "staging" / "fala.txt").write_text("Olá! Este é um teste de narração.\n")
        (root / "staging" / "fala.txt").rename(inbox / "fala.txt")
        _until("five finished jobs in Prometheus", lambda: prom.scalar("sum(omad_jobs_finished_total)") == 5, 150,
               logs)

        failed = prom.scalar('sum(increase(omad_jobs_finished_total{status="failed"}[1h]))')
        # increase() extrapolates to the query time (by at most a scrape interval): never below the 3.
        assert 3 <= failed < 4.5, f"increase() saw {failed} of the 3 failures"
        _until("OmadJobsFailing pending for caption",
               lambda: any(a["state"] in ("pending", "firing") and a["labels"].get("route") == "caption"
                           for a in prom.alerts("OmadJobsFailing")), 30, logs)
        assert not [a for a in prom.alerts("OmadJobsFailing") if a["labels"].get("route") != "caption"]

        # Every dashboard query, as Grafana sends it with "All" instances and a wide enough rate window.
        dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
        assert not _MOVED - {p["title"] for p in dashboard["panels"]}
        label_query = dashboard["templating"]["list"][1]["definition"]
        assert label_query == "label_values(omad_build_info, instance)"
        assert [r["metric"]["instance"] for r in prom.query("omad_build_info")] == [f"127.0.0.1:{omad_port}"]
        empty, flat = [], []
        for panel in dashboard["panels"]:
            values = []
            for target in panel.get("targets", []):
                expr = target["expr"].replace("$instance", ".*").replace("$__rate_interval", "5m")
                assert "$" not in expr, f"a dashboard variable this test does not fill in: {expr}"
                result = prom.query(expr)
                if not result and _GPU_MEASURED not in expr:
                    empty.append(f"{panel['title']}: {expr}")
                values += [float(r["value"][1]) for r in result]
            if panel["title"] in _MOVED and not any(math.isfinite(v) and v > 0 for v in values):
                flat.append(f"{panel['title']}: {values}")
        assert not empty, "dashboard queries with no data:\n" + "\n".join(empty)
        assert not flat, "panels that should show this run's jobs show nothing:\n" + "\n".join(flat)
        status, body = _get(omad_port, "/metrics")
        assert status == 200 and _GPU_MEASURED not in body.decode(), "VRAM was measured: query it above too"

        omad.send_signal(signal.SIGTERM)
        assert omad.wait(timeout=60) == 0, logs()
        _until("OmadDown pending", lambda: any(a["state"] in ("pending", "firing")
                                               for a in prom.alerts("OmadDown")), 30, logs)
        assert prom.scalar('up{job="omad"}') == 0
