"""A Common Voice release -> manifests, whatever form the release takes: an unpacked folder
(data_prep.manifest reads it) or the per-locale archives as downloaded (data_prep.cv_archive
streams them, filling the feature caches on the way). Both readers share the manifest stage
of data_prep.manifest; this module only chooses between them.
"""

from __future__ import annotations

import os
from pathlib import Path

from asr.run_lock import FolderLock
from data_prep.commonvoice import TRAIN_SOURCES
from data_prep.cv_archive import prepare_locale_archives, release_archives
from data_prep.manifest import prepare_locale


def prepare_manifests(
    cv_root: str | os.PathLike | list[str | os.PathLike],
    locales: list[str],
    out_dir: str | os.PathLike,
    hours: dict[str, float] | None = None,
    seed: int = 0,
    train_source: str = "train",
    progress: bool = True,
    workers: int = 1,
) -> dict:
    """Write `out_dir/<locale>/{train,dev,test}.jsonl` for each locale of a Common Voice release.

    `cv_root` is the release folder, or one or more per-locale archives
    (`cv-corpus-<version>-<locale>.tar.gz`, read by data_prep.cv_archive in one streaming pass
    that also fills the feature caches, with `workers` processes). `hours[locale]` limits that
    locale's training set to a seeded, nested subset of about that many hours (locales not
    named keep the whole pool). `train_source` is "train" (train.tsv) or "validated"
    (validated.tsv); either way no clip, speaker or normalised sentence of dev or test reaches
    training. A locale whose outputs were made with the same parameters from unchanged inputs
    is not redone. Returns {"out_dir", "locales": {locale: summary}}; `format_summary`
    renders it as a table. One process writes `out_dir` at a time; another waits for it.
    """
    if train_source not in TRAIN_SOURCES:
        raise ValueError(f"train_source must be one of {', '.join(TRAIN_SOURCES)}, got {train_source!r}")
    hours = dict(hours or {})
    stray = sorted(set(hours) - set(locales))
    if stray:
        raise ValueError(f"hours given for {', '.join(stray)}, which is not among the locales {locales}")
    out_dir = Path(out_dir)
    archives = release_archives(cv_root, locales)
    summaries = {}
    with FolderLock(out_dir, "data folder").acquire(wait=True):
        for locale in locales:
            options = dict(hours=hours.get(locale), seed=seed, train_source=train_source,
                           progress=progress)
            if archives is not None:
                summaries[locale] = prepare_locale_archives(archives[locale], locale, out_dir,
                                                            workers=workers, **options)
            else:
                summaries[locale] = prepare_locale(Path(_single(cv_root)).resolve(), locale,
                                                   out_dir, **options)
    return {"out_dir": str(out_dir), "locales": summaries}


def _single(cv_root) -> str | os.PathLike:
    return cv_root[0] if isinstance(cv_root, (list, tuple)) else cv_root
