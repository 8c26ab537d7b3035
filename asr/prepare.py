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


def prepare_tokenizer(data_dir: Path, locale: str, vocab_size: int, zh_units: str,
                      units: str = "char") -> Tokenizer:
    """Train (or reuse) the tokenizer of `locale` on its training transcripts: `units` (char,
    unigram, bpe; `vocab_size` for the last two) for alphabetic languages, `zh_units` for zh-CN."""
    train = data_dir / locale / "train.jsonl"
    kind = zh_units if locale == "zh-CN" else units
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
    zh_units: str = "char",
    workers: int = 2,
    units: str = "char",
    features: bool = True,
    feature_config: FeatureConfig | None = None,
    progress: bool = True,
) -> dict:
    """Tokenizers and feature caches for `locales`; returns rows per (locale, split) and a table."""
    data_dir = Path(data_dir)
    feature_config = feature_config or FeatureConfig()
    rows = []
    for locale in locales:
        tok = prepare_tokenizer(data_dir, locale, vocab_size, zh_units, units)
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
