"""Phone and video containers through PyAV: decoding, lengths, streaming, errors, transcription.

Every fixture is written here by PyAV's own encoders (tests/avfake.py): AAC in m4a, mp4 and
mov, Opus in webm and mka, WMA, a bare AAC stream and AIFF.
"""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
from avfake import tone, write_container, write_video_only

from asr.audio import SAMPLE_RATE, AudioBytes, AudioError, audio_info, is_audio_file, load_audio
from asr.audio_io import AUDIO_EXTENSIONS, PYAV, SOUNDFILE, decoder_order
from asr.cli import main
from asr.segment import stream_audio
from asr.transcribe import collect_audio_files

SECONDS = 2.0
# (extension, sample rate, channels): the rates phones and browsers record at
CASES = [("m4a", 44100, 1), ("mp4", 48000, 2), ("mov", 22050, 1), ("webm", 48000, 2),
         ("mka", 16000, 1), ("wma", 44100, 2), ("aac", 16000, 1), ("aiff", 8000, 1)]
CODEC_SLACK_SECONDS = 0.13  # AAC priming and last-frame padding: 2048 samples, 0.128 s at 16 kHz


def peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * SAMPLE_RATE / len(x))


@pytest.fixture(scope="module")
def containers(tmp_path_factory):
    d = tmp_path_factory.mktemp("containers")
    return {ext: write_container(d / f"tone.{ext}", ext, tone(SECONDS, sr, ch), sr)
            for ext, sr, ch in CASES}


@pytest.mark.parametrize("ext", [c[0] for c in CASES])
def test_container_decodes_to_16khz_mono(containers, ext):
    path = containers[ext]
    seconds, rate = audio_info(path)
    assert rate in (dict((c[0], c[1]) for c in CASES)[ext], 48000)  # Opus decodes at 48 kHz
    assert seconds == pytest.approx(SECONDS, abs=CODEC_SLACK_SECONDS)
    x = load_audio(path)
    assert x.dtype == np.float32 and x.ndim == 1 and np.all(np.isfinite(x))
    assert len(x) / SAMPLE_RATE == pytest.approx(SECONDS, abs=CODEC_SLACK_SECONDS)
    assert peak_hz(x) == pytest.approx(440, abs=3)
    assert 0.2 < np.abs(x).max() < 0.45
    streamed = np.concatenate(list(stream_audio(path, block_seconds=0.5)))
    assert abs(len(streamed) - len(x)) <= 2
    assert np.abs(streamed[:len(x)] - x[:len(streamed)]).max() < 1e-3


def test_formats_table_sends_phone_formats_to_pyav():
    for ext in ("m4a", "mp4", "mov", "webm", "mka", "wma", "aac"):
        assert AUDIO_EXTENSIONS[f".{ext}"] == PYAV and is_audio_file(f"x.{ext.upper()}")
    for ext in ("wav", "flac", "mp3", "ogg", "aiff"):  # libsndfile measured faster on these
        assert AUDIO_EXTENSIONS[f".{ext}"] == SOUNDFILE
    assert decoder_order("x.unknown") == (SOUNDFILE, PYAV) and not is_audio_file("notes.txt")


def test_misnamed_file_is_decoded_by_the_other_decoder(containers, tmp_path):
    for name in ("memo.wav", "memo.mp3", "memo"):
        (tmp_path / name).write_bytes(containers["m4a"].read_bytes())
        assert len(load_audio(tmp_path / name)) == len(load_audio(containers["m4a"]))


def test_audio_held_in_memory_decodes_like_the_file(containers):
    for ext in ("webm", "m4a"):
        clip = AudioBytes(f"archive.tar.gz:clips/x.{ext}", containers[ext].read_bytes())
        assert np.array_equal(load_audio(clip), load_audio(containers[ext]))
        assert audio_info(clip) == audio_info(containers[ext])
    with pytest.raises(AudioError, match=r"^archive.tar.gz:clips/y.m4a: empty file"):
        load_audio(AudioBytes("archive.tar.gz:clips/y.m4a", b""))


