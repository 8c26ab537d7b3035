"""Common Voice releases as downloaded: per-locale archives, read in one streaming pass.

    cv-corpus-<version>-<locale>.tar.gz
        cv-corpus-<version>/<locale>/{dev,test,train,validated,...}.tsv, clip_durations.tsv
        cv-corpus-<version>/<locale>/clips/*.mp3

gzip has no random access and a tar no index, so each archive is read once, front to back
(tarfile's stream mode), and every member is dealt with as it passes; the release is never
extracted:

- The TSVs the manifests need are copied to out/<locale>/release/ (a few MB to a few hundred)
  and read there by the very code that reads a release folder.
- A clip is held in memory, only while it is decoded, and what happens to it depends on what
  the TSVs have said by then. Once this archive's dev, test and training TSVs have passed
  (Mozilla's archives carry them ahead of the clips), a clip that no usable row names is
  skipped undecoded; a dev or test clip, and a training clip when no hours subset is asked
  for, has its features computed at once, straight into its split's feature cache. A training
  clip when an hours subset is asked for, and any clip that comes before the TSVs, is appended
  to a spool of compressed clip bytes: which training clips a subset takes depends on the
  durations of all of them, known only at the end.
- After the last archive, manifests are made as from a folder (same split reading, drop
  reasons, durations rule and seeded subset), the spooled clips the manifests use get their
  features, each cache its index, and the spool is deleted.

Why spool bytes instead of computing features for every clip as it passes: most clips of a
large release are never used here (other.tsv and invalidated.tsv clips; training clips
beyond the hours asked for, 1 h of English's thousands), and log-mel features take about
twice the disk of Common Voice's MP3s (57.6 MB against 20-30 MB per hour of audio), so
featurising everything would cost far more time and disk than extracting the release. The
spool holds only clips whose use is still open, compressed, in one file, and stays empty for
Mozilla's order without an hours subset.

Hostile members are skipped and counted, never written: absolute names and names that climb
out with '..', symbolic and hard links, devices, FIFOs, sparse files, and members over
MAX_CLIP_BYTES (clips) or MAX_TSV_BYTES (TSVs). A row naming a skipped clip is dropped as
missing_clip. The archives of one locale (a release and its delta releases) are read in the
order given and their TSVs joined; a clip that passed after its archive's TSVs, unnamed by
them, is not kept, so a later archive's row cannot name it (Mozilla's deltas never do).
"""

from __future__ import annotations

import os
import shutil
import tarfile
import time
import zlib
from collections import Counter
from pathlib import Path

from asr.audio import AudioBytes
from asr.config import FeatureConfig
from asr.feature_writer import Featurizer, StreamCacheWriter, cache_matches
from asr.fileio import atomic_write, mark_done, write_json
from asr.prepare import feature_dir
from asr.text import normalize_text
from data_prep.commonvoice import SPLITS, clip_key, read_release_durations
from data_prep.manifest import (
    MANIFEST_FORMAT,
    STAGE,
    read_locale_splits,
    reused_summary,
    up_to_date,
    write_locale,
)

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
MAX_CLIP_BYTES = 16 * 2**20  # a 300 s clip (the feature cache's limit) at 320 kbit/s is 12 MB
MAX_TSV_BYTES = 4 * 2**30  # English's validated.tsv is under 1 GB
_COPY_CHUNK = 1 << 20  # bytes
SKIP_REASONS = {
    "unsafe_name": "absolute name, or one that climbs out with '..'",
    "link": "symbolic or hard link",
    "special_file": "device, FIFO or sparse file",
    "oversized": f"clip over {MAX_CLIP_BYTES >> 20} MB or TSV over {MAX_TSV_BYTES >> 30} GB",
}


class ArchiveError(ValueError):
    """An archive that cannot be read on; the message names it and what is wrong."""


def is_archive(path: Path) -> bool:
    return path.name.endswith(ARCHIVE_SUFFIXES)


