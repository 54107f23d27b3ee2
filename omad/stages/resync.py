"""The resync stage: an existing subtitle file's cues moved onto the speech of their video.

Reads ``video`` and ``srt``; transcribes the video's sound (``omad.asr``) and
matches each cue's words to the recognised ones (``omad.asr.resync``). Writes
``resynced.srt`` as the ``srt`` artifact, so the caption stage that follows
burns the re-timed cues; the re-timed file is published as ``X.srt``. Cues
that match nothing keep their time and are named in the warnings. Styling of
an ASS/SSA file is not kept: the cues are re-timed as plain text.
"""

from __future__ import annotations

from ..asr.media import transcribe_input
from ..asr.resync import resync_cues
from ..media.burn import probe_video
from ..media.subtitles import check_cost, read_srt, write_srt
from ..stage import Lane, Stage, StageContext, StageResult

__all__ = ["ResyncStage"]


class ResyncStage(Stage):
    name = "resync"
    needs = ("video", "srt")
    makes = ("srt",)

    def lane(self, ctx: StageContext) -> Lane:
        from ..asr.whisper import placement

        device, _ = placement(ctx.config)
        return Lane.GPU if device == "cuda" else Lane.CPU

    def run(self, ctx: StageContext) -> StageResult:
        label, sub_label = ctx.label("video"), ctx.label("srt")
        limits = ctx.config.intake
        cues, encoding = read_srt(ctx.path("srt"), sub_label, limits.max_subtitle_bytes)
        check_cost(cues, sub_label, max_cues=limits.max_cues, max_on_screen=limits.max_cues_on_screen)
        info = probe_video(ctx, "video", label)
        if info.audio is None:
            ctx.warn(f"{label}: the video has no sound; the captions keep their times.")
            write_srt(cues, ctx.work / "resynced.srt")
            return StageResult(artifacts={"srt": "resynced.srt"}, publish={".srt": "srt"},
                               facts={"moved": 0, "cues": len(cues), "audio": "none"})
        transcript = transcribe_input(ctx, ctx.path("video"), label, info.duration)
        done = resync_cues(cues, transcript.words)
        for number, text, start in done.unmatched:
            ctx.warn(f"{sub_label}: caption {number} ('{text[:60]}') matched nothing said in the video; it keeps "
                     f"its time ({start:.2f} s).")
        write_srt(done.cues, ctx.work / "resynced.srt")
        ctx.progress(1.0)
        facts = {**done.facts(), "language": transcript.language, "model": transcript.model,
                 "subtitle_encoding": encoding, "rtf": transcript.facts.get("rtf")}
        return StageResult(artifacts={"srt": "resynced.srt"}, publish={".srt": "srt"}, facts=facts)
