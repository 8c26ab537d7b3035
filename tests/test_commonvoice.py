"""Common Voice import: TSV variants, bad rows, leakage, duration cache, manifests, stage marker."""

from __future__ import annotations

import csv
import io
import json
import os

import numpy as np
import pytest
import soundfile as sf
from cvfake import CURRENT_COLUMNS, OLD_COLUMNS, FakeRelease, make_release

import data_prep.commonvoice as cv
from asr.text import normalize_text
from data_prep.commonvoice import MissingColumnsError, TsvError, TsvReader
from data_prep.manifest import (
    FIELD_TYPES,
    ManifestError,
    format_summary,
    read_manifest,
)
from data_prep.release import prepare_manifests


def prepare(rel: FakeRelease, out, **kwargs) -> dict:
    kwargs.setdefault("progress", False)
    return prepare_manifests(rel.root, [rel.locale], out, **kwargs)["locales"][rel.locale]


def manifest(out, locale: str, split: str) -> list[dict]:
    return read_manifest(out / locale / f"{split}.jsonl")


@pytest.fixture
def count_header_reads(monkeypatch):
    calls = []

    def counting(path):
        calls.append(path)
        return real(path)

    real = cv.audio_info
    monkeypatch.setattr(cv, "audio_info", counting)
    return calls


# -- reading TSVs ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "write_kwargs",
    [
        {},
        {"columns": OLD_COLUMNS},
        {"columns": CURRENT_COLUMNS + ("votes_extra", "comment")},
        {"columns": tuple(reversed(CURRENT_COLUMNS))},
        {"bom": True, "crlf": True},
        {"columns": ("sentence", "path", "client_id"), "bom": True},
    ],
    ids=["current", "old-minimal", "extra-columns", "reordered", "bom-crlf", "minimal-reordered-bom"],
)
def test_header_variants_give_the_same_manifests(tmp_path, write_kwargs):
    reference = make_release(tmp_path / "ref", train=4, dev=2, test=2)
    variant = make_release(tmp_path / "cv", train=4, dev=2, test=2, **write_kwargs)
    prepare(reference, tmp_path / "out_ref")
    summary = prepare(variant, tmp_path / "out")
    assert summary["splits"]["train"]["kept"] == 4  # the first data row is not lost
    for split in ("train", "dev", "test"):
        got, want = manifest(tmp_path / "out", "de", split), manifest(tmp_path / "out_ref", "de", split)
        strip = lambda recs: [{k: v for k, v in r.items() if k != "audio"} for r in recs]  # noqa: E731
        assert strip(got) == strip(want)


def test_quotes_in_sentences_are_plain_text(tmp_path):
    rel = FakeRelease(tmp_path / "cv")
    rel.add_row("train", sentence='He said "hello there')  # an unbalanced quote must not swallow rows
    rel.add_row("train", sentence='"Quoted" start')
    rel.add_rows("dev", 1)
    rel.add_rows("test", 1)
    rel.write()
    prepare(rel, tmp_path / "out")
    texts = [r["text"] for r in manifest(tmp_path / "out", "de", "train")]
    assert texts == ['He said "hello there', '"Quoted" start']


def test_missing_columns_error_names_the_file_and_columns(tmp_path):
    rel = make_release(tmp_path / "cv", columns=("client_id", "path", "up_votes"))
    with pytest.raises(MissingColumnsError) as err:
        prepare(rel, tmp_path / "out")
    assert "sentence" in str(err.value) and str(rel.locale_dir) in str(err.value)
    assert err.value.missing == ["sentence"]