def release_archives(cv_root, locales: list[str]) -> dict[str, list[Path]] | None:
    """{locale: its archives in the order given} when `cv_root` names archives; None for a
    release folder. An archive's locale comes from its name, cv-corpus-<version>-<locale>.tar.gz."""
    roots = [Path(p) for p in (cv_root if isinstance(cv_root, (list, tuple)) else [cv_root])]
    if len(roots) == 1 and not is_archive(roots[0]):
        return None
    by_locale: dict[str, list[Path]] = {loc: [] for loc in locales}
    for path in roots:
        if not is_archive(path):
            raise ValueError(f"{path}: not a .tar.gz archive; give one release folder, or one or "
                             "more Common Voice archives (cv-corpus-<version>-<locale>.tar.gz)")
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such archive")
        stem = path.name[:-len(next(s for s in ARCHIVE_SUFFIXES if path.name.endswith(s)))]
        matches = sorted((loc for loc in locales if stem.endswith(f"-{loc}")), key=len)
        if not matches:
            raise ValueError(f"{path}: cannot tell its locale from the name: expected "
                             f"cv-corpus-<version>-<locale>.tar.gz with a locale of {', '.join(locales)}")
        by_locale[matches[-1]].append(path.resolve())
    missing = [loc for loc, paths in by_locale.items() if not paths]
    if missing:
        raise FileNotFoundError(f"no archive for {', '.join(missing)} among "
                                f"{', '.join(map(str, roots))} (expected cv-corpus-<version>-<locale>.tar.gz)")
    return by_locale


def member_problem(member: tarfile.TarInfo, limit_bytes: int) -> str | None:
    """Why a member must be skipped (a SKIP_REASONS key), or None."""
    name = member.name
    parts = name.replace("\\", "/").split("/")
    if "\x00" in name or name.startswith(("/", "\\")) or ":" in parts[0] or ".." in parts:
        return "unsafe_name"
    if member.issym() or member.islnk():
        return "link"
    if not member.isreg() or member.issparse():
        return "special_file"
    if member.size > limit_bytes:
        return "oversized"
    return None


class _LocalePass:
    """What one locale's archives have shown so far, and where each clip went."""

    def __init__(self, locale: str, dest: Path, train_source: str, hours: float | None, seed: int,
                 config: FeatureConfig, archives: list[Path]):
        self.locale, self.dest, self.train_source, self.hours = locale, dest, train_source, hours
        self.seed = seed
        self.config, self.archives = config, archives
        self.tsvs = ("dev", "test", train_source)
        self.staged: list[Path] = []  # one folder of TSVs per archive
        self.listing: dict[str, str] | None = None  # clip -> split, once this archive's TSVs passed
        self.member_of: dict[str, str] = {}  # clip -> "<archive>#<member>"
        self.split_of: dict[str, str] = {}  # clip -> the split whose cache its features go to
        self.header: dict[str, float | str] = {}  # clip -> seconds, or a drop reason
        self.spool: dict[str, tuple[int, int]] = {}  # clip -> (offset, bytes) in the spool file
        self.spool_peak_bytes = 0
        self.counts: Counter[str] = Counter()
        self.writers = {s: StreamCacheWriter(feature_dir(dest.parent, locale, s), config,
                                             [str(a) for a in archives]) for s in SPLITS}

    def route(self, clip: str) -> str:
        """'skip', 'now' (features at once) or 'spool' for a clip passing now."""
        if self.listing is None:
            return "spool"
        split = self.listing.get(clip)
        if split is None:
            return "skip"
        return "spool" if split == "train" and self.hours is not None else "now"

    def take(self, result: dict) -> None:
        """Record a featurize() result: the header duration, and features into its split."""
        clip = result["key"]
        self.header[clip] = result.get("seconds", "unreadable_clip")
        if "feats" not in result and "reason" not in result:
            return
        writer = self.writers[self.split_of[clip]]
        utt_id = os.path.splitext(clip)[0]
        if "reason" in result:
            writer.skip(utt_id, result["reason"])
        else:
            writer.add(utt_id, result["feats"], result["audio_seconds"])