def damaged(containers, tmp_path, ext: str, how: str):
    data = containers[ext].read_bytes()
    cut = {"truncated": data[:len(data) // 2],
           "garbage": np.random.default_rng(1).bytes(3000),
           "text": b"this is a shopping list, not a voice memo\n" * 10,
           "empty": b""}[how]
    path = tmp_path / f"{how}.{ext}"
    path.write_bytes(cut)
    return path


@pytest.mark.parametrize(("ext", "how", "problem"), [
    ("m4a", "truncated", "not a readable audio file"),  # moov at the end: nothing to read
    ("webm", "truncated", "truncated or damaged: the header declares 2.0"),
    ("mka", "truncated", "truncated or damaged"),
    ("m4a", "garbage", "not a readable audio file: unknown format, or corrupt or truncated data"),
    ("webm", "garbage", "not a readable audio file"),
    ("m4a", "text", "a text file, not audio"),
    ("mp4", "empty", "empty file (0 bytes)"),
])
def test_damaged_container_names_its_problem(containers, tmp_path, ext, how, problem):
    path = damaged(containers, tmp_path, ext, how)
    for read in (load_audio, lambda p: list(stream_audio(p))):
        with pytest.raises(AudioError) as err:
            read(path)
        assert err.value.path == str(path) and problem in err.value.reason, err.value.reason


def test_video_without_sound_is_named(tmp_path):
    path = write_video_only(tmp_path / "silent_film.mp4")
    with pytest.raises(AudioError, match="no audio track in the file"):
        load_audio(path)


def test_sound_of_a_video_is_read(tmp_path):
    path = write_container(tmp_path / "clip.mp4", "mp4", tone(SECONDS, 48000), 48000, video=True)
    assert audio_info(path)[0] == pytest.approx(SECONDS, abs=CODEC_SLACK_SECONDS)
    assert peak_hz(load_audio(path)) == pytest.approx(440, abs=3)


def test_too_long_for_one_utterance_is_refused_from_the_header(containers):
    with pytest.raises(AudioError, match="over the 1 s one utterance may last"):
        load_audio(containers["webm"], max_seconds=1.0)
    with pytest.raises(AudioError, match="over the 1 s one utterance may last"):
        load_audio(containers["aac"], max_seconds=1.0)  # no declared length: caught as it decodes


def test_long_container_streams_in_bounded_memory(tmp_path):
    """Ten minutes of 48 kHz Opus stream in blocks: the decoder's peak allocation stays a few
    blocks, far below the 38 MB the whole waveform takes at 16 kHz."""
    path = tmp_path / "lecture.mka"
    t = np.arange(60 * 8000) / 8000
    minute = (0.2 * np.sin(2 * np.pi * 300 * t) * ((t % 1.0) < 0.5)).astype(np.float32)[:, None]
    write_container(path, "mka", np.tile(minute, (10, 1)), 8000)
    tracemalloc.start()
    try:
        total = 0
        for block in stream_audio(path):
            assert len(block) <= 10 * SAMPLE_RATE + 100
            total += len(block)
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total / SAMPLE_RATE == pytest.approx(600, abs=0.1)
    assert peak_bytes < 8 * 2**20, f"peak {peak_bytes / 2**20:.1f} MB"


def test_folders_are_walked_for_every_container(containers, tmp_path):
    for ext in ("m4a", "webm", "wma"):
        (tmp_path / f"a.{ext}").write_bytes(containers[ext].read_bytes())
    (tmp_path / "readme.txt").write_text("not audio")
    assert sorted(p.name for p, _ in collect_audio_files([tmp_path])) == ["a.m4a", "a.webm", "a.wma"]


def test_transcribe_handles_m4a_mp4_and_webm(tiny_run, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_container(inputs / "memo.m4a", "m4a", tone(1.5, 44100), 44100)
    write_container(inputs / "video.mp4", "mp4", tone(2.0, 48000, 2), 48000, video=True)
    write_container(inputs / "call.webm", "webm", tone(2.5, 48000), 48000)
    out = tmp_path / "out"
    assert main(["transcribe", "--model", str(tiny_run), str(inputs), "--lang", "de",
                 "--format", "json", "--out", str(out), "--no-progress"]) == 0
    for stem, seconds in (("memo", 1.5), ("video", 2.0), ("call", 2.5)):
        d = json.loads((out / f"{stem}.json").read_text())
        assert d["language"] == "de" and "text" in d
        assert d["duration_seconds"] == pytest.approx(seconds, abs=CODEC_SLACK_SECONDS)


def test_api_transcribes_a_voice_memo(tiny_run, tmp_path):
    from asr import load_model

    path = write_container(tmp_path / "memo.m4a", "m4a", tone(1.0, 44100), 44100)
    t = load_model(tiny_run).transcribe(path, lang="zh-CN")
    assert t.language == "zh-CN" and t.duration_seconds == pytest.approx(1.0, abs=CODEC_SLACK_SECONDS)
