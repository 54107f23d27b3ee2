"""Narration engines and speech recognition, and where their models live."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import HOST, Section


class EspeakConfig(Section):
    voice: str = Field("pt-br", description="espeak-ng voice")
    rate: int = Field(160, ge=80, le=450, description="words per minute")
    pitch: int = Field(50, ge=0, le=99, description="0-99")


class F5Reference(Section):
    audio: str = Field("", description="reference voice recording (wav/mp3/flac), a few seconds of clean speech")
    text: str = Field("", description="exact transcript of the reference recording (empty: Whisper writes it)")


class F5Config(Section):
    checkpoint: str = Field("", description="F5-TTS checkpoint: .safetensors (EMA) or .pt", json_schema_extra=HOST)
    vocab: str = Field("", description="vocab.txt matching the checkpoint", json_schema_extra=HOST)
    vocoder: str = Field("", description="folder with a local Vocos vocoder (config.yaml + pytorch_model.bin)",
                         json_schema_extra=HOST)
    reference: F5Reference = Field(default_factory=F5Reference, description="default reference voice",
                                   json_schema_extra=HOST)
    nfe_step: int = Field(16, ge=2, le=128, description="flow-matching steps (quality vs speed)")
    cfg_strength: float = Field(2.0, ge=0, description="classifier-free guidance strength")
    sway_sampling_coef: float = Field(-1.0, description="sway sampling coefficient")
    speed: float = Field(1.0, gt=0.3, lt=3.0, description="speaking speed")
    device: Literal["auto", "cuda", "cpu"] = Field("auto", description="auto uses CUDA when available",
                                                   json_schema_extra=HOST)
    fp16: Literal["auto", "true", "false"] = Field("auto", description="half precision: auto = on CUDA only")
    cpu_fallback: bool = Field(True, description="after CUDA out-of-memory with short chunks, run on the CPU",
                               json_schema_extra=HOST)
    cpu_bf16: bool = Field(
        False, description="on the CPU, run in bf16 autocast: about 1.9x faster here (see docs/benchmarks.md)"
    )
    vram_gb: float = Field(2.5, gt=0, description="VRAM the F5 model is budgeted at in the GPU lane",
                           json_schema_extra=HOST)


class PiperTtsConfig(Section):
    voice: str = Field(
        "", description="Piper voice: a name in <models.dir>/piper/ (pt_BR-faber-medium) or a path to its .onnx; "
        "empty: the first installed voice of tts.language", json_schema_extra=HOST)
    speaker: str = Field("", description="multi-speaker voices: a speaker name or number; empty: the voice's default")
    speed: float = Field(1.0, gt=0.3, lt=3.0, description="speaking speed (the voice's length scale is divided by it)")
    noise_scale: float | None = Field(
        None, ge=0, le=2, description="voice variation (Piper's noise_scale); null: the voice's own")
    noise_w_scale: float | None = Field(
        None, ge=0, le=2, description="rhythm variation (Piper's noise_w); null: the voice's own")
    idle_unload_seconds: float = Field(
        300.0, ge=0, description="a loaded voice stays in memory between jobs until idle this long",
        json_schema_extra=HOST)


class TtsConfig(Section):
    engine: Literal["auto", "espeak", "piper", "f5"] = Field(
        "auto", description="narration engine; auto: F5 with a GPU and a checkpoint, else Piper with a voice "
        "installed, else espeak")
    max_chunk_chars: int = Field(300, ge=40, description="long text is split at sentence boundaries into chunks")
    sentence_pause_seconds: float = Field(0.25, ge=0, description="silence between chunks")
    language: str = Field(
        "pt-BR", description="language of narrated text: pt* spells out numbers, money, dates; others drop emoji only"
    )
    merge_sentences: bool = Field(
        False, description="join short sentences into one chunk and caption (max_chunk_chars)"
    )
    espeak: EspeakConfig = Field(default_factory=EspeakConfig, description="espeak-ng engine")
    f5: F5Config = Field(default_factory=F5Config, description="F5-TTS engine")
    piper: PiperTtsConfig = Field(default_factory=PiperTtsConfig, description="Piper engine (the omad[piper] extra)")


DEFAULT_HALLUCINATIONS = [
    "Legendas pela comunidade Amara.org",
    "Obrigado por assistir",
    "Inscreva-se no canal",
]


class AsrConfig(Section):
    model: str = Field(
        "base", description="Whisper model: a size (base, small, large-v3-turbo...) in models.dir/whisper/, or a "
                            "folder",
        json_schema_extra=HOST)
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA when CTranslate2 sees a GPU, else CPU", json_schema_extra=HOST)
    compute_type: Literal["auto", "int8", "int8_float16", "int8_float32", "int16", "float16", "bfloat16", "float32"] = (
        Field("auto", description="auto: int8 on the CPU lane, float16 on the GPU lane", json_schema_extra=HOST))
    cpu_threads: int = Field(0, ge=0, description="CPU threads for one transcription; 0: CTranslate2's default",
                             json_schema_extra=HOST)
    language: str = Field("pt", description="spoken language (ISO code, e.g. pt, en); auto detects it")
    beam_size: int = Field(5, ge=1, le=20, description="beam search width (1: greedy, faster)")
    vad: bool = Field(True, description="skip silence and music with Silero VAD before Whisper hears it")
    vad_min_silence_ms: int = Field(500, ge=0, description="VAD: silence this long splits speech")
    no_speech_threshold: float = Field(
        0.6, ge=0, le=1, description="a segment Whisper thinks is not speech above this probability is dropped"
    )
    compression_ratio_threshold: float = Field(
        2.4, gt=0, description="a segment whose text compresses better than this (a loop) is dropped"
    )
    log_prob_threshold: float = Field(-1.0, description="with no_speech: a segment below this mean log-prob is dropped")
    low_confidence: float = Field(
        0.5, ge=0, le=1, description="segments whose mean word probability is below this are listed in the sidecar"
    )
    hallucinations: list[str] = Field(
        default_factory=lambda: list(DEFAULT_HALLUCINATIONS),
        description="phrases Whisper invents on silence or music: a segment that is only one of them is dropped",
    )
    output: Literal["burn", "soft", "both"] = Field(
        "burn", description="a transcribed video: captions burned in, a soft mov_text track, or both"
    )
    vram_gb: float = Field(1.0, gt=0, description="VRAM the Whisper model is budgeted at in the GPU lane",
                           json_schema_extra=HOST)


class ModelsConfig(Section):
    dir: str = Field(
        "", description="speech and voice models (`omad models pull` puts them here); empty: models/ in the state dir")
