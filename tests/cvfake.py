"""A tiny fake Common Voice release, written in seconds, for tests.

Same layout as a real release (`<root>/<locale>/clips/*.mp3`, the six TSVs with a header
row, optionally `clip_durations.tsv`), with short sine or noise MP3 clips. Typical use:

    rel = FakeRelease(tmp_path / "cv", "de")
    rel.add_rows("train", 6, speakers=3)
    rel.add_rows("dev", 2, speakers=1)
    rel.add_rows("test", 2, speakers=1)
    rel.add_row("train", sentence="   ")                  # a bad row
    rel.add_raw("train", b"\\xff\\xfe not utf-8\\n")         # a line as raw bytes
    rel.write()                                            # (re)writes every TSV
    rel.write_archive(tmp_path / "cv-corpus-1.0-de.tar.gz")  # as downloaded from Mozilla

or `make_release(root, "de", train=6, dev=2, test=2)` for the common case.
"""

from __future__ import annotations

import hashlib
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

CURRENT_COLUMNS = (
    "client_id", "path", "sentence_id", "sentence", "sentence_domain", "up_votes",
    "down_votes", "age", "gender", "accents", "variant", "locale", "segment",
)
OLD_COLUMNS = ("client_id", "path", "sentence")  # the minimum the importer accepts
TSV_NAMES = ("train", "dev", "test", "validated", "invalidated", "other")
CLIP_SAMPLE_RATE = 48000  # Hz, as Common Voice's MP3s

# words without digits or punctuation, so every sentence survives normalisation unchanged
_WORDS = {
    "zh-CN": list("天地人山水火木金土日月星风云雨雪花草鸟鱼"),
}
_EUROPEAN_WORDS = ("alpha bravo delta echo golf hotel india kilo lima mike "
                   "oscar papa quebec romeo sierra tango victor whiskey yankee zulu").split()


def sentence_for(locale: str, n: int) -> str:
    """A distinct sentence for each n (the digits of n in base 20, spelt as words)."""
    words = _WORDS.get(locale, _EUROPEAN_WORDS)
    parts = []
    while True:
        n, d = divmod(n, len(words))
        parts.append(words[d])
        if n == 0:
            break
    sep = "" if locale == "zh-CN" else " "
    text = sep.join(reversed(parts)) + sep + words[len(parts) % len(words)]
    return text[:1].upper() + text[1:] + ("。" if locale == "zh-CN" else ".")


def write_clip(path: Path, seconds: float = 0.3, kind: str = "sine", seed: int = 0) -> None:
    """A short MP3 at 48 kHz: a sine tone (pitch from `seed`) or white noise."""
    n = int(round(seconds * CLIP_SAMPLE_RATE))
    if kind == "noise":
        x = np.random.default_rng(seed).uniform(-0.1, 0.1, n)
    else:
        x = 0.1 * np.sin(2 * np.pi * (220 + 20 * (seed % 20)) * np.arange(n) / CLIP_SAMPLE_RATE)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.astype(np.float32), CLIP_SAMPLE_RATE, format="MP3")


