"""Data of the transfer experiment: the corpus, the helpers, the target's
pool, one data directory per (seed, target hours) point, and the shuffled-transcript control.

    <exp>/data/helpers/<locale>/     helper manifests, tokenizers, features (prepared once)
    <exp>/data/pool/<target>/        the target's whole training pool; its dev and test sets
                                     and their features serve every point
    <exp>/data/s<seed>/h<hours>/     one point: <target>/ with a nested, seeded subset of the
                                     pool, its own tokenizer and features, dev/test linked from
                                     the pool; each helper linked in without its dev set
    <exp>/data/s<seed>/h<hours>-shuffled/   the same with the helpers' transcripts shuffled
    <exp>/data/facts.json            hours, utterances, speakers, unseen characters per point

A point's tokenizer and feature statistics come from its own subset only, so "h hours of
target data" means nothing more of the target reached the run. Helpers' dev sets are left
out of the points: every run that learns the target selects on the target's dev set.
The experiment is the recipe layer: it may import data_prep (corpus synthesis, manifests,
subsets); nothing in `asr` below it and the CLI does.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import warnings
from pathlib import Path

from asr.config import ConfigError, FeatureConfig
from asr.experiment.config import ExperimentConfig
from asr.experiment.strategies import STRATEGIES
from asr.feature_cache import build_cache
from asr.fileio import read_jsonl, write_json, write_jsonl
from asr.prepare import feature_dir, prepare_data, prepare_tokenizer
from asr.tokenizer import coverage_report
from data_prep.release import prepare_manifests
from data_prep.subset import select_hours, total_hours
from data_prep.synth import synthesize_corpus

SHUFFLE_GROUP = 16  # transcripts are permuted among this many utterances of similar duration


def _link(target: Path, link: Path) -> None:
    """A relative symlink `link` -> `target`, left alone when it is already that link (so
    processes preparing the same experiment never pull a file from under each other)."""
    rel = os.path.relpath(target, link.parent)
    if link.is_symlink() and os.readlink(link) == rel:
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link)
    link.symlink_to(rel)


def _write_if_changed(path: Path, rows: list[dict]) -> None:
    """Rewrite a manifest only when its content changes (its mtime and readers stay put)."""
    if path.exists() and read_jsonl(path) == rows:
        return
    write_jsonl(path, rows)


def ensure_corpus(exp: ExperimentConfig) -> Path:
    """The release root; with corpus.synth, synthesised (or found up to date) first."""
    root = Path(exp.corpus.root)
    locales = [*exp.helpers.locales, exp.target.locale]
    s = exp.corpus.synth
    if s is None:
        missing = [loc for loc in locales if not (root / loc / "test.tsv").exists()]
        if missing:
            raise FileNotFoundError(
                f"{root}: no Common Voice release for {', '.join(missing)}; download it by hand "
                "(scripts/commonvoice_recipe.sh says which files) or give corpus.synth settings")
        return root
    absent = sorted(set(locales) - set(s.hours))
    if absent:
        raise ConfigError(f"corpus.synth.hours lacks {', '.join(absent)}")
    # quick when the release exists with these settings; redone (reusing clips) when not
    summary = synthesize_corpus(root, locales=locales, hours={loc: s.hours[loc] for loc in locales},
                                seed=s.seed, eval_hours=s.eval_hours, workers=s.workers,
                                zh_inventory_size=s.zh_inventory_size, progress=True,
                                channels=s.channels)
    if not summary.get("cached"):
        print(summary.get("table", ""), flush=True)
    return root


def point_dir(data: Path, seed: int, hours: float, helper_text: str | None = None) -> Path:
    """The data dir of a (seed, hours) point. helper_text None: the target's runs (helpers
    without dev sets, there to score forgetting); "true" / "shuffled": runs that train on the
    helpers too (their dev sets in, their transcripts true or shuffled)."""
    suffix = {None: "", "true": "-joint", "shuffled": "-shuffled"}[helper_text]
    return data / f"s{seed}" / f"h{hours:g}{suffix}"


def _link_helper(src: Path, dest: Path, train_manifest: Path | None = None,
                 dev: bool = False) -> None:
    """A helper language in a point's data dir: its train/test manifests, tokenizer and
    features, and its dev set only with `dev`: a run validates on every language of its data
    dir, and only runs that train on the helpers follow their dev sets (train.schedule_metric)."""
    dest.mkdir(parents=True, exist_ok=True)
    _link(train_manifest or src / "train.jsonl", dest / "train.jsonl")
    splits = ("train", "dev", "test") if dev else ("train", "test")
    for name in [f"{split}.jsonl" for split in splits if split != "train"] + ["tokenizer.model"]:
        _link(src / name, dest / name)
    for split in splits:
        _link(src / "feats" / split, dest / "feats" / split)


def shuffled_records(records: list[dict], seed: int) -> list[dict]:
    """Transcripts permuted among utterances of similar duration (groups of SHUFFLE_GROUP), so
    CTC alignments stay feasible while every pairing of audio and text is broken."""
    order = sorted(range(len(records)), key=lambda i: (records[i]["duration"], records[i]["id"]))
    rng = random.Random(seed)
    out = [dict(r) for r in records]
    for start in range(0, len(order), SHUFFLE_GROUP):
        group = order[start:start + SHUFFLE_GROUP]
        rng.shuffle(group)
        perm = group[1:] + group[:1]  # a rotation after a shuffle: nobody keeps their own text
        for i, j in zip(group, perm, strict=True):
            out[i]["text"], out[i]["norm_text"] = records[j]["text"], records[j]["norm_text"]
    return out


def facts_path(root: Path) -> Path:
    """Where an experiment folder's prepared data records its facts (written last)."""
    return root / "data" / "facts.json"


