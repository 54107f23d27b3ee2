"""How an ffmpeg run ended, as omad's error: one pure function, one table."""

from __future__ import annotations

import pytest

from omad.errors import InputError, OmadError, StageFailed, ToolTimeout, TransientError
from omad.media.ffmpeg import ffmpeg_failure

_CASES: list[tuple[str, int, str, str | None, type[OmadError] | None, str]] = [
    # name, return code, stderr tail, stopped by omad for, error class (None: success), words in the message
    ("success", 0, "frame=  100 fps=50\n", None, None, ""),
    ("success despite warnings", 0, "[mp4 @ 0x1] Invalid data found when processing input\n", None, None, ""),
    ("timeout wins over the code", -15, "", "timeout", ToolTimeout, "stage timeout"),
    ("timeout wins over a full disk", 1, "No space left on device\n", "timeout", ToolTimeout, "stage timeout"),
    ("cancel (a cancel or shutdown)", -15, "", "cancel", TransientError, "shutting down"),
    ("cancel even after a clean exit", 0, "", "cancel", TransientError, "shutting down"),
    ("killed by a signal", -9, "", None, TransientError, "signal 9"),
    ("full disk", 1, "av_interleaved_write_frame(): No space left on device\n", None, TransientError, "disk is full"),
    ("ENOSPC", 1, "Error writing trailer: ENOSPC\n", None, TransientError, "disk is full"),
    ("cut short (still copying)", 1, "x.mp4: File ended prematurely\n", None, TransientError, "been copying"),
    ("partial file", 1, "[mov,mp4 @ 0x1] stream 0, offset 0x30: partial file\n", None, TransientError, "copying"),
    ("unreadable input", 1, "in.mp4: Invalid data found when processing input\n", None, InputError,
     "could not read this input (in.mp4: Invalid data found when processing input)"),
    ("any other failure", 1, "Error initializing filter 'ass'\nno such filter\n", None, StageFailed,
     "ffmpeg failed: no such filter"),
    ("a failure with no stderr", 187, "", None, StageFailed, "exit code 187"),
]


@pytest.mark.parametrize(("rc", "tail", "stopped", "kind", "words"), [c[1:] for c in _CASES],
                         ids=[c[0] for c in _CASES])
def test_every_way_ffmpeg_can_end(rc: int, tail: str, stopped: str | None, kind: type[OmadError] | None,
                                  words: str) -> None:
    err = ffmpeg_failure(rc, tail, stopped, timeout=60, file_label="inbox/in.mp4", stage="caption",
                         argv=["ffmpeg", "-i", "in.mp4"])
    if kind is None:
        assert err is None
        return
    assert type(err) is kind
    assert words in str(err)
    assert err.file == "inbox/in.mp4" and err.stage == "caption"
    if stopped != "cancel":  # a stop for shutdown carries no tool output: there is nothing wrong with the run
        assert err.details["returncode"] == rc and err.details["stderr_tail"] == tail
