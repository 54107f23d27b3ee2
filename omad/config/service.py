"""The service around the jobs: metrics, web, notifications, executors, hooks, logging."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from .base import Section, from_env
from .jobs import IntakeConfig, JobsConfig


class MetricsConfig(Section):
    gpu_hour_price: float = Field(0.50, ge=0, description="price of one GPU-hour for cost estimates")
    cpu_hour_price: float = Field(0.05, ge=0, description="price of one CPU-hour for cost estimates")
    currency: str = Field("USD", description="currency of the prices")


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything, so it is not loopback
        return False


class WebConfig(Section):
    enabled: bool = Field(True, description="serve the web UI, the REST API, /metrics, /healthz and /readyz")
    host: str = Field("127.0.0.1", description="bind address; anything but loopback forces require_token on")
    port: int = Field(9464, ge=0, le=65535, description="port (0 picks a free one)")
    require_token: bool = Field(
        False, description="every endpoint but /healthz needs a token (`omad token add`); forced on beyond loopback"
    )
    metrics_public: bool = Field(False, description="leave /metrics open without a token (a Prometheus on the LAN)")
    tokens_file: str = Field("", description="where token hashes are kept; empty: tokens.json in the state dir")
    session_hours: float = Field(12.0, gt=0, description="how long a browser login lasts")
    max_upload_mb: float = Field(2048.0, gt=0, description="largest upload (all files of one submission together)")
    max_files: int = Field(32, ge=1, description="most files in one submission")
    submit_per_minute: int = Field(30, ge=1, description="submissions allowed per token (or client) per minute")
    submit_wait_seconds: float = Field(
        15.0, ge=0, description="how long POST /api/jobs waits for the job to be journaled before answering"
    )
    public_url: str = Field(
        "", description="the address people use (https://omad.example/): with https, the session cookie is Secure "
                        "even when a TLS proxy talks plain HTTP to omad; empty: taken from each request")
    trusted_proxies: list[str] = Field(
        default_factory=list, description="addresses or networks of reverse proxies whose X-Forwarded-For and "
                                          "X-Forwarded-Proto are believed; empty: nobody's")
    header_timeout_seconds: float = Field(
        10.0, gt=0, description="a connection must send a request's headers within this (slow-header floods)")
    body_idle_seconds: float = Field(
        60.0, gt=0, description="a request body may pause this long between bytes before its connection is closed")
    max_connections: int = Field(
        1000, ge=1, description="open connections in all; past it the oldest still sending headers is dropped "
                                "(keep it under the unit's LimitNOFILE)")
    max_connections_per_client: int = Field(
        32, ge=1, description="open connections from one address (trusted proxies are not limited)")
    max_requests: int = Field(
        64, ge=1, description="requests handled at once; more are answered 503 (never /healthz)")
    max_sessions: int = Field(10000, ge=1, description="browser logins kept at once; the oldest go first")
    language: Literal["auto", "pt-BR", "en"] = Field(
        "auto", description="pages, error records and `omad status` in pt-BR or en; auto: the browser's "
                            "Accept-Language on pages, $LANG in the terminal"
    )

    @property
    def token_required(self) -> bool:
        return self.require_token or not is_loopback(self.host)


Event = Literal["job.done", "job.failed"]


def _all_events() -> list[Event]:
    return ["job.done", "job.failed"]


class WebhookConfig(Section):
    url: str = Field(..., pattern=r"^https?://", description="where to POST the job summary")
    events: list[Event] = Field(default_factory=_all_events, description="events this hook wants")
    secret: str = Field("", description="HMAC-SHA256 key for the X-Omad-Signature header; empty: unsigned")


class AppriseConfig(Section):
    url: str = Field(..., min_length=3, description="an Apprise URL: tgram://, discord://, ntfy://, matrix://, "
                                                    "slack://, mailto://... (it holds the service's secrets)")
    events: list[Event] = Field(default_factory=_all_events, description="events this target wants")
    attach_poster: bool = Field(True, description="attach the job's poster where the service takes attachments")


class NotifyConfig(Section):
    webhooks: list[WebhookConfig] = Field(default_factory=list, description="URLs told when a job ends")
    apprise: list[AppriseConfig] = Field(
        default_factory=list, description="chat and e-mail targets told when a job ends, through Apprise")
    language: Literal["pt-BR", "en"] = Field("pt-BR", description="language of the Apprise messages")
    templates_dir: str = Field(
        "", description="a folder with your own message templates (job.done.<lang>.txt, job.failed.<lang>.txt; "
                        "Jinja2, first line the title); empty: the shipped ones")
    timeout_seconds: float = Field(10.0, gt=0, description="seconds one delivery may take")
    max_attempts: int = Field(5, ge=1, description="deliveries tried before giving up on one event")
    backoff_seconds: float = Field(2.0, gt=0, description="wait before the first retry; doubles each time")


class ExecutorConfig(Section):
    kind: Literal["local", "celery"] = Field(
        "local", description="local: stages run in this process (no broker); celery: on omad workers over Redis"
    )
    broker_url: str = Field(
        "", description="celery: the Redis URL (redis://user:password@host:6379/0, rediss:// for TLS); "
                        "empty: $OMAD_BROKER_URL, so the password can stay out of this file"
    )
    signing_key: str = Field(
        "", description="celery: the key that signs task messages and results (`omad key new`), the same on the "
                        "daemon and every worker; empty: $OMAD_SIGNING_KEY, else the systemd credential "
                        "omad-signing-key. Never sent anywhere"
    )
    result_backend: str = Field("", description="celery: where task states are kept; empty: "
                                                "$OMAD_RESULT_BACKEND, else the broker URL")
    shared_dir: str = Field(
        "", description="celery: a folder on storage the workers also mount (NFS/SMB); job work folders go in "
                        "its jobs/. Empty: the state dir. The journal always stays in state_dir"
    )
    files: Literal["shared", "s3"] = Field(
        "shared", description="celery: how job files reach workers: a shared folder (NFS/SMB), or an "
                              "S3-compatible object store keyed by sha256 (workers keep a cache)"
    )
    s3_endpoint_url: str = Field("", description="files: s3: the store's URL (MinIO, Garage...); empty: AWS")
    s3_bucket: str = Field("", description="files: s3: the bucket (credentials: the AWS_* environment)")
    s3_prefix: str = Field("omad/", description="files: s3: the prefix of every key")
    s3_region: str = Field("", description="files: s3: the region, when the store needs one")
    worker_cache_mb: float = Field(10240.0, gt=0, description="files: s3: a worker's cache of fetched files is "
                                                               "trimmed (least recently used first) past this")
    path_map: dict[str, str] = Field(
        default_factory=dict, description="worker: the daemon's path prefix -> this machine's path, "
                                          "e.g. {/srv/omad/jobs: /mnt/nas/omad/jobs}"
    )
    queue_prefix: str = Field("omad", pattern=r"^[A-Za-z0-9_-]+$",
                              description="celery: queues are <prefix>.cpu and <prefix>.gpu")
    max_in_flight: int = Field(16, ge=1, description="celery: most jobs the daemon has on workers at once")
    heartbeat_seconds: float = Field(5.0, gt=0, description="celery: how often a worker reports a running stage")
    lease_seconds: float = Field(
        60.0, gt=0, description="celery: a running stage not heard of this long is taken as lost and runs again"
    )
    visibility_timeout_seconds: float = Field(
        0.0, ge=0, description="celery: Redis redelivers a task unacknowledged this long; must exceed the longest "
                               "stage timeout (0: the longest stage timeout x 1.25 + 60)"
    )
    worker_state_dir: str = Field(
        "", description="worker: its own folder (metrics, caches, mirrors); empty: worker/ in the state dir")
    worker_metrics_port: int = Field(9465, ge=0, le=65535, description="worker: /metrics port (0: off)")
    worker_metrics_host: str = Field("127.0.0.1", description="worker: /metrics bind address")
    wake_seconds: float = Field(
        300.0, gt=0, description="celery: GPU-lane work waits and no worker serves the GPU queue: wake one at most "
                                 "once per this many seconds (doubling after each try that brings none)")
    wake_mac: str = Field("", pattern=r"^([0-9A-Fa-f]{2}([:-]?)){5}[0-9A-Fa-f]{2}$|^$",
                          description="celery: the GPU box's MAC address for a Wake-on-LAN packet; empty: none sent")
    wake_address: str = Field("255.255.255.255", description="celery: where the Wake-on-LAN packet goes (a "
                                                             "broadcast address or the box's address)")
    wake_port: int = Field(9, ge=1, le=65535, description="celery: the Wake-on-LAN UDP port (9 or 7)")
    wake_command: list[str] = Field(
        default_factory=list, description="celery: a program that starts a GPU worker (a cloud CLI, an ssh call), "
                                          "as a list: [ssh, gpu-box, systemctl, start, omad-worker]; empty: none")
    wake_timeout_seconds: float = Field(120.0, gt=0, description="celery: how long the wake command may run")

    def broker(self) -> str:
        """The broker URL: broker_url, else $OMAD_BROKER_URL, with the password from the systemd credential
        ``omad-redis-password`` put in when the URL has none."""
        url = from_env(self.broker_url, "executor.broker_url")
        creds = os.environ.get("CREDENTIALS_DIRECTORY", "")
        if not url or not creds or not url.startswith(("redis://", "rediss://")):
            return url
        try:
            password = (Path(creds) / "omad-redis-password").read_text(encoding="utf-8").strip()
        except OSError:
            return url
        from urllib.parse import quote, urlsplit, urlunsplit

        parts = urlsplit(url)
        if not password or parts.password is not None:
            return url
        user = quote(parts.username or "", safe="")
        host = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))

    def backend(self) -> str:
        return from_env(self.result_backend, "executor.result_backend") or self.broker()

    def visibility_timeout(self, jobs: JobsConfig, intake: IntakeConfig) -> float:
        """The visibility timeout in force: the configured one, else one above the longest stage timeout."""
        return self.visibility_timeout_seconds or longest_stage_timeout(jobs, intake) * 1.25 + 60


def longest_stage_timeout(jobs: JobsConfig, intake: IntakeConfig) -> float:
    """The longest any stage may run: the fixed timeouts, and the media-scaled one for the longest media taken."""
    scaled = jobs.timeout_base_seconds + jobs.timeout_per_media_second * intake.max_audio_seconds
    return max([jobs.stage_timeout_seconds, scaled, *jobs.stage_timeouts.values()])


class HooksConfig(Section):
    after_publish: list[str] = Field(
        default_factory=list, description="a program run after a job is published, as a list: [/usr/local/bin/x, "
                                          "--flag]; the job's summary as JSON on stdin; empty: none")
    after_fail: list[str] = Field(default_factory=list, description="the same, after a job failed")
    timeout_seconds: float = Field(60.0, gt=0, description="a hook still running after this long is stopped")

    @field_validator("after_publish", "after_fail", mode="before")
    @classmethod
    def _argv(cls, value: Any) -> Any:
        import shlex

        return shlex.split(value) if isinstance(value, str) else value


class LogConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")