def prepare_experiment_data(exp: ExperimentConfig, root: Path, features: FeatureConfig) -> dict:
    """Helpers, the target's pool and one data dir per (seed, hours) point, features computed
    with `features`; returns their facts (hours, utterances, speakers, unseen characters)."""
    corpus = ensure_corpus(exp)
    c, tgt, helpers = exp.corpus, exp.target.locale, list(exp.helpers.locales)
    data = root / "data"
    hdir, pool = data / "helpers", data / "pool"
    hours = {loc: exp.helpers.hours for loc in helpers} if exp.helpers.hours is not None else {}
    prepare_manifests(corpus, helpers, hdir, hours=hours, seed=exp.helpers.seed,
                      train_source=c.train_source, progress=False)
    prepare_data(hdir, helpers, vocab_size=c.vocab_size, units=c.units, units_for=c.units_for,
                 workers=c.workers, feature_config=features, progress=False)
    prepare_manifests(corpus, [tgt], pool, train_source=c.train_source, progress=False)
    for split in ("dev", "test"):
        build_cache(pool / tgt / f"{split}.jsonl", feature_dir(pool, tgt, split), config=features,
                    workers=c.workers, progress=False)
    pool_train = read_jsonl(pool / tgt / "train.jsonl")
    test = read_jsonl(pool / tgt / "test.jsonl")
    if len(test) < exp.target.min_test_utterances:
        raise ValueError(f"{pool / tgt / 'test.jsonl'}: {len(test)} test utterances, fewer than "
                         f"target.min_test_utterances={exp.target.min_test_utterances}")
    facts = {"helpers": {loc: {"train_hours": total_hours(read_jsonl(hdir / loc / "train.jsonl")),
                               "test_utterances": len(read_jsonl(hdir / loc / "test.jsonl"))}
                         for loc in helpers},
             "target": {"pool_hours": total_hours(pool_train), "test_utterances": len(test),
                        "test_hours": total_hours(test),
                        "test_speakers": len({r["speaker"] for r in test}),
                        "test_speakers_in_train": len({r["speaker"] for r in test}
                                                      & {r["speaker"] for r in pool_train})},
             "points": {}}
    points = exp.points()
    def trained_with_helpers(text: str) -> set[tuple[int, float]]:
        """The points of the strategies that train on the helpers' `text` transcripts."""
        names = tuple(s for s in exp.grid.strategies
                      if STRATEGIES[s].with_helpers and STRATEGIES[s].helper_text == text)
        return set(exp.points(names)) if names else set()

    joint = {text: trained_with_helpers(text) for text in ("true", "shuffled")}
    shuffled = joint["shuffled"]
    for seed in sorted({seed for seed, _ in points}):
        if seed in {s for s, _ in shuffled}:
            for loc in helpers:
                dest = data / f"shuffled-s{seed}" / loc
                _write_if_changed(dest / "train.jsonl",
                                  shuffled_records(read_jsonl(hdir / loc / "train.jsonl"), seed))
        for h in [h for s, h in points if s == seed]:
            point = point_dir(data, seed, h)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                subset = select_hours(pool_train, h, seed)
            if caught:
                print(f"warning: {tgt} {h:g} h: the training pool holds only "
                      f"{total_hours(pool_train):.4f} h; the point uses all of it", flush=True)
            _write_if_changed(point / tgt / "train.jsonl", subset)
            for split in ("dev", "test"):
                _link(pool / tgt / f"{split}.jsonl", point / tgt / f"{split}.jsonl")
                _link(feature_dir(pool, tgt, split), feature_dir(point, tgt, split))
            prepare_tokenizer(point, tgt, c.vocab_size, units=c.units, units_for=c.units_for)
            build_cache(point / tgt / "train.jsonl", feature_dir(point, tgt, "train"),
                        config=features, workers=c.workers, progress=False)
            for loc in helpers:
                _link_helper(hdir / loc, point / loc)
            for text, at in joint.items():
                if (seed, h) in at:
                    jp = point_dir(data, seed, h, text)
                    _link(point / tgt, jp / tgt)
                    for loc in helpers:
                        _link_helper(hdir / loc, jp / loc, dev=True, train_manifest=(
                            data / f"shuffled-s{seed}" / loc / "train.jsonl"
                            if text == "shuffled" else None))
            cov = coverage_report([r["norm_text"] for r in subset], [r["norm_text"] for r in test],
                                  tgt, kind="char")
            facts["points"][f"s{seed}/h{h:g}"] = {
                "seed": seed, "hours": h, "actual_hours": total_hours(subset),
                "utterances": len(subset), "speakers": len({r["speaker"] for r in subset}),
                "unseen_char_rate": cov["unseen_tokens"] / max(cov["eval_tokens"], 1)}
    write_json(facts_path(root), facts)
    return facts


def data_digest(data_dir: Path, locales: list[str]) -> str:
    """Content of the manifests (ids, durations, speakers, texts; not audio paths, so a moved
    corpus keeps its results) and tokenizers a run reads."""
    h = hashlib.sha256()
    for loc in sorted(locales):
        for name in ("train.jsonl", "dev.jsonl", "test.jsonl"):
            path = data_dir / loc / name
            if path.exists():
                for r in read_jsonl(path):
                    h.update(json.dumps([loc, name, r["id"], r["duration"], r["speaker"],
                                         r["norm_text"]], ensure_ascii=False).encode())
        h.update((data_dir / loc / "tokenizer.model").read_bytes())
    return h.hexdigest()
