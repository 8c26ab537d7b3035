"""Common Voice releases as downloaded: `asr prepare --cv-root <archive>.tar.gz ...`.

The archive path must give the folder path's manifests, summaries and features exactly, in
either member order, with and without an hours subset, for delta releases in several
archives; hostile members are skipped and counted, never written anywhere.
"""

from __future__ import annotations

import io
import json
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from cvfake import FakeRelease

from asr.cli import main
from asr.feature_cache import FeatureCache, FeatureCacheError, build_cache
from data_prep import cv_archive
from data_prep.release import prepare_manifests

VERSION = "cv-corpus-1.0-2024-01-01"
SPLITS = ("train", "dev", "test")


def release(root: Path, locale: str = "de") -> FakeRelease:
    """Good rows plus rows every drop reason of the clip checks applies to."""
    rel = FakeRelease(root, locale)
    rel.add_rows("train", 10, speakers=4, seconds=[0.4, 0.7, 1.0])
    rel.add_rows("dev", 3, speakers=1)
    rel.add_rows("test", 3, speakers=1)
    rel.add_row("train", speaker="x1", clip=None)  # missing_clip
    rel.add_row("train", speaker="x2", clip=b"\x00\x01 not audio at all" * 40)  # unreadable_clip
    rel.add_row("train", speaker="x3", sentence="   ")  # empty_sentence
    rel.add_row("invalidated", validated=False)
    rel.add_row("other", validated=False)
    return rel.write()


def prepare(tmp_path: Path, cv_root: list[Path], out: str, hours=None, train_source="train",
            workers=1) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepare_manifests(cv_root, ["de"], tmp_path / out, hours={"de": hours} if hours else None,
                          train_source=train_source, progress=False, workers=workers)
    if not cv_archive.is_archive(cv_root[0]):  # a folder's features come from prepare_data
        for split in SPLITS:
            build_cache(tmp_path / out / "de" / f"{split}.jsonl", tmp_path / out / "de" / "feats" / split,
                        progress=False)
    return tmp_path / out / "de"


def manifest(data: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (data / f"{split}.jsonl").read_text().splitlines()]


def assert_same_outputs(folder: Path, archive: Path) -> None:
    """Manifests equal but for where the audio is; the same features, statistics and skips."""
    for split in SPLITS:
        a, b = manifest(folder, split), manifest(archive, split)
        assert [r["id"] for r in a] == [r["id"] for r in b] and a, split
        for ra, rb in zip(a, b, strict=True):
            assert {k: v for k, v in ra.items() if k != "audio"} == {k: v for k, v in rb.items() if k != "audio"}
            assert rb["audio"].endswith(f".tar.gz#{VERSION}/de/clips/{Path(ra['audio']).name}")
        ca, cb = (FeatureCache.open(d / "feats" / split) for d in (folder, archive))
        assert sorted(ca.ids) == sorted(cb.ids)
        assert all(np.array_equal(ca[i], cb[i]) for i in ca.ids)
        np.testing.assert_allclose(cb.stats.mean, ca.stats.mean, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(cb.stats.std, ca.stats.std, rtol=1e-6, atol=1e-6)
        assert ca.summary["skipped_ids"] == cb.summary["skipped_ids"]
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (folder, archive))
    assert sa["splits"] == sb["splits"]


