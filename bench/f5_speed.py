"""How fast full-size F5-TTS narrates pt-BR here: load time, real-time factor, peak memory.

Builds an F5TTS_v1_Base-shaped model (dim 1024, depth 22, 337 M parameters)
and a full-size Vocos with random weights (speed does not depend on the
weights' values), saves them as a user's files would be (model_last.safetensors,
f5-tts's shipped 2545-token vocab, a Vocos folder), loads them through omad's
loader and narrates a one-sentence and a one-paragraph pt-BR text through the
engine's own chunking and per-chunk synthesis.

    .venv/bin/python bench/f5_speed.py                       # CPU: fp32 and bf16, nfe 16 and 32
    .venv/bin/python bench/f5_speed.py --device cuda         # GPU: fp32 and fp16
    .venv/bin/python bench/f5_speed.py --texts sentence --nfe 16 --dtypes fp32

Peak memory is the process's resident set on the CPU (sampled) and
``torch.cuda.max_memory_allocated`` on CUDA. ``cpu_s`` is the process's CPU
time for the synthesis: on a machine shared with other work, wall time
(``synth_s``, ``rtf``) includes waiting for a core and ``cpu_s`` does not. Results print as a Markdown
table and, with ``--json``, as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import f5_tiny as ft  # noqa: E402
import numpy as np  # noqa: E402

from omad.config import F5Config  # noqa: E402
from omad.media.audio_prep import prepare_reference, read_wav  # noqa: E402
from omad.tts.f5 import SAMPLE_RATE, _ref_text, split_text, synthesize_chunk  # noqa: E402
from omad.tts.f5.imports import require_f5  # noqa: E402
from omad.tts.f5.loader import load_f5  # noqa: E402

REF_TEXT = "Olá! Esta é a voz de referência, gravada com calma para o teste de velocidade."
TEXTS = {
    "sentence": "O relatório de vendas de março já está pronto para a revisão da equipe.",
    "paragraph": (
        "O relatório de vendas de março já está pronto para a revisão da equipe. As vendas cresceram doze por "
        "cento em relação a fevereiro, puxadas pela região Sul. Na próxima semana, vamos apresentar os números "
        "completos e discutir as metas do segundo trimestre com todos os gerentes."
    ),
}


class RssSampler:
    """Peak resident set size over a block, sampled from /proc (ru_maxrss only ever grows per process)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def current_kb() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, self.current_kb())
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self.peak_kb = self.current_kb()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, self.current_kb())


def make_files(work: Path) -> dict[str, Path]:
    vocab = Path(str(files("f5_tts").joinpath("infer/examples/vocab.txt")))
    ckpt = work / "model_last.safetensors"
    if not ckpt.exists():
        ft.write_checkpoint(ckpt, ft.FULL_SHAPE, "safetensors")
    vocoder = work / "vocos"
    if not (vocoder / "pytorch_model.bin").exists():
        ft.write_vocos(vocoder, ft.VOCOS_FULL)
    raw = work / "voz.wav"
    subprocess.run(["espeak-ng", "-v", "pt-br", "-w", str(raw), REF_TEXT], check=True)
    ref = prepare_reference(raw, work / "referencia.wav")
    return {"checkpoint": ckpt, "vocab": vocab, "vocoder": vocoder, "reference": ref.path}


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    require_f5()
    import torch

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtypes = args.dtypes or (["fp32", "fp16"] if device == "cuda" else ["fp32", "bf16"])
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="f5-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    paths = make_files(work)
    print(f"# files built in {time.monotonic() - t0:.1f} s under {work}", file=sys.stderr)
    ref_samples, _ = read_wav(paths["reference"])
    ref_text = _ref_text(REF_TEXT)
    ref_seconds = len(ref_samples) / SAMPLE_RATE
    max_bytes = int(len(ref_text.encode()) / ref_seconds * (22.0 - ref_seconds))
    rows: list[dict[str, Any]] = []
    for dtype in dtypes:
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        with RssSampler() as rss:
            started = time.monotonic()
            loaded = load_f5(paths["checkpoint"], paths["vocab"], paths["vocoder"], device=device, dtype=dtype)
            if device == "cuda":
                torch.cuda.synchronize()
            load_s = time.monotonic() - started
        print(f"# {dtype}: loaded in {load_s:.1f} s, RSS peak {rss.peak_kb / 1024:.0f} MiB", file=sys.stderr)
        for name in args.texts:
            for nfe in args.nfe:
                options = F5Config(nfe_step=nfe)
                chunks = split_text(TEXTS[name], max_bytes)
                if device == "cuda":
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                with RssSampler() as rss:
                    started, cpu_started = time.monotonic(), time.process_time()
                    waves = [synthesize_chunk(loaded, ref_samples, ref_text, c, options) for c in chunks]
                    if device == "cuda":
                        torch.cuda.synchronize()
                    seconds, cpu_seconds = time.monotonic() - started, time.process_time() - cpu_started
                audio = sum(len(w) for w in waves) / SAMPLE_RATE
                row = {
                    "device": device if device == "cpu" else torch.cuda.get_device_name(),
                    "dtype": dtype,
                    "text": name,
                    "chars": len(TEXTS[name]),
                    "chunks": len(chunks),
                    "nfe": nfe,
                    "load_s": round(load_s, 1),
                    "synth_s": round(seconds, 1),
                    "audio_s": round(audio, 2),
                    "rtf": round(seconds / audio, 2) if audio else None,
                    # CPU-seconds per second of speech: on a shared machine wall time also counts others' work.
                    "cpu_s": round(cpu_seconds, 1),
                    "peak_rss_mib": round(rss.peak_kb / 1024),
                    "peak_vram_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None,
                    "threads": torch.get_num_threads(),
                }
                assert all(np.isfinite(w).all() for w in waves)
                rows.append(row)
                print(json.dumps(row) if args.json else _md_row(row), flush=True)
        loaded.release()
    return rows


COLUMNS = [
    "device",
    "dtype",
    "text",
    "chunks",
    "nfe",
    "load_s",
    "synth_s",
    "cpu_s",
    "audio_s",
    "rtf",
    "peak_rss_mib",
    "peak_vram_gib",
    "threads",
]


def _md_row(row: dict[str, Any]) -> str:
    return "| " + " | ".join("-" if row[c] is None else str(row[c]) for c in COLUMNS) + " |"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument(
        "--dtypes", nargs="*", choices=["fp32", "fp16", "bf16"], help="default: fp32+bf16 CPU, fp32+fp16 GPU"
    )
    p.add_argument("--nfe", nargs="*", type=int, default=[16, 32])
    p.add_argument("--texts", nargs="*", choices=sorted(TEXTS), default=["sentence", "paragraph"])
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--workdir", help="keep the 1.35 GB checkpoint here between runs (default: a new temp folder)")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of Markdown rows")
    args = p.parse_args()
    if not args.json:
        print("| " + " | ".join(COLUMNS) + " |")
        print("|" + "---|" * len(COLUMNS))
    run(args)


if __name__ == "__main__":
    main()
