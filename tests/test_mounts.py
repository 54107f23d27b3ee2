"""The watcher notices network mounts: detection from mountinfo text, and a real remount of the inbox (as root)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Env, Running, wait_for

import omad.mounts as mounts
from omad.cli import main as cli_main
from omad.mounts import is_network, mount_of, watch_mode

MOUNTINFO = r"""22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 27 0:50 / /srv/nas rw,relatime shared:20 - nfs4 nas:/export rw,vers=4.2
41 40 0:51 / /srv/nas/smb rw,relatime - cifs //fileserver/share rw
42 27 0:52 / /mnt/remote\040box rw,nosuid - fuse.sshfs me@box:/data rw,user_id=0
43 27 0:53 / /mnt/host rw - 9p hostshare rw,trans=virtio
44 27 0:54 / /mnt/local rw - xfs /dev/sdb1 rw
"""


@pytest.mark.parametrize(("path", "fstype", "network"), [
    ("/srv/nas/inbox", "nfs4", True),
    ("/srv/nas/smb/inbox", "cifs", True),  # the longest mount point wins
    ("/mnt/remote box/inbox", "fuse.sshfs", True),  # escaped spaces in mountinfo
    ("/mnt/host", "9p", True),
    ("/mnt/local/inbox", "xfs", False),
    ("/home/me/inbox", "ext4", False),
])
def test_the_filesystem_of_a_folder_is_read_from_mountinfo(path: str, fstype: str, network: bool) -> None:
    m = mount_of(Path(path), MOUNTINFO)
    assert m is not None and m.fstype == fstype and is_network(fstype) is network
    mode, why = watch_mode("auto", Path(path), MOUNTINFO)
    assert mode == ("polling" if network else "inotify") and fstype in why


def test_watch_mode_inotify_or_polling_still_forces_it() -> None:
    assert watch_mode("inotify", Path("/srv/nas/inbox"), MOUNTINFO)[0] == "inotify"
    assert watch_mode("polling", Path("/home/me/inbox"), MOUNTINFO)[0] == "polling"
    assert is_network("fuse.rclone") and is_network("smb3") and not is_network("tmpfs")


@pytest.fixture
def fake_mountinfo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Point the module at a mountinfo file the test writes (the daemon reads the same path)."""
    path = tmp_path / "mountinfo"
    monkeypatch.setattr(mounts, "_MOUNTINFO", path)

    def write(inbox_fstype: str) -> None:
        inbox = tmp_path / "inbox"
        path.write_text(f"27 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
                        f"40 27 0:50 / {inbox} rw - {inbox_fstype} nas:/export rw\n")

    return write


def _log_events(env: Env, event: str) -> list[dict[str, object]]:
    out = []
    for f in sorted((env.outbox / "logs").glob("*.jsonl")) + sorted((env.outbox / "logs").glob("*.log")):
        for line in f.read_text(errors="replace").splitlines():
            if line.startswith("{") and f'"{event}"' in line:
                out.append(json.loads(line))
    return out


def test_the_daemon_polls_an_nfs_inbox_by_itself_and_says_so(make_env: Callable[..., Env],
                                                              fake_mountinfo: Callable[[str], None],
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """GIVEN watch.mode auto (the default) and an inbox on an NFS mount
    THEN the watcher polls, the log, the status view and `omad doctor` say why, and drops are still taken."""
    fake_mountinfo("nfs4")
    env = make_env()
    d = env.daemon()
    with Running(d):
        wait_for(lambda: d.watcher.watching, 10)
        assert d.watcher.mode == "polling" and "nfs4" in d.watcher.mode_reason
        (env.inbox / "hello.txt").write_text("Olá.")
        wait_for(lambda: (env.outbox / "hello.wav").exists(), 120)
    logged = _log_events(env, "watch_mode")
    assert logged and logged[0]["mode"] == "polling"
    args = ["--state-dir", str(env.state), "--inbox", str(env.inbox), "--outbox", str(env.outbox)]
    cli_main(["doctor", *args])
    out = capsys.readouterr().out
    assert "watch mode" in out and "polling: the inbox is on a nfs4 mount" in out


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[Path], None]]:
    mounted: list[Path] = []

    def mount(where: Path) -> None:
        subprocess.run(["mount", "-t", "tmpfs", "omad-test", str(where)], check=True)
        mounted.append(where)

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a file system needs root")
def test_a_real_remount_of_the_inbox_restarts_the_watcher(make_env: Callable[..., Env],
                                                          tmpfs: Callable[[Path], None]) -> None:
    """GIVEN a running daemon
    WHEN another file system is mounted over the inbox
    THEN the watcher notices at its next scan, starts again on the new mount, and takes drops made there."""
    env = make_env()
    d = env.daemon()
    with Running(d):
        wait_for(lambda: d.watcher.watching, 10)
        before = d.watcher.mount
        tmpfs(env.inbox)
        wait_for(lambda: d.watcher.mount is not None and d.watcher.mount != before
                 and d.watcher.mount.fstype == "tmpfs", 30)
        assert d.watcher.mode == "inotify" and "tmpfs" in d.watcher.mode_reason
        (env.inbox / "after.txt").write_text("Depois.")
        wait_for(lambda: (env.outbox / "after.wav").exists(), 120)
    assert _log_events(env, "inbox_remounted")