@pytest.mark.parametrize(("tsvs_first", "hours", "durations_tsv"), [
    (True, None, False),  # Mozilla's order: every feature straight into the caches, no spool
    (False, 0.0005, False),  # clips before the TSVs, an hours subset: spooled until the end
    (True, 0.0005, True),  # clip_durations.tsv trusted as from a folder
])
def test_archive_gives_the_folders_manifests_and_features(tmp_path, tsvs_first, hours, durations_tsv):
    rel = release(tmp_path / "cv")
    if durations_tsv:
        rel.write(clip_durations=True)
    archive = rel.write_archive(tmp_path / f"{VERSION}-de.tar.gz", version=VERSION, tsvs_first=tsvs_first)
    folder = prepare(tmp_path, [tmp_path / "cv"], "from_folder", hours)
    packed = prepare(tmp_path, [archive], "from_archive", hours, workers=2)
    assert_same_outputs(folder, packed)
    summary = json.loads((packed / "summary.json").read_text())
    dropped = summary["splits"]["train"]["dropped"]
    assert dropped == {"missing_clip": 1, "empty_sentence": 1, "unreadable_clip": 1}
    members = summary["archive"]["members"]
    assert members["clips"] == len(list(rel.clips_dir.iterdir()))
    # after the TSVs, clips no usable row names (invalidated, other, the empty sentence's) pass
    # undecoded
    assert members.get("clips_unused", 0) == (3 if tsvs_first else 0)
    assert (summary["archive"]["spool_peak_bytes"] == 0) == (tsvs_first and hours is None)
    assert not (packed / "release" / "clips.spool").exists()


def test_delta_releases_join_their_rows(tmp_path):
    """A release plus a delta release (new validated rows and their clips only), read from two
    archives, equals one folder holding both."""
    rel = release(tmp_path / "cv")
    full = rel.write_archive(tmp_path / f"{VERSION}-de.tar.gz", version=VERSION)
    delta = FakeRelease(tmp_path / "delta", "de", _count=1000)
    rows = delta.add_rows("validated", 4, speakers=2, validated=False)
    delta.write()
    delta_version = "cv-corpus-2.0-delta-2024-06-01"
    delta_archive = delta.write_archive(tmp_path / f"{delta_version}-de.tar.gz", version=delta_version,
                                        tsvs=["validated.tsv"])
    for row in rows:  # the folder a person gets by extracting both archives and joining the TSVs
        (rel.clips_dir / row["path"]).write_bytes((delta.clips_dir / row["path"]).read_bytes())
    joined = delta.locale_dir.joinpath("validated.tsv").read_bytes().split(b"\n", 1)[1]
    with open(rel.locale_dir / "validated.tsv", "ab") as f:
        f.write(joined)
    folder = prepare(tmp_path, [tmp_path / "cv"], "from_folder", train_source="validated")
    packed = prepare(tmp_path, [full, delta_archive], "from_archives", train_source="validated")
    for split in SPLITS:
        assert [r["id"] for r in manifest(folder, split)] == [r["id"] for r in manifest(packed, split)]
    assert {r["path"][:-4] for r in rows} <= {r["id"] for r in manifest(packed, "train")}
    assert len(FeatureCache.open(packed / "feats" / "train")) == len(manifest(packed, "train"))


def hostile_archive(tmp_path: Path) -> tuple[Path, FakeRelease]:
    rel = release(tmp_path / "cv")
    for name in ("link.mp3", "hard.mp3", "fifo.mp3", "device.mp3", "big.mp3"):
        rel.add_row("train", speaker=f"h-{name}", path=name, clip=None)
    rel.write()
    archive = rel.write_archive(tmp_path / f"{VERSION}-de.tar.gz", version=VERSION)
    clips = f"{VERSION}/de/clips"
    good = next(iter(sorted(rel.clips_dir.iterdir())))
    big = good.read_bytes() * 40
    extra = [(tarfile.REGTYPE, "../escaped.mp3", b"x" * 100, ""),
             (tarfile.REGTYPE, str(tmp_path / "absolute.mp3"), b"x" * 100, ""),
             (tarfile.REGTYPE, f"{clips}/../../../../escaped2.mp3", b"x" * 100, ""),
             (tarfile.SYMTYPE, f"{clips}/link.mp3", b"", "/etc/passwd"),
             (tarfile.LNKTYPE, f"{clips}/hard.mp3", b"", f"{clips}/{good.name}"),
             (tarfile.FIFOTYPE, f"{clips}/fifo.mp3", b"", ""),
             (tarfile.CHRTYPE, f"{clips}/device.mp3", b"", ""),
             (tarfile.REGTYPE, f"{clips}/big.mp3", big, "")]
    out = tmp_path / "hostile" / archive.name
    out.parent.mkdir()
    with tarfile.open(archive) as src, tarfile.open(out, "w:gz") as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m) if m.isreg() else None)
        for kind, name, data, target in extra:
            info = tarfile.TarInfo(name)
            info.type, info.size, info.linkname = kind, len(data), target
            dst.addfile(info, io.BytesIO(data) if data else None)
    return out, rel