def prepare_locale_archives(
    archives: list[Path],
    locale: str,
    out_dir: Path,
    hours: float | None = None,
    seed: int = 0,
    train_source: str = "train",
    progress: bool = True,
    workers: int = 1,
    feature_config: FeatureConfig | None = None,
) -> dict:
    """Manifests and feature caches of one locale from its archives (see the module docstring)."""
    normalize_text("", locale)  # an unknown locale fails here, before any reading
    config = feature_config or FeatureConfig()
    dest = out_dir / locale
    params = _stage_params(archives, hours, seed, train_source, config)
    if up_to_date(dest, params) and all(
            cache_matches(feature_dir(out_dir, locale, s), dest / f"{s}.jsonl", config) for s in SPLITS):
        return reused_summary(dest)
    (dest / f".{STAGE}.done").unlink(missing_ok=True)  # outputs are in flux from here on
    shutil.rmtree(dest / "release", ignore_errors=True)
    t0 = time.perf_counter()
    state = _LocalePass(locale, dest, train_source, hours, seed, config, archives)
    spool_path = dest / "release" / "clips.spool"
    spool_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with Featurizer(config, workers) as feats, open(spool_path, "wb") as spool:
            for k, archive in enumerate(archives):
                _read_archive(state, k, archive, feats, spool, progress)
            for result in feats.drain():
                state.take(result)
            spool.flush()
            summary = _finish(state, feats, spool_path)
    except BaseException as e:
        for writer in state.writers.values():
            writer.abort(e)
        raise
    finally:
        spool_path.unlink(missing_ok=True)
    summary = {"locale": locale, "cv_root": [str(a) for a in archives]} | summary
    summary["archive"] = {"members": dict(sorted(state.counts.items())),
                          "spool_peak_bytes": state.spool_peak_bytes,
                          "seconds": round(time.perf_counter() - t0, 3)}
    write_json(dest / "summary.json", summary)
    mark_done(dest, STAGE, params)
    return summary


def _read_archive(state: _LocalePass, k: int, archive: Path, feats: Featurizer, spool,
                  progress: bool) -> None:
    """One streaming pass over `archive`: TSVs staged, clips routed (see the module docstring)."""
    staged = state.dest / "release" / f"{k}-{archive.name}"
    staged.mkdir(parents=True, exist_ok=True)
    state.staged.append(staged)
    state.listing, seen_tsvs, n = None, set(), 0
    from tqdm import tqdm

    bar = tqdm(desc=f"{state.locale}: {archive.name}", unit="member", disable=not progress)
    try:
        with tarfile.open(archive, "r|*") as tar:
            for member in tar:
                n += 1
                bar.update()
                tar.members = []  # stream mode keeps every TarInfo: a million of them otherwise
                if member.isdir():
                    continue
                problem = member_problem(member, MAX_TSV_BYTES)
                where = _locale_path(member.name, state.locale) if problem is None else None
                is_tsv = where is not None and len(where) == 1 and where[0].endswith(".tsv")
                if problem is None and where is not None and not is_tsv:
                    problem = member_problem(member, MAX_CLIP_BYTES)
                if problem:
                    state.counts[f"skipped_{problem}"] += 1
                    continue
                if where is None:
                    state.counts["outside_locale"] += 1
                    continue
                if is_tsv:
                    name = where[0][:-4]
                    if name in (*state.tsvs, "clip_durations"):
                        _copy_member(tar.extractfile(member), staged / where[0])
                        state.counts["tsvs"] += 1
                        seen_tsvs.add(name)
                        if seen_tsvs.issuperset(state.tsvs) and state.listing is None:
                            state.listing = _listing(state)
                elif len(where) == 2 and where[0] == "clips":
                    _clip(state, clip_key(where[1]) or where[1], f"{archive}#{member.name}",
                          tar.extractfile(member).read(), feats, spool)
                else:
                    state.counts["other_files"] += 1
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        if isinstance(e, OSError) and e.filename:
            raise
        raise ArchiveError(f"{archive}: truncated or corrupt archive after {n} members ({e}); "
                           "download it again") from None
    finally:
        bar.close()
    if not any(staged.iterdir()) and not state.member_of:
        raise ArchiveError(f"{archive}: no <version>/{state.locale}/ folder with TSVs or clips in it; "
                           f"is this the {state.locale} archive of a Common Voice release?")


