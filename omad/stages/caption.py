"""The caption stage: burn a subtitle file (SRT, WebVTT, ASS, SSA) into its video.

Keeps the input's resolution and frame rate, copies AAC audio (re-encodes
anything else to AAC), writes H.264 with ``+faststart``. Reads ``video`` and
``srt`` (the subtitle file, whatever its format) inputs from the context;
writes ``captioned.mp4``. SRT/VTT captions get omad's caption style with
their own italics, colours and ``{\\an8}`` positions; an ASS/SSA file is
burned with its own styles. What was left out of the file, and characters no
installed font can draw, become warnings in the sidecar.
"""

from __future__ import annotations

from ..media.burn import burn_captions, guard_cues, guard_events
from ..media.subtitle_files import read_subtitles
from ..media.subtitles import Cue, check_cost
from ..stage import Stage, StageContext, StageResult

__all__ = ["CaptionStage", "burn_captions", "guard_cues", "guard_events"]


class CaptionStage(Stage):
    name = "caption"
    needs = ("video", "srt")
    makes = ("video",)

    def run(self, ctx: StageContext) -> StageResult:
        sub_label = ctx.label("srt")
        limits = ctx.config.intake
        sub = read_subtitles(ctx.path("srt"), sub_label, limits.max_subtitle_bytes)
        check_cost([Cue(ev.start / 1000, ev.end / 1000, ev.plaintext) for ev in sub.subs.events], sub_label,
                   max_cues=limits.max_cues, max_on_screen=limits.max_cues_on_screen)
        findings = guard_events(ctx, sub, sub_label)
        facts = burn_captions(ctx, "video", sub, "captioned.mp4", ctx.label("video"))
        facts.update({
            "subtitle_format": sub.format,
            "subtitle_encoding": sub.encoding,
            "subtitle_encoding_from": sub.encoding_from,
            "subtitle_styles": "own" if sub.own_styles else "omad",
        })
        return StageResult(artifacts={"video": "captioned.mp4"}, publish={".mp4": "video"}, facts=facts,
                           guardrail_findings=findings)