def test_empty_tsv_is_a_clear_error(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_bytes(b"")
    with pytest.raises(TsvError, match="empty file"):
        TsvReader(path)


def test_reader_line_numbers_and_blank_lines(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_bytes(b"\nclient_id\tpath\tsentence\r\n\r\na\tb.mp3\tHallo\r\n")
    assert list(TsvReader(path).rows()) == [(4, {"client_id": "a", "path": "b.mp3", "sentence": "Hallo"})]


# -- bad rows -------------------------------------------------------------------------------

def _zero_frame_wav() -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(0, dtype=np.float32), 16000, format="WAV")
    return buf.getvalue()


def _duplicate(rel: FakeRelease) -> None:
    first = rel.add_row("train", speaker="dup-speaker")
    rel.add_row("train", path=first["path"], clip=None, speaker="dup-speaker")


BAD_ROWS = {
    "undecodable_bytes": lambda rel: rel.add_raw("train", b"spk\tbad.mp3\tGr\xfc\xdfe"
                                                 + b"\t" * (len(CURRENT_COLUMNS) - 3)),
    "wrong_field_count": lambda rel: rel.add_raw("train", b"spk\tx.mp3\tzu wenig"),
    "malformed_row": lambda rel: rel.add_raw("train", b"spk\tx.mp3\tstray\rreturn"
                                             + b"\t" * (len(CURRENT_COLUMNS) - 3)),
    "empty_path": lambda rel: rel.add_row("train", path="", clip=None),
    "path_outside_clips": lambda rel: rel.add_row("train", path="../evil.mp3", clip=None),
    "absolute_path": lambda rel: rel.add_row("train", path=str(rel.clips_dir / "x.mp3"), clip=None),
    "empty_speaker": lambda rel: rel.add_row("train", speaker=""),
    "empty_sentence": lambda rel: rel.add_row("train", sentence="   "),
    "empty_after_normalization": lambda rel: rel.add_row("train", sentence="?! … -"),
    "duplicate_path": _duplicate,
    "missing_clip": lambda rel: rel.add_row("train", clip=None),
    "unreadable_clip": lambda rel: rel.add_row("train", clip=b"this is not an mp3 file" * 20),
    "empty_clip_file": lambda rel: rel.add_row("train", clip=b""),
    "zero_duration": lambda rel: rel.add_row("train", clip=_zero_frame_wav()),
}
EXPECTED_REASON = {"absolute_path": "path_outside_clips", "empty_clip_file": "unreadable_clip"}


@pytest.mark.parametrize("kind", sorted(BAD_ROWS))
def test_each_bad_row_is_skipped_and_counted(tmp_path, kind):
    rel = FakeRelease(tmp_path / "cv")
    rel.add_rows("train", 3, speakers=2)
    BAD_ROWS[kind](rel)
    rel.add_rows("train", 1)  # a good row after the bad one still counts
    rel.add_rows("dev", 1)
    rel.add_rows("test", 1)
    rel.write()
    summary = prepare(rel, tmp_path / "out")
    train = summary["splits"]["train"]
    reason = EXPECTED_REASON.get(kind, kind)
    assert reason in cv.DROP_REASONS
    assert train["dropped"] == {reason: 1}
    assert train["kept"] == 4 + (kind == "duplicate_path")  # the first of the two stays
    assert train["rows"] == train["kept"] + sum(train["dropped"].values())
    assert f"{reason}=1" in format_summary({"out_dir": "", "locales": {"de": summary}})
    assert len(manifest(tmp_path / "out", "de", "train")) == train["kept"]


def test_clip_dir_must_exist(tmp_path):
    rel = make_release(tmp_path / "cv")
    for p in rel.clips_dir.iterdir():
        p.unlink()
    rel.clips_dir.rmdir()
    with pytest.raises(FileNotFoundError, match="clips"):
        prepare(rel, tmp_path / "out")


def test_unknown_locale_and_folder_are_errors(tmp_path):
    rel = make_release(tmp_path / "cv")
    with pytest.raises(ValueError, match="unknown locale"):
        prepare_manifests(rel.root, ["XX"], tmp_path / "out", progress=False)
    with pytest.raises(FileNotFoundError, match="found: de"):
        prepare_manifests(rel.root, ["fr"], tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="train_source"):
        prepare_manifests(rel.root, ["de"], tmp_path / "out", train_source="other", progress=False)


# -- leakage --------------------------------------------------------------------------------

def _held_out_keys(rel: FakeRelease) -> tuple[set, set, set]:
    """Clips, speakers, normalised sentences of dev and test, read independently of the importer."""
    clips, speakers, texts = set(), set(), set()
    for split in ("dev", "test"):
        with open(rel.locale_dir / f"{split}.tsv", encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                clips.add(os.path.splitext(row["path"])[0])
                speakers.add(row["client_id"])
                texts.add(normalize_text(row["sentence"], rel.locale))
    return clips, speakers, texts


def _leaky_release(root) -> FakeRelease:
    rel = FakeRelease(root)
    rel.add_rows("train", 4, speakers=2)
    dev = rel.add_rows("dev", 3, speakers=2)
    test = rel.add_rows("test", 3, speakers=1)
    # validated-only rows: clean ones, and ones that would leak a held-out speaker or sentence
    rel.add_rows("validated", 5, speakers=3, validated=False)
    rel.add_row("validated", speaker=dev[0]["client_id"], validated=False)
    rel.add_row("validated", speaker=test[0]["client_id"], validated=False)
    rel.add_row("validated", speaker="fresh-1", sentence=test[1]["sentence"].upper() + "!!",
                validated=False)
    rel.add_row("validated", speaker="fresh-2", sentence=" " + dev[2]["sentence"].lower(),
                validated=False)
    # train.tsv itself leaking a dev speaker and a test sentence (a broken release)
    rel.add_row("train", speaker=dev[1]["client_id"])
    rel.add_row("train", speaker="fresh-3", sentence=test[2]["sentence"])
    return rel.write()


@pytest.mark.parametrize("train_source", ["validated", "train"])
def test_no_dev_or_test_clip_speaker_or_sentence_reaches_training(tmp_path, train_source):
    rel = _leaky_release(tmp_path / "cv")
    summary = prepare(rel, tmp_path / "out", train_source=train_source)
    clips, speakers, texts = _held_out_keys(rel)
    train = manifest(tmp_path / "out", "de", "train")
    assert train
    for rec in train:
        assert rec["id"] not in clips
        assert rec["speaker"] not in speakers
        assert rec["norm_text"] not in texts
    split = summary["splits"]["train"]
    assert split["rows"] == split["kept"] + sum(split["dropped"].values()) + split["not_selected"]
    dropped = split["dropped"]
    if train_source == "validated":
        # validated.tsv repeats all 6 dev/test rows; the train.tsv leaks are in validated too
        assert dropped == {"dev_test_clip": 6, "dev_test_speaker": 3, "dev_test_sentence": 3}
        assert summary["splits"]["train"]["kept"] == 4 + 5
    else:
        assert dropped == {"dev_test_speaker": 1, "dev_test_sentence": 1}
        assert summary["splits"]["train"]["kept"] == 4


def test_test_row_repeating_a_dev_clip_is_a_duplicate(tmp_path):
    rel = FakeRelease(tmp_path / "cv")
    rel.add_rows("train", 2)
    dev = rel.add_rows("dev", 2)
    rel.add_rows("test", 1)
    rel.add_row("test", path=dev[0]["path"], clip=None)
    summary = prepare(rel.write(), tmp_path / "out")
    assert summary["splits"]["test"]["dropped"] == {"duplicate_path": 1}


# -- durations ------------------------------------------------------------------------------

def test_durations_are_read_once_and_cached(tmp_path, count_header_reads):
    rel = make_release(tmp_path / "cv", train=5, dev=2, test=2, seconds=[0.2, 0.5])
    before = sorted((p, p.stat().st_mtime_ns) for p in rel.root.rglob("*"))
    prepare(rel, tmp_path / "out", hours={"de": 0.0003})
    assert len(count_header_reads) == 9
    assert (tmp_path / "out" / "de" / "durations.tsv").exists()
    count_header_reads.clear()
    prepare(rel, tmp_path / "out", hours={"de": 0.0002})  # new parameters: redone, from the cache
    assert count_header_reads == []
    # a clip rewritten in place (new size) is read again; nothing else is
    cv_clip = rel.clips_dir / rel.rows["train"][0]["path"]
    cv_clip.write_bytes(open(rel.clips_dir / rel.rows["train"][1]["path"], "rb").read())
    prepare(rel, tmp_path / "out", hours={"de": 0.0001})
    assert count_header_reads == [cv_clip]
    # and the release itself was never written to (only the one clip this test replaced)
    after = sorted((p, p.stat().st_mtime_ns) for p in rel.root.rglob("*"))
    assert [p for p, _ in before] == [p for p, _ in after]
    assert {p for (p, a), (_, b) in zip(before, after, strict=True) if a != b} == {cv_clip}


def test_release_clip_durations_tsv_spares_the_headers(tmp_path, count_header_reads):
    rel = make_release(tmp_path / "cv", train=4, seconds=[0.25, 0.5], clip_durations=True)
    prepare(rel, tmp_path / "out")
    assert count_header_reads == []
    assert [r["duration"] for r in manifest(tmp_path / "out", "de", "train")] == [0.25, 0.5, 0.25, 0.5]
    assert not (tmp_path / "out" / "de" / "durations.tsv").exists()


# -- manifests and the stage ----------------------------------------------------------------

def test_manifest_records_have_every_field(tmp_path):
    rel = make_release(tmp_path / "cv", locale="zh-CN", train=3, dev=1, test=1, seconds=0.4)
    prepare(rel, tmp_path / "out")
    for split, n in (("train", 3), ("dev", 1), ("test", 1)):
        recs = manifest(tmp_path / "out", "zh-CN", split)
        assert len(recs) == n
        for rec, row in zip(recs, rel.rows[split], strict=True):
            assert set(rec) == set(FIELD_TYPES)
            assert rec["id"] == row["path"].removesuffix(".mp3")
            assert os.path.isabs(rec["audio"]) and os.path.exists(rec["audio"])
            assert rec["duration"] == pytest.approx(0.4, abs=1e-3)
            assert rec["locale"] == "zh-CN" and rec["speaker"] == row["client_id"]
            assert rec["text"] == row["sentence"]
            assert rec["norm_text"] == normalize_text(row["sentence"], "zh-CN")
    summary = json.loads((tmp_path / "out" / "zh-CN" / "summary.json").read_text())
    assert summary["splits"]["dev"]["kept"] == 1


def test_hours_subset_is_reproducible_and_rerun_is_skipped(tmp_path, count_header_reads):
    rel = make_release(tmp_path / "cv", train=12, speakers=(4, 1, 1), seconds=[0.3, 0.6, 0.9])
    first = prepare(rel, tmp_path / "a", hours={"de": 0.001}, seed=3)
    prepare(rel, tmp_path / "b", hours={"de": 0.001}, seed=3)
    a = manifest(tmp_path / "a", "de", "train")
    assert a == manifest(tmp_path / "b", "de", "train")
    assert abs(sum(r["duration"] for r in a) - 3.6) <= 0.9
    assert first["splits"]["train"]["not_selected"] == 12 - len(a)

    marker = tmp_path / "a" / "de" / ".manifests.done"
    stamp = (tmp_path / "a" / "de" / "train.jsonl").stat().st_mtime_ns
    count_header_reads.clear()
    again = prepare(rel, tmp_path / "a", hours={"de": 0.001}, seed=3)
    assert again["reused"] and (tmp_path / "a" / "de" / "train.jsonl").stat().st_mtime_ns == stamp
    assert json.loads(marker.read_text())["seed"] == 3
    redone = prepare(rel, tmp_path / "a", hours={"de": 0.0015}, seed=3)
    assert "reused" not in redone and json.loads(marker.read_text())["hours"] == 0.0015
    assert {r["id"] for r in a} <= {r["id"] for r in manifest(tmp_path / "a", "de", "train")}
    assert count_header_reads == []


def test_more_hours_than_available_warns_and_takes_all(tmp_path):
    rel = make_release(tmp_path / "cv", train=3)
    with pytest.warns(UserWarning, match="de: asked for"):
        result = prepare_manifests(rel.root, ["de"], tmp_path / "out", hours={"de": 5.0},
                                   progress=False)
    assert result["locales"]["de"]["splits"]["train"]["kept"] == 3
    assert "all of it taken" in format_summary(result)
    with pytest.raises(ValueError, match="fr"):
        prepare_manifests(rel.root, ["de"], tmp_path / "out", hours={"fr": 1.0})


def test_format_summary_table(tmp_path):
    rel = make_release(tmp_path / "cv", train=4)
    rel.add_row("train", clip=None)
    rel.write()
    result = prepare_manifests(rel.root, ["de"], tmp_path / "out", hours={"de": 0.0002},
                               progress=False)
    table = format_summary(result)
    lines = table.splitlines()
    assert lines[0].split() == ["locale", "split", "source", "rows", "kept", "hours", "speakers", "dropped"]
    assert lines[2].split()[:5] == ["de", "train", "train.tsv", "5", str(result["locales"]["de"]["splits"]["train"]["kept"])]
    assert "de/train dropped: missing_clip=1" in table and "requested" in table


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not valid JSON"),
        ('["a"]', "JSON object"),
        ('{"id": "x"}', "missing field"),
        ('{"id": "x", "audio": "a", "duration": "1", "locale": "de", "speaker": "s", '
         '"text": "t", "norm_text": "t"}', "duration"),
        ('{"id": "x", "audio": "a", "duration": 0, "locale": "de", "speaker": "s", '
         '"text": "t", "norm_text": "t"}', "positive"),
    ],
)
def test_read_manifest_names_file_and_line(tmp_path, line, message):
    good = ('{"id": "x", "audio": "/a.mp3", "duration": 1.5, "locale": "de", "speaker": "s", '
            '"text": "T", "norm_text": "t"}')
    path = tmp_path / "m.jsonl"
    path.write_text(good + "\n\n" + line + "\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=message) as err:
        read_manifest(path)
    assert f"{path}:3:" in str(err.value)
    path.write_text(good + "\n", encoding="utf-8")
    assert read_manifest(path)[0]["duration"] == 1.5