@dataclass
class FakeRelease:
    """A fake release of one locale under `root`; rows are kept in memory until `write()`."""

    root: Path
    locale: str = "de"
    columns: tuple[str, ...] = CURRENT_COLUMNS
    extra_columns: tuple[str, ...] = ()
    rows: dict[str, list[dict | bytes]] = field(default_factory=lambda: {n: [] for n in TSV_NAMES})
    clip_seconds: dict[str, float] = field(default_factory=dict)  # clip name -> seconds
    _count: int = 0

    def __post_init__(self):
        self.root = Path(self.root)

    @property
    def locale_dir(self) -> Path:
        return self.root / self.locale

    @property
    def clips_dir(self) -> Path:
        return self.locale_dir / "clips"

    def add_row(
        self,
        split: str,
        *,
        speaker: str | None = None,
        sentence: str | None = None,
        path: str | None = None,
        seconds: float = 0.3,
        clip: str | bytes | None = "sine",
        validated: bool | None = None,
        **extra: str,
    ) -> dict:
        """Append one row to `split`'s TSV and write its clip.

        `clip`: "sine" or "noise" for audio, raw bytes for a corrupt file, None for no file.
        Rows of train/dev/test are also listed in validated.tsv, as in real releases, unless
        `validated=False`. Extra keyword arguments set other columns.
        """
        n = self._count
        self._count += 1
        path = path if path is not None else f"common_voice_{self.locale}_{n:06d}.mp3"
        row = {c: "" for c in self.columns + self.extra_columns}
        row.update(
            client_id=speaker if speaker is not None else _speaker_id(split, 0),
            path=path,
            sentence_id=hashlib.sha1(str(n).encode()).hexdigest(),
            sentence=sentence if sentence is not None else sentence_for(self.locale, n),
            sentence_domain="", up_votes="2", down_votes="0", locale=self.locale,
        )
        row.update(extra)
        self.rows[split].append(row)
        if validated if validated is not None else split in ("train", "dev", "test"):
            self.rows["validated"].append(row)
        target = self.clips_dir / path
        if clip is not None and target.parent == self.clips_dir and path:
            if isinstance(clip, bytes):
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(clip)
            else:
                write_clip(target, seconds, kind=clip, seed=n)
                self.clip_seconds[path] = seconds
        return row

    def add_rows(self, split: str, n: int, speakers: int = 1, seconds: float | list[float] = 0.3,
                 **kwargs) -> list[dict]:
        """`n` good rows spread round-robin over `speakers` speakers of their own."""
        rows = []
        for i in range(n):
            secs = seconds[i % len(seconds)] if isinstance(seconds, list) else seconds
            rows.append(self.add_row(split, speaker=_speaker_id(split, i % speakers),
                                     seconds=secs, **kwargs))
        return rows

    def add_raw(self, split: str, line: bytes) -> None:
        """Append a raw line (bytes, written as is) to `split`'s TSV."""
        self.rows[split].append(line)

    def write(self, *, columns: tuple[str, ...] | None = None, bom: bool = False,
              crlf: bool = False, clip_durations: bool = False) -> FakeRelease:
        """(Re)write all six TSVs, with `columns` in that order (default: self.columns plus
        extras); optionally a UTF-8 BOM, CRLF line ends and a clip_durations.tsv."""
        columns = columns or self.columns + self.extra_columns
        eol = b"\r\n" if crlf else b"\n"
        self.clips_dir.mkdir(parents=True, exist_ok=True)
        for name in TSV_NAMES:
            lines = [("\t".join(columns)).encode()]
            for row in self.rows[name]:
                if isinstance(row, bytes):
                    lines.append(row.rstrip(b"\r\n"))
                else:
                    lines.append("\t".join(row.get(c, "") for c in columns).encode())
            data = eol.join(lines) + eol
            (self.locale_dir / f"{name}.tsv").write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
        if clip_durations:
            body = "".join(f"{clip}\t{round(s * 1000)}\n" for clip, s in sorted(self.clip_seconds.items()))
            (self.locale_dir / "clip_durations.tsv").write_text("clip\tduration[ms]\n" + body)
        return self


    def write_archive(self, path: Path, *, version: str = "cv-corpus-1.0-2024-01-01",
                      tsvs_first: bool = True, clips: list[str] | None = None,
                      tsvs: list[str] | None = None) -> Path:
        """Pack this locale's written files into a .tar.gz as Mozilla ships it: top folder
        `<version>/<locale>/`, the TSVs ahead of the clips (Mozilla's order) or after them.
        `clips` and `tsvs` (file names) choose what goes in, for delta releases."""
        top = f"{version}/{self.locale}"
        tsv_files = sorted(p for p in self.locale_dir.glob("*.tsv") if tsvs is None or p.name in tsvs)
        clip_files = sorted(p for p in self.clips_dir.iterdir() if clips is None or p.name in clips)
        with tarfile.open(path, "w:gz") as tar:
            for group in ((tsv_files, clip_files) if tsvs_first else (clip_files, tsv_files)):
                for f in group:
                    tar.add(f, arcname=f"{top}/{f.relative_to(self.locale_dir).as_posix()}")
        return path


def _speaker_id(split: str, i: int) -> str:
    # hex like Common Voice's client ids, distinct per split so splits are speaker-disjoint
    return hashlib.sha256(f"{split}-{i}".encode()).hexdigest()[:32]


def make_release(root: Path, locale: str = "de", *, train: int = 6, dev: int = 2, test: int = 2,
                 speakers: tuple[int, int, int] = (3, 1, 1), seconds: float | list[float] = 0.3,
                 **write_kwargs) -> FakeRelease:
    """A release with good rows only: `train`/`dev`/`test` rows over `speakers` per split."""
    rel = FakeRelease(Path(root), locale)
    for split, n, spk in zip(("train", "dev", "test"), (train, dev, test), speakers, strict=True):
        rel.add_rows(split, n, speakers=spk, seconds=seconds)
    rel.add_row("invalidated", validated=False)
    rel.add_row("other", validated=False)
    return rel.write(**write_kwargs)
