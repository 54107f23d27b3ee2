"""omad's allocator settings (``omad.cli.keep_freed_memory``): its own glibc, and what its children start with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

_PROBE = textwrap.dedent("""
    import json, os, subprocess, sys
    from omad.cli import keep_freed_memory
    keep_freed_memory()
    child = subprocess.run(["env"], capture_output=True, text=True, check=True).stdout
    print(json.dumps({k: v for k, v in (line.split("=", 1) for line in child.splitlines() if "=" in line)
                      if k.startswith("MALLOC_")}))
""")


def _children_env(**env: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True,
                         env={**base, **env}).stdout
    got: dict[str, str] = json.loads(out)
    return got


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's settings")
def test_children_start_with_the_same_allocator_settings_unless_the_operator_chose_others() -> None:
    """GIVEN omad on glibc THEN a child it starts (ffmpeg, espeak-ng) gets glibc's mmap threshold of 16 MB and trim
    threshold of 64 MB; GIVEN the operator set either THEN omad changes nothing and the child gets theirs."""
    assert _children_env() == {"MALLOC_MMAP_THRESHOLD_": str(16 << 20), "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}
    assert _children_env(MALLOC_TRIM_THRESHOLD_="131072") == {"MALLOC_TRIM_THRESHOLD_": "131072"}