def _locale_path(name: str, locale: str) -> tuple[str, ...] | None:
    """The member's path below <top>/<locale>/, or None for members elsewhere."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if len(parts) < 3 or parts[1] != locale:
        return None
    return tuple(parts[2:])


def _copy_member(src, dst: Path) -> None:
    with atomic_write(dst, "wb") as out:
        shutil.copyfileobj(src, out, _COPY_CHUNK)


def _listing(state: _LocalePass) -> dict[str, str]:
    """clip -> split for every clip a usable row names, from the TSVs staged so far."""
    return {u.clip: s.name for s in read_locale_splits(state.staged, state.locale, state.train_source)
            for u in s.utterances}


def _clip(state: _LocalePass, clip: str, ref: str, data: bytes, feats: Featurizer, spool) -> None:
    state.counts["clips"] += 1
    route = state.route(clip)
    if route == "skip":
        state.counts["clips_unused"] += 1  # named by no usable row: never decoded
        return
    state.member_of[clip] = ref
    if route == "spool":
        state.spool[clip] = (spool.tell(), len(data))
        spool.write(data)
        state.spool_peak_bytes = max(state.spool_peak_bytes, spool.tell())
        return
    state.split_of[clip] = state.listing[clip]
    for result in feats.submit(clip, AudioBytes(ref, data), want_features=True):
        state.take(result)


def _finish(state: _LocalePass, feats: Featurizer, spool_path: Path) -> dict:
    """Manifests from the joined TSVs, features for the spooled clips they use, cache indexes."""
    with open(spool_path, "rb") as spool:
        def spooled(clip):
            offset, size = state.spool[clip]
            spool.seek(offset)
            return AudioBytes(state.member_of[clip], spool.read(size))

        release: dict[str, float] = {}  # clip_durations.tsv, trusted as from a folder
        for staged in state.staged:
            release |= read_release_durations(staged / "clip_durations.tsv")
        for clip in state.spool:  # header durations first: the hours subset needs them all
            if clip not in release:
                for result in feats.submit(clip, spooled(clip), want_features=False):
                    state.take(result)
        for result in feats.drain():
            state.take(result)
        splits = read_locale_splits(state.staged, state.locale, state.train_source)
        seconds, problems = _durations(state, [u.clip for s in splits for u in s.utterances], release)
        summary, records = write_locale(state.dest, state.locale, splits, seconds, problems,
                                        lambda clip: state.member_of[clip], hours=state.hours,
                                        seed=state.seed, train_source=state.train_source)
        for split in splits:
            used = {r["id"] for r in records[split.name]}
            for utt in split.utterances:
                if utt.id in used and utt.clip in state.spool and utt.id not in state.writers[split.name]:
                    state.split_of[utt.clip] = split.name
                    for result in feats.submit(utt.clip, spooled(utt.clip), want_features=True):
                        state.take(result)
        for result in feats.drain():
            state.take(result)
    for name in SPLITS:
        state.writers[name].finish(state.dest / f"{name}.jsonl", "clip not found in the archives")
    return summary


def _durations(state: _LocalePass, clips: list[str], release: dict[str, float]
               ) -> tuple[dict[str, float], dict[str, str]]:
    """Seconds per usable clip and a drop reason per other clip, by the folder's rules: the
    release's clip_durations.tsv (`release`) where it lists the clip, else the clip's header."""
    seconds, problems = {}, {}
    for clip in dict.fromkeys(clips):
        header = state.header.get(clip)
        if clip not in state.member_of:
            problems[clip] = "missing_clip"
        elif clip in release:
            seconds[clip] = release[clip]
        elif isinstance(header, str) or header is None:
            problems[clip] = "unreadable_clip"
        else:
            seconds[clip] = header
        if clip in seconds and not seconds[clip] > 0:
            problems[clip] = "zero_duration"
            del seconds[clip]
    return seconds, problems


def _stage_params(archives: list[Path], hours: float | None, seed: int, train_source: str,
                  config: FeatureConfig) -> dict:
    # size and mtime stand in for an archive's content: a new download redoes the stage
    inputs = [[str(a), a.stat().st_size, a.stat().st_mtime_ns] for a in archives]
    return {"format": MANIFEST_FORMAT, "archives": inputs, "hours": hours, "seed": seed,
            "train_source": train_source, "features": config.identity()}

