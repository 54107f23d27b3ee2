"""The transcribe stage: a video or a recording dropped alone comes back captioned from its speech.

Reads one input, ``video`` or ``audio``. The sound is taken out at 16 kHz
mono, Whisper (``omad.asr``) transcribes it on the lane its model runs on,
invented segments are dropped and named in the warnings, and the words are
laid out as captions people can read. A recording gives ``X.srt``, ``X.vtt``
and ``X.txt``; a video gives ``X.mp4`` captioned as ``output`` says (burned
in, in plain or word-highlight style; a soft ``mov_text`` track; or both),
``X.srt`` and ``X.vtt``. A video with no speech is published without captions
and a warning: it is not a failure. The full transcript (segments and words
with their times) is kept as ``transcript.json`` for the job page.

Options (a ``transcribe`` brief): ``language``, ``model``, ``output``,
``caption_style``, ``vocabulary`` (names Whisper should prefer).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from ..asr import Transcript
from ..asr.captions import transcript_cues, write_txt, write_vtt
from ..asr.filters import drop_warnings
from ..asr.media import transcribe_input
from ..errors import InputError
from ..media.audio import check_audio
from ..media.burn import burn_ass, frame_size, guard_cues, mux_soft_subtitles, probe_video
from ..media.ffmpeg import Probe
from ..media.subtitles import build_ass, build_karaoke_ass, write_srt
from ..stage import Lane, Stage, StageContext, StageResult
from ..tts.speech import layout_rules

__all__ = ["TranscribeStage"]

#: Share of the progress bar the transcription takes when a video is burned afterwards.
_TRANSCRIBE_SHARE = 0.7


class TranscribeStage(Stage):
    name = "transcribe"
    needs = ("video|audio",)
    makes = ("transcript", "srt", "vtt", "text", "video")

    def lane(self, ctx: StageContext) -> Lane:
        from ..asr.whisper import placement

        device, _ = placement(ctx.config)
        return Lane.GPU if device == "cuda" else Lane.CPU

    def run(self, ctx: StageContext) -> StageResult:
        is_video = ctx.has("video")
        role = "video" if is_video else "audio"
        label = ctx.label(role)
        src = ctx.path(role)
        limit = ctx.config.intake.max_audio_seconds
        if is_video:
            info = probe_video(ctx, role, label)
            if info.duration and info.duration > limit:
                raise InputError(f"is {info.duration / 60:.1f} minutes long; the limit for transcription is "
                                 f"{limit / 60:.1f} minutes (intake.max_audio_seconds). Cut it or raise the limit.",
                                 file=label)
        else:
            info = check_audio(src, label, limit)
            ctx.scale_timeout(info.duration)
        output = str(ctx.options.get("output") or ctx.config.asr.output)
        span = _TRANSCRIBE_SHARE if is_video else 1.0
        if info.audio is None:  # a silent video: nothing to hear, nothing to caption
            transcript = Transcript(language="", language_probability=0.0, duration=float(info.duration or 0.0),
                                    speech_seconds=0.0, model="", facts={"audio": "none"})
        else:
            transcript = transcribe_input(ctx, src, label, info.duration, span=span)
        (ctx.work / "transcript.json").write_text(json.dumps(transcript.to_dict(), ensure_ascii=False),
                                                 encoding="utf-8")
        for warning in drop_warnings(transcript.dropped, label):
            ctx.warn(warning)
        frame = frame_size(info) if is_video else None
        cues, words = transcript_cues(transcript, layout_rules(ctx, frame))
        cues, findings = guard_cues(ctx, cues, label)
        texts, seg_findings = ctx.guard().check_many(
            {f"segment {i + 1}": s.text for i, s in enumerate(transcript.segments)}, file=label)
        findings += [f.to_dict() for f in seg_findings]
        redacted = replace(transcript, segments=[replace(s, text=texts[f"segment {i + 1}"])
                                                 for i, s in enumerate(transcript.segments)])
        artifacts = {"transcript": "transcript.json"}
        publish: dict[str, str] = {}
        if cues:
            write_srt(cues, ctx.work / "transcript.srt")
            write_vtt(cues, ctx.work / "transcript.vtt")
            artifacts.update({"srt": "transcript.srt", "vtt": "transcript.vtt"})
            publish.update({".srt": "srt", ".vtt": "vtt"})
        if not is_video or not cues:
            write_txt(redacted, ctx.work / "transcript.txt")
            artifacts["text"] = "transcript.txt"
            if not is_video:
                publish[".txt"] = "text"
        if not cues:
            ctx.warn(f"{label}: no speech was found" + (" (the video has no sound)" if info.audio is None else "")
                     + "; it is published without captions.")
        facts: dict[str, Any] = {
            "input": role,
            "language": transcript.language,
            "language_probability": transcript.language_probability,
            "model": transcript.model,
            "speech_share": transcript.speech_share,
            "duration": transcript.duration,
            "segments": len(transcript.segments),
            "words": len(words),
            "captions": len(cues),
            "low_confidence": transcript.low_confidence(ctx.config.asr.low_confidence),
            "dropped": [{"start": d.start, "end": d.end, "text": d.text, "reason": d.reason.value}
                        for d in transcript.dropped],
            # The job page shows the transcript with its times (the work folder, and transcript.json, go away).
            "transcript": [{"start": round(seg.start, 2), "end": round(seg.end, 2), "text": seg.text}
                           for seg in redacted.segments],
            **{k: v for k, v in transcript.facts.items() if k in ("rtf", "device", "compute_type", "load_seconds",
                                                                   "transcribe_seconds", "model_loaded")},
        }
        if is_video:
            facts.update(self._video(ctx, info, label, cues, words, output, transcript.language, span))
            artifacts["video"] = "transcribed.mp4"
            publish[".mp4"] = "video"
        ctx.progress(1.0)
        return StageResult(artifacts=artifacts, publish=publish, facts=facts, guardrail_findings=findings)

    def _video(self, ctx: StageContext, info: Probe, label: str, cues: list[Any], words: list[Any], output: str,
               language: str, span: float) -> dict[str, Any]:
        """Make the published video: burned, soft track, both, or (no captions) the video as it was."""
        outer = ctx.progress
        ctx.progress = lambda f: outer(span + (1.0 - span) * f)
        try:
            srt = ctx.work / "transcript.srt"
            if not cues:
                return {"output": "none", **mux_soft_subtitles(ctx, "video", info, None, "transcribed.mp4", label)}
            if output == "soft":
                return {"output": "soft", **mux_soft_subtitles(ctx, "video", info, srt, "transcribed.mp4", label,
                                                              language=language)}
            width, height = frame_size(info)
            ass = ctx.work / "transcribed.ass"
            style = str(ctx.options.get("caption_style") or ctx.config.caption.style)
            facts: dict[str, Any] = {"output": output, "caption_style": style}
            if style == "word_highlight":
                timed = [(w.start, w.end, w.text) for w in words]
                facts["highlighted"] = build_karaoke_ass(cues, timed, width, height, ctx.config.caption, ass)
            else:
                build_ass(cues, width, height, ctx.config.caption, ass)
            facts.update(burn_ass(ctx, "video", info, ass, "transcribed.mp4", label,
                                  soft=srt if output == "both" else None, language=language))
            return facts
        finally:
            ctx.progress = outer
