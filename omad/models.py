"""Speech models and voices on disk: where they live, what is there, and ``omad models pull``.

The layout under ``Config.models_dir()``::

    whisper/<size>/            model.bin, config.json, tokenizer.json, vocabulary.*   (CTranslate2)
    piper/<voice>/<voice>.onnx with <voice>.onnx.json beside it (and MODEL_CARD)
    */<name>/omad-model.json   the manifest: where it came from, each file's size and sha256

``pull`` is the only code in omad that downloads a model, and only when a
person runs it: it fetches from the Hugging Face Hub with ``huggingface_hub``
(``HF_ENDPOINT`` points it at a mirror), resumably into a staging folder,
checks every file against the sha256 the Hub lists for it, and moves the
files into place only when all are there. A local folder or file is copied
the same way. A job never calls anything here but the resolvers, which never
download: a missing model is a :class:`ToolMissing` naming the pull command.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, OmadError, ToolMissing, TransientError

if TYPE_CHECKING:
    from .config import Config

__all__ = ["ModelKind", "InstalledModel", "WHISPER_REPOS", "PIPER_REPO", "MANIFEST", "whisper_dir", "piper_voice",
           "installed", "pull", "parse_name", "doctor_checks", "configured"]

MANIFEST = "omad-model.json"
#: Whisper sizes and the Hub repositories of their CTranslate2 conversions (faster-whisper's own table).
WHISPER_REPOS: dict[str, str] = {
    "tiny": "Systran/faster-whisper-tiny",
    "tiny.en": "Systran/faster-whisper-tiny.en",
    "base": "Systran/faster-whisper-base",
    "base.en": "Systran/faster-whisper-base.en",
    "small": "Systran/faster-whisper-small",
    "small.en": "Systran/faster-whisper-small.en",
    "medium": "Systran/faster-whisper-medium",
    "medium.en": "Systran/faster-whisper-medium.en",
    "large-v2": "Systran/faster-whisper-large-v2",
    "large-v3": "Systran/faster-whisper-large-v3",
    "large-v3-turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
    "distil-large-v3": "Systran/faster-distil-whisper-large-v3",
}
#: The files of a faster-whisper model folder (anything else in the repository is left on the Hub).
WHISPER_FILES = ["model.bin", "config.json", "tokenizer.json", "vocabulary.*", "preprocessor_config.json"]
PIPER_REPO = "rhasspy/piper-voices"
_PIPER_QUALITIES = ("x_low", "low", "medium", "high")


class ModelKind(StrEnum):
    #: a faster-whisper (CTranslate2) speech recognition model
    WHISPER = "whisper"
    #: a Piper voice (ONNX)
    PIPER = "piper"


@dataclass
class InstalledModel:
    kind: ModelKind
    name: str
    path: Path
    size: int
    sha256: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "name": self.name, "path": str(self.path), "size": self.size,
                "sha256": self.sha256, "source": self.source}


def _pull_hint(kind: ModelKind, name: str) -> str:
    return f"omad models pull {'whisper-' + name if kind is ModelKind.WHISPER else 'piper:' + name}"


# -- resolving (what jobs use: never downloads) ----------------------------------------------------------------


def whisper_dir(config: Config, model: str) -> Path:
    """The folder of Whisper model ``model`` (a size under models_dir/whisper/, or a folder path).

    Raises ToolMissing naming the pull command when it is not there.
    """
    value = model.strip()
    if not value:
        raise ConfigError("asr.model is empty: name a Whisper size (base, small...) or a model folder.")
    looks_like_path = "/" in value or value.startswith(("~", "."))
    folder = config.resolve(value) if looks_like_path else config.models_dir() / "whisper" / value
    if not (folder / "model.bin").is_file():
        if looks_like_path:
            raise ToolMissing(f"the Whisper model folder has no model.bin. Point asr.model at a faster-whisper "
                              "(CTranslate2) model folder, or set it to a size and run "
                              f"`omad models pull whisper-{'base'}`.", file=folder, details={"key": "asr.model"})
        known = f" ({', '.join(WHISPER_REPOS)})" if value not in WHISPER_REPOS else ""
        raise ToolMissing(f"the Whisper model '{value}' is not installed in {folder.parent}{known}. Run "
                          f"`{_pull_hint(ModelKind.WHISPER, value)}` (omad never downloads while a job runs).",
                          details={"key": "asr.model", "model": value})
    return folder


def piper_voice(config: Config, voice: str) -> Path:
    """The ``.onnx`` file of Piper voice ``voice`` (a name under models_dir/piper/, or an .onnx path)."""
    value = voice.strip()
    path = config.resolve(value) if value.endswith(".onnx") else config.models_dir() / "piper" / value / f"{value}.onnx"
    if not path.is_file() or not Path(str(path) + ".json").is_file():
        raise ToolMissing(f"the Piper voice '{value}' is not installed (it needs {path.name} and {path.name}.json). "
                          f"Run `{_pull_hint(ModelKind.PIPER, Path(value).stem)}`.", file=path)
    return path


def configured(config: Config) -> list[tuple[ModelKind, str]]:
    """The models this configuration names (the Whisper model; the Piper voice when there is one)."""
    out = [(ModelKind.WHISPER, config.asr.model)]
    piper = getattr(config.tts, "piper", None)
    voice = getattr(piper, "voice", "") if piper is not None else ""
    if voice:
        out.append((ModelKind.PIPER, str(voice)))
    return out


def _read_manifest(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def installed(config: Config) -> list[InstalledModel]:
    """Every model found in the layout, with its manifest's facts (or the folder's size when it has none)."""
    root = config.models_dir()
    found: list[InstalledModel] = []
    for kind in ModelKind:
        base = root / kind.value
        if not base.is_dir():
            continue
        for folder in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
            main = folder / ("model.bin" if kind is ModelKind.WHISPER else f"{folder.name}.onnx")
            if not main.is_file():
                continue
            manifest = _read_manifest(folder)
            files = manifest.get("files") or {}
            size = sum(int(f.get("size", 0)) for f in files.values()) if files else \
                sum(p.stat().st_size for p in folder.iterdir() if p.is_file() and p.name != MANIFEST)
            found.append(InstalledModel(kind, folder.name, folder, size, str((files.get(main.name) or {}).get(
                "sha256", "")), str(manifest.get("source", "unknown (no manifest: not pulled by omad)"))))
    return found


def doctor_checks(config: Config) -> list[tuple[str, bool, str]]:
    """(name, ok, message) for each configured model: is it installed?"""
    out: list[tuple[str, bool, str]] = []
    for kind, name in configured(config):
        try:
            path = whisper_dir(config, name) if kind is ModelKind.WHISPER else piper_voice(config, name)
            out.append((f"{kind.value} model", True, f"{name}: {path}"))
        except OmadError as e:
            out.append((f"{kind.value} model", False, e.message))
    return out


# -- pulling (only `omad models pull`) ---------------------------------------------------------------------------


def parse_name(name: str) -> tuple[ModelKind, str]:
    """``whisper-<size>`` or ``piper:<voice>`` as (kind, name); anything else is a ConfigError listing both."""
    if name.startswith("whisper-") and len(name) > len("whisper-"):
        return ModelKind.WHISPER, name[len("whisper-"):]
    if name.startswith("piper:") and len(name) > len("piper:"):
        voice = name[len("piper:"):]
        _piper_parts(voice)
        return ModelKind.PIPER, voice
    raise ConfigError(f"'{name}' is not a model name omad knows. Use whisper-<size> ({', '.join(WHISPER_REPOS)}) "
                      "or piper:<voice> (e.g. piper:pt_BR-faber-medium).")


def _piper_parts(voice: str) -> tuple[str, str, str, str]:
    """(lang, lang_REGION, name, quality) of a voice like ``pt_BR-faber-medium``."""
    parts = voice.split("-")
    if len(parts) < 3 or "_" not in parts[0] or parts[-1] not in _PIPER_QUALITIES:
        raise ConfigError(f"'{voice}' is not a Piper voice name: they read <lang_REGION>-<name>-<quality>, e.g. "
                          f"pt_BR-faber-medium (qualities: {', '.join(_PIPER_QUALITIES)}).")
    region = parts[0]
    return region.split("_")[0], region, "-".join(parts[1:-1]), parts[-1]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _hub_error(e: Exception, repo: str, what: str) -> OmadError:
    """A huggingface_hub (or HTTP) error as an omad error that says what to do."""
    from huggingface_hub import errors as hf

    if isinstance(e, hf.GatedRepoError):
        return ConfigError(f"the Hub repository '{repo}' is gated: accept its terms on the Hub and log in.")
    if isinstance(e, hf.RepositoryNotFoundError):
        return ConfigError(f"the Hub has no repository '{repo}' for {what} (or it is private).")
    if isinstance(e, hf.RevisionNotFoundError):
        return ConfigError(f"the Hub repository '{repo}' has no such revision ({what}).")
    if isinstance(e, hf.OfflineModeIsEnabled | hf.LocalEntryNotFoundError):
        return TransientError(f"could not reach the Hub for {what} ({type(e).__name__}). Check the network "
                              "(HF_HUB_OFFLINE, HF_ENDPOINT) and run the pull again: it resumes.")
    if isinstance(e, hf.EntryNotFoundError):
        return ConfigError(f"the Hub repository '{repo}' has no file for {what}. Check the name.")
    if isinstance(e, hf.HFValidationError):
        return ConfigError(f"'{repo}' is not a valid Hub repository id ({e}).")
    if isinstance(e, hf.HfHubHTTPError):
        return TransientError(f"the Hub answered with an error for {what} ({str(e).splitlines()[0]}). "
                              "Run the pull again: it resumes.")
    return TransientError(f"downloading {what} from the Hub failed ({type(e).__name__}: {e}). Run the pull "
                          "again: it resumes where it stopped.")


def _hub_hashes(repo: str, revision: str, paths: list[str]) -> dict[str, str]:
    """The sha256 the Hub lists for each LFS file among ``paths`` (small git files have none)."""
    from huggingface_hub import HfApi

    out: dict[str, str] = {}
    for item in HfApi().get_paths_info(repo, paths, revision=revision):
        lfs = getattr(item, "lfs", None)
        if lfs is not None and getattr(lfs, "sha256", None):
            out[item.path] = str(lfs.sha256)
    return out


def _install(kind: ModelKind, name: str, files: dict[str, Path], source: str, root: Path,
             expected: dict[str, str]) -> InstalledModel:
    """Hash ``files`` (target name -> staged path), check them, and move them into place with a manifest."""
    dest = root / kind.value / name
    record: dict[str, dict[str, Any]] = {}
    for target, staged in files.items():
        digest = _sha256(staged)
        want = expected.get(target)
        if want and want != digest:
            staged.unlink(missing_ok=True)
            raise TransientError(f"{target} of {name} does not match the sha256 its source lists "
                                 f"(expected {want[:12]}..., got {digest[:12]}...); the bad copy was removed. Run "
                                 "the pull again.", details={"expected": want, "found": digest})
        record[target] = {"size": staged.stat().st_size, "sha256": digest}
    tmp = root / kind.value / f".{name}.installing"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for target, staged in files.items():
        if staged.resolve().is_relative_to(root.resolve()):
            os.replace(staged, tmp / target)  # a download staged under models_dir: moved
        else:
            shutil.copy2(staged, tmp / target)  # a person's own file: copied, never moved
    manifest = {"kind": kind.value, "name": name, "source": source, "pulled_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                time.gmtime()), "files": record}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    main = "model.bin" if kind is ModelKind.WHISPER else f"{name}.onnx"
    return InstalledModel(kind, name, dest, sum(int(f["size"]) for f in record.values()),
                          str(record.get(main, {}).get("sha256", "")), source)


def _pull_hub(kind: ModelKind, name: str, root: Path, revision: str) -> InstalledModel:
    try:
        from huggingface_hub import hf_hub_download, snapshot_download
    except ImportError as e:
        raise ToolMissing("pulling from the Hub needs huggingface_hub: pip install 'omad[asr]' (or pull a local "
                          "folder with --from PATH).") from e

    staging = root / ".downloads" / kind.value / name  # kept between tries: downloads resume from here
    staging.mkdir(parents=True, exist_ok=True)
    if kind is ModelKind.WHISPER:
        if name not in WHISPER_REPOS:
            raise ConfigError(f"omad does not know the Whisper size '{name}'. Sizes: {', '.join(WHISPER_REPOS)}; "
                              "or pull a local folder with --from PATH.")
        repo = WHISPER_REPOS[name]
        try:
            snapshot_download(repo, revision=revision, local_dir=staging, allow_patterns=WHISPER_FILES)
            from huggingface_hub import HfApi

            commit = HfApi().model_info(repo, revision=revision).sha or revision
            names = sorted(p.name for p in staging.iterdir() if p.is_file())
            expected = _hub_hashes(repo, commit, names)
        except OmadError:
            raise
        except Exception as e:
            raise _hub_error(e, repo, f"whisper-{name}") from e
        if "model.bin" not in names:
            raise ConfigError(f"the Hub repository '{repo}' has no model.bin: it is not a faster-whisper model.")
        files = {n: staging / n for n in names}
    else:
        lang, region, speaker, quality = _piper_parts(name)
        repo = PIPER_REPO
        folder = f"{lang}/{region}/{speaker}/{quality}"
        wanted = [f"{folder}/{name}.onnx", f"{folder}/{name}.onnx.json", f"{folder}/MODEL_CARD"]
        files = {}
        try:
            from huggingface_hub import HfApi
            from huggingface_hub import errors as hf

            commit = HfApi().model_info(repo, revision=revision).sha or revision
            for path in wanted:
                try:
                    got = hf_hub_download(repo, path, revision=commit, local_dir=staging)
                except hf.RemoteEntryNotFoundError:
                    if path.endswith("MODEL_CARD"):
                        continue  # a voice without a card is still a voice
                    raise
                files[Path(path).name] = Path(got)
            hashes = _hub_hashes(repo, commit, [p for p in wanted if Path(p).name in files])
            expected = {Path(p).name: h for p, h in hashes.items()}
        except OmadError:
            raise
        except Exception as e:
            raise _hub_error(e, repo, f"piper:{name}") from e
    result = _install(kind, name, files, f"hf:{repo}@{commit}", root, expected)
    shutil.rmtree(staging, ignore_errors=True)
    return result


def _pull_local(kind: ModelKind, name: str, src: Path, root: Path) -> InstalledModel:
    if kind is ModelKind.WHISPER:
        if not (src / "model.bin").is_file():
            raise ConfigError("is not a faster-whisper model folder (no model.bin). Convert the model with "
                              "ct2-transformers-converter or pull a Hub model by size.", file=src)
        files = {p.name: p for p in sorted(src.iterdir()) if p.is_file() and p.name != MANIFEST}
    else:
        onnx = src if src.suffix == ".onnx" else src / f"{name}.onnx"
        side = Path(str(onnx) + ".json")
        if not onnx.is_file() or not side.is_file():
            raise ConfigError(f"a Piper voice needs {onnx.name} with {side.name} beside it.", file=onnx)
        files = {f"{name}.onnx": onnx, f"{name}.onnx.json": side}
        if (onnx.parent / "MODEL_CARD").is_file():
            files["MODEL_CARD"] = onnx.parent / "MODEL_CARD"
    return _install(kind, name, files, f"path:{src.resolve()}", root, {})


def pull(config: Config, name: str, *, source: Path | None = None, revision: str = "main",
         say: Callable[[str], None] = print) -> InstalledModel:
    """Fetch model ``name`` into the layout: from the Hub, or from ``source`` (a local folder or .onnx file).

    ``name`` may itself be a local path: a folder holding model.bin becomes the
    Whisper model named after the folder, an .onnx file the Piper voice named
    after it.
    """
    root = config.models_dir()
    if source is None and (Path(name).expanduser().exists()):
        source = Path(name).expanduser()
        if source.is_file() and source.suffix == ".onnx":
            kind, model = ModelKind.PIPER, source.stem
        else:
            kind, model = ModelKind.WHISPER, source.name
    else:
        kind, model = parse_name(name)
    root.mkdir(parents=True, exist_ok=True)
    if source is not None:
        if not source.exists():
            raise ConfigError("does not exist: give a model folder (Whisper) or an .onnx file (Piper).", file=source)
        say(f"copying {kind.value} model '{model}' from {source}")
        return _pull_local(kind, model, source, root)
    say(f"downloading {kind.value} model '{model}' from the Hub into {root / kind.value / model}")
    return _pull_hub(kind, model, root, revision)


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def listing(config: Config) -> list[str]:
    """``omad models list``: every installed model (size, hash, source), then configured ones that are missing."""
    rows = installed(config)
    wanted = configured(config)
    lines = [f"models in {config.models_dir()}"]
    if not rows:
        lines.append("  (none installed)")
    for m in rows:
        mark = "*" if (m.kind, m.name) in wanted else " "
        digest = m.sha256[:12] if m.sha256 else "-"
        lines.append(f"{mark} {m.kind.value:7} {m.name:28} {_human(m.size):>9}  sha256:{digest}  {m.source}")
    have = {(m.kind, m.name) for m in rows}
    for kind, name in wanted:
        looks_like_path = "/" in name or name.endswith(".onnx")
        if (kind, name) not in have and not looks_like_path:
            lines.append(f"! {kind.value:7} {name:28} configured but missing: {_pull_hint(kind, name)}")
    lines.append("(* configured; sizes and hashes from each model's omad-model.json)")
    return lines
