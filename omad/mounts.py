"""What file system a folder is on, and whether inotify can be trusted there.

inotify sees only changes made through the local kernel: on an NFS, SMB/CIFS,
FUSE (sshfs, rclone, s3fs...) or 9p mount, files written by another machine
raise no event, so a watcher there must poll. The file system type is read
from ``/proc/self/mountinfo`` (the mount point that holds the folder, the
longest prefix), which names FUSE mounts by their subtype (``fuse.sshfs``)
where ``statfs`` would only say "fuse".

Pure functions over the mountinfo text, so tests feed it any table; nothing
here watches or mounts anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MountInfo", "mount_of", "is_network", "watch_mode", "read_mountinfo", "NETWORK_TYPES"]

#: File system types on which another machine's writes raise no inotify event.
NETWORK_TYPES = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph", "glusterfs", "lustre",
                           "fuse", "fuseblk", "davfs", "ncpfs", "virtiofs", "gpfs", "beegfs", "ocfs2", "gfs2"})

_MOUNTINFO = Path("/proc/self/mountinfo")


@dataclass(frozen=True)
class MountInfo:
    """The mount that holds a folder: where it is mounted, its file system type and its source."""

    mount_point: str
    fstype: str
    source: str


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal (\040...).
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _parse(text: str) -> list[MountInfo]:
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields or len(fields) < 7:
            continue
        sep = fields.index("-")
        if len(fields) < sep + 3:
            continue
        mounts.append(MountInfo(_unescape(fields[4]), fields[sep + 1], _unescape(fields[sep + 2])))
    return mounts


def read_mountinfo() -> str:
    try:
        return _MOUNTINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def mount_of(path: Path, mountinfo: str | None = None) -> MountInfo | None:
    """The mount holding ``path`` (the last-mounted one at the longest matching mount point); None if unknown."""
    text = read_mountinfo() if mountinfo is None else mountinfo
    try:
        target = os.path.realpath(path)
    except OSError:
        target = str(path)
    best: MountInfo | None = None
    for m in _parse(text):  # later lines are mounted over earlier ones at the same point: the last one wins
        point = m.mount_point.rstrip("/") or "/"
        inside = target == point or target.startswith(point + "/") or point == "/"
        if inside and (best is None or len(point) >= len(best.mount_point.rstrip("/") or "/")):
            best = m
    return best


def is_network(fstype: str) -> bool:
    """Whether inotify misses other machines' writes on this file system type (any ``fuse.*`` counts)."""
    return fstype in NETWORK_TYPES or fstype.startswith("fuse.")


def watch_mode(requested: str, inbox: Path, mountinfo: str | None = None) -> tuple[str, str]:
    """(mode, why): ``polling`` or ``inotify`` for ``watch.mode`` (``auto`` decides by the inbox's file system)."""
    if requested != "auto":
        return requested, f"watch.mode is {requested}"
    mount = mount_of(inbox, mountinfo)
    if mount is None:
        return "inotify", "the inbox's file system is unknown; inotify"
    if is_network(mount.fstype):
        return "polling", (f"the inbox is on a {mount.fstype} mount ({mount.source} at {mount.mount_point}), "
                           "where inotify misses other machines' writes: polling")
    return "inotify", f"the inbox is on a local {mount.fstype} file system: inotify"