def test_hostile_members_are_skipped_and_counted(tmp_path, monkeypatch):
    monkeypatch.setattr(cv_archive, "MAX_CLIP_BYTES", 50_000)  # big.mp3 is 40 clips of 2.4 kB
    archive, rel = hostile_archive(tmp_path)
    data = prepare(tmp_path, [archive], "out")
    summary = json.loads((data / "summary.json").read_text())
    members = summary["archive"]["members"]
    assert members["skipped_unsafe_name"] == 3
    assert members["skipped_link"] == 2 and members["skipped_special_file"] == 2
    assert members["skipped_oversized"] == 1
    assert summary["splits"]["train"]["dropped"]["missing_clip"] == 1 + 5  # x1, and the 5 above
    assert summary["splits"]["train"]["kept"] == 10
    written = {p.name for p in tmp_path.rglob("*")}
    assert not {"escaped.mp3", "escaped2.mp3", "absolute.mp3", "passwd"} & written
    assert not list(data.rglob("*.mp3"))  # no clip ever lands on disk


def test_truncated_archive_is_one_clear_error(tmp_path, capsys):
    archive = release(tmp_path / "cv").write_archive(tmp_path / f"{VERSION}-de.tar.gz", version=VERSION)
    archive.write_bytes(archive.read_bytes()[:len(archive.read_bytes()) // 2])
    code = main(["prepare", "--cv-root", str(archive), "--locales", "de", "--out", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert code == 2 and str(archive) in err and "truncated or corrupt archive" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(("name", "extra", "words"), [
    ("cv-corpus-1.0-xx.tar.gz", [], "cannot tell its locale from the name"),
    (f"{VERSION}-de.tar.gz", ["--no-features"], "--no-features applies to release folders only"),
    (f"{VERSION}-fr.tar.gz", [], "cannot tell its locale"),
])
def test_archive_arguments_are_checked(tmp_path, capsys, name, extra, words):
    archive = release(tmp_path / "cv").write_archive(tmp_path / name, version=VERSION)
    code = main(["prepare", "--cv-root", str(archive), "--locales", "de", "--out",
                 str(tmp_path / "d"), *extra])
    assert code == 2 and words in capsys.readouterr().err


def test_wrong_locale_inside_the_archive(tmp_path, capsys):
    rel = release(tmp_path / "cv", "fr")
    archive = rel.write_archive(tmp_path / f"{VERSION}-de.tar.gz", version=VERSION)  # misnamed
    code = main(["prepare", "--cv-root", str(archive), "--locales", "de", "--out", str(tmp_path / "d")])
    assert code == 2 and "is this the de archive" in capsys.readouterr().err


def test_rerun_reuses_and_a_damaged_cache_is_redone(tmp_path):
    archive = release(tmp_path / "cv").write_archive(tmp_path / f"{VERSION}-de.tar.gz", version=VERSION)
    data = prepare(tmp_path, [archive], "out")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = prepare_manifests([archive], ["de"], tmp_path / "out", progress=False)
    assert again["locales"]["de"].get("reused")
    shard = next((data / "feats" / "dev").glob("shard-*.f16"))
    shard.write_bytes(b"\x00" * shard.stat().st_size)
    with pytest.raises(FeatureCacheError, match="came from the archives"):
        build_cache(data / "dev.jsonl", data / "feats" / "dev", verify=True, progress=False)
    redone = prepare_manifests([archive], ["de"], tmp_path / "out", progress=False)
    assert not redone["locales"]["de"].get("reused")
    assert not FeatureCache.open(data / "feats" / "dev").verify()
