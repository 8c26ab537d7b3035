"""From manifests to training inputs: one tokenizer per language and a feature cache per split.

Entry point for anyone holding manifests (`data/<locale>/{train,dev,test}.jsonl`), whether
they came from `asr prepare` or elsewhere. Each stage is skipped when its outputs exist and
were made from the same inputs and settings.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from asr.config import FeatureConfig
from asr.feature_cache import build_cache
from asr.fileio import is_done, mark_done, read_jsonl
from asr.languages import resolve_units
from asr.run_lock import FolderLock
from asr.tokenizer import Tokenizer, train_tokenizer, unseen_rate

SPLITS = ("train", "dev", "test")


def _digest(path: Path, extra: dict) -> str:
    h = hashlib.sha256(path.read_bytes())
    h.update(json.dumps(extra, sort_keys=True).encode())
    return h.hexdigest()[:16]


def tokenizer_path(data_dir: str | Path, locale: str) -> Path:
    return Path(data_dir) / locale / "tokenizer.model"


def feature_dir(data_dir: str | Path, locale: str, split: str) -> Path:
    return Path(data_dir) / locale / "feats" / split


def prepare_tokenizer(data_dir: Path, locale: str, vocab_size: int, units: str = "char",
                      units_for: dict[str, str] | None = None) -> Tokenizer:
    """Train (or reuse) the tokenizer of `locale` on its training transcripts.

    Its kind is `asr.languages.resolve_units(locale, units, units_for)`: the `units_for` entry
    of the locale (e.g. {"zh-CN": "pinyin"}), else `units` (char, unigram, bpe) for a spaced
    language, else the language's default (char). `vocab_size` applies to unigram and bpe.
    """
    data_dir = Path(data_dir)
    train = data_dir / locale / "train.jsonl"
    kind = resolve_units(locale, units, units_for)
    key = _digest(train, {"kind": kind, "vocab_size": vocab_size})
    path = tokenizer_path(data_dir, locale)
    stage_dir = data_dir / locale
    marker = stage_dir / ".tokenizer.done"
    if path.exists() and is_done(stage_dir, "tokenizer") and json.loads(marker.read_text()).get("key") == key:
        return Tokenizer.load(path)
    texts = [r["norm_text"] for r in read_jsonl(train)]
    if not texts:
        raise ValueError(f"{train}: no training utterances; cannot train a tokenizer for {locale}")
    tok = train_tokenizer(texts, locale=locale, kind=kind, vocab_size=vocab_size)
    tok.save(path)
    mark_done(stage_dir, "tokenizer", {"key": key, "kind": tok.kind, "vocab_size": tok.vocab_size})
    return tok


def prepare_data(
    data_dir: str | Path,
    locales: list[str],
    vocab_size: int = 256,
    units: str = "char",
    units_for: dict[str, str] | None = None,
    workers: int = 2,
    features: bool = True,
    feature_config: FeatureConfig | None = None,
    progress: bool = True,
) -> dict:
    """Tokenizers and feature caches for `locales`; returns rows per (locale, split) and a table.

    Units as in `prepare_tokenizer`; they are checked for every locale before any work starts.
    One process writes `data_dir` at a time; another waits for it, then finds the work done.
    """
    data_dir = Path(data_dir)
    for locale in locales:
        resolve_units(locale, units, units_for)  # a misspelt kind fails now, not hours later
    with FolderLock(data_dir, "data folder").acquire(wait=True):
        return _prepare_data(data_dir, locales, vocab_size, units, units_for, workers, features,
                             feature_config or FeatureConfig(), progress)


def _prepare_data(data_dir: Path, locales: list[str], vocab_size: int, units: str,
                  units_for: dict[str, str] | None, workers: int, features: bool,
                  feature_config: FeatureConfig, progress: bool) -> dict:
    rows = []
    for locale in locales:
        tok = prepare_tokenizer(data_dir, locale, vocab_size, units=units, units_for=units_for)
        for split in SPLITS:
            manifest = data_dir / locale / f"{split}.jsonl"
            if not manifest.exists():
                continue
            records = read_jsonl(manifest)
            row = {
                "locale": locale,
                "split": split,
                "utterances": len(records),
                "hours": sum(r["duration"] for r in records) / 3600,
                "unseen": unseen_rate(tok, [r["norm_text"] for r in records]),
                "vocab": tok.vocab_size,
            }
            if features:
                t0 = time.perf_counter()
                cache = build_cache(
                    manifest,
                    feature_dir(data_dir, locale, split),
                    config=feature_config,
                    workers=workers,
                    progress=progress,
                    verify=True,  # a rerun finds and recomputes damaged shards (crc32 each)
                )
                seconds = time.perf_counter() - t0
                summary = cache.summary
                row |= {
                    "cache_mb": summary["bytes"] / 2**20,
                    "skipped": summary["skipped"],
                    "build_seconds": seconds,
                    "x_real_time": summary.get("audio_seconds", 0.0) / max(seconds, 1e-9),
                }
            rows.append(row)
    return {"rows": rows, "table": format_table(rows)}


def format_table(rows: list[dict]) -> str:
    """A Markdown table a person reads after `asr prepare`."""
    head = ("| locale | split | utts | hours | vocab | unseen units | cache MB | skipped "
            "| features x real time |")
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        cache = f"{r['cache_mb']:.1f}" if "cache_mb" in r else "-"
        skipped = str(r.get("skipped", "-"))
        # a reused cache costs no time: its speed is not a measurement
        speed = f"{r['x_real_time']:.0f}" if r.get("build_seconds", 0) > 0.05 else "cached"
        lines.append(
            f"| {r['locale']} | {r['split']} | {r['utterances']} | {r['hours']:.3f} | "
            f"{r['vocab']} | {100 * r['unseen']:.1f}% | {cache} | {skipped} | {speed} |"
        )
    return "\n".join(lines)
