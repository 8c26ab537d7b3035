"""Per-language CTC tokenizers: text units ↔ ids, with id 0 reserved for the CTC blank.

Every tokenizer, whatever its kind, follows one id convention shared with the model heads:
id 0 is the CTC blank (piece "<blank>", never produced by `encode`), id 1 is "<unk>", ids
2..V-1 are units. Kinds:

  unigram / bpe  sentencepiece subword model trained in memory (default for spaced languages);
  char           one unit per character seen in training (default for unspaced languages such
                 as zh-CN; in spaced text the space is a unit too, so words survive the round
                 trip);
  pinyin         a romanisation (asr/languages.py `Language.romanisation`; zh-CN only): one
                 unit per toned syllable (pypinyin TONE3, neutral tone 5), so acoustic
                 transfer can be measured apart from character coverage. Latin letters and
                 digits become one unit per character.
Which kinds a locale may use, and its default, are the language table's facts.

Serialised form (`to_bytes`, `save`): a self-describing byte string, never a pickle —

    b"polyglot-asr tokenizer\\n" + one JSON header line + b"\\n" + payload

The header holds format version, locale, kind and vocab size (plus the piece list for char
and pinyin); the payload is the sentencepiece ModelProto for unigram/bpe and empty
otherwise. It rides inside model.safetensors as a uint8 tensor and on disk as
`data/<locale>/tokenizer.model`.
"""

from __future__ import annotations

import io
import json
import os
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence

from asr.fileio import refuse_special, write_bytes
from asr.languages import ALPHABETIC_UNITS, SUBWORD_UNITS, language, romanised_kinds

# Id 0 of every vocabulary (token id = index into a CTC head's output, unitless) is the CTC
# blank: the model heads, the loss and every decoder read it from here.
BLANK_ID = 0
UNK_ID = 1  # token id of units unseen in training
BLANK_PIECE = "<blank>"
UNK_PIECE = "<unk>"
KINDS = (*ALPHABETIC_UNITS, *romanised_kinds())  # unigram, bpe, char, pinyin
MAGIC = b"polyglot-asr tokenizer\n"
FORMAT_VERSION = 1

__all__ = ["BLANK_ID", "KINDS", "UNK_ID", "Tokenizer", "coverage_report", "train_tokenizer",
           "unseen_rate"]

class Tokenizer:
    """Maps normalised text of one locale to CTC target ids and back (blank = 0, unk = 1)."""

    blank_id = BLANK_ID
    unk_id = UNK_ID

    def __init__(self, locale: str, kind: str, pieces: Sequence[str] | None = None,
                 sp_model: bytes | None = None):
        _check_kind(locale, kind)
        self.locale, self.kind = locale, kind
        self._sp = None
        self._sp_model = sp_model
        romanisation = language(locale).romanisation
        self._romanise = romanisation.units if romanisation and romanisation.kind == kind else None
        if kind in SUBWORD_UNITS:
            if sp_model is None:
                raise ValueError(f"a {kind} tokenizer needs its sentencepiece model bytes")
            import sentencepiece as spm

            self._sp = spm.SentencePieceProcessor(model_proto=sp_model)
            pieces = [self._sp.id_to_piece(i) for i in range(self._sp.get_piece_size())]
        elif pieces is None:
            raise ValueError(f"a {kind} tokenizer needs its list of pieces")
        self._pieces = list(pieces)
        if self._pieces[:2] != [BLANK_PIECE, UNK_PIECE]:
            raise ValueError(f"pieces must start with {BLANK_PIECE!r}, {UNK_PIECE!r}; got {self._pieces[:2]}")
        if len(set(self._pieces)) != len(self._pieces):
            raise ValueError("pieces must be unique")
        self._ids = {piece: i for i, piece in enumerate(self._pieces)}

    @property
    def vocab_size(self) -> int:
        """Number of output classes of the CTC head, blank included."""
        return len(self._pieces)

    @property
    def pieces(self) -> list[str]:
        return list(self._pieces)

    def id_to_piece(self, index: int) -> str:
        return self._pieces[index]

    def piece_to_id(self, piece: str) -> int:
        return self._ids.get(piece, UNK_ID)

    def units(self, text: str) -> list[str]:
        """The unit strings `encode` would look up (unknown ones included as themselves)."""
        if self._sp is not None:
            return self._sp.encode(text, out_type=str)
        if self._romanise is not None:
            return self._romanise(text)
        return list(text)

    def encode(self, text: str) -> list[int]:
        """Ids (never 0) of normalised `text`; units unseen in training map to unk (1)."""
        if self._sp is not None:
            return self._sp.encode(text)
        return [self._ids.get(unit, UNK_ID) for unit in self.units(text)]

    def decode(self, ids: Iterable[int]) -> str:
        """Normalised text of `ids`; blanks and unks are dropped.

        Dropping unk keeps the output a valid normalised string; for scoring, a dropped unit
        costs one deletion where a placeholder would cost one substitution. For a romanised
        kind the result is units joined by spaces (pinyin: `decode(encode(t)) == to_pinyin(t)`).
        """
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"ids {bad[:5]} out of range for a {self.locale} vocabulary of {self.vocab_size}")
        ids = [i for i in ids if i not in (BLANK_ID, UNK_ID)]
        if self._romanise is not None:
            return " ".join(self._pieces[i] for i in ids)
        text = self._sp.decode(ids) if self._sp is not None else "".join(self._pieces[i] for i in ids)
        # Dropped unks and free-running CTC output can leave doubled or edge spaces.
        return " ".join(text.split())

    # --- serialisation -------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        payload = self._sp_model if self._sp is not None else b""
        header = {"format": FORMAT_VERSION, "locale": self.locale, "kind": self.kind,
                  "vocab_size": self.vocab_size, "blank_id": BLANK_ID, "unk_id": UNK_ID,
                  "payload_bytes": len(payload)}
        if self._sp is None:
            header["pieces"] = self._pieces
        line = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return MAGIC + line + b"\n" + payload

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "tokenizer bytes") -> Tokenizer:
        """Rebuild a tokenizer from `to_bytes` output; `source` names the origin in errors."""
        data = bytes(data)
        if not data.startswith(MAGIC):
            raise ValueError(f"{source}: not a polyglot-asr tokenizer (missing header); "
                             "re-create it with `asr prepare` or train_tokenizer(...).save(path)")
        end = data.find(b"\n", len(MAGIC))
        try:
            header = json.loads(data[len(MAGIC):end].decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"{source}: unreadable tokenizer header ({e})") from None
        if header.get("format") != FORMAT_VERSION:
            raise ValueError(f"{source}: tokenizer format {header.get('format')!r}, "
                             f"this version reads {FORMAT_VERSION}")
        payload = data[end + 1:]
        if len(payload) != header["payload_bytes"]:
            raise ValueError(f"{source}: truncated tokenizer ({len(payload)} of "
                             f"{header['payload_bytes']} payload bytes)")
        tok = cls(header["locale"], header["kind"], pieces=header.get("pieces"),
                  sp_model=payload or None)
        if tok.vocab_size != header["vocab_size"]:
            raise ValueError(f"{source}: header says {header['vocab_size']} pieces, model has {tok.vocab_size}")
        return tok

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically: a reader sees the previous tokenizer or this one, never half."""
        write_bytes(path, self.to_bytes())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        refuse_special(path)
        with open(path, "rb") as f:
            return cls.from_bytes(f.read(), source=str(path))

    def __eq__(self, other) -> bool:
        return isinstance(other, Tokenizer) and self.to_bytes() == other.to_bytes()

    __hash__ = None  # equality is by content (the serialised bytes); not meant as a dict key

    def __repr__(self) -> str:
        return f"Tokenizer(locale={self.locale!r}, kind={self.kind!r}, vocab_size={self.vocab_size})"


# --- training ------------------------------------------------------------------------------

_TOO_HIGH = re.compile(r"Vocabulary size too high \(\d+\)\. Please set it to a value <= (\d+)")
_TOO_LOW = re.compile(r"Vocabulary size is smaller than required_chars\. \d+ vs (\d+)")


def _train_sentencepiece(texts: list[str], kind: str, vocab_size: int) -> bytes:
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, model_type=kind, vocab_size=vocab_size,
        pad_id=BLANK_ID, pad_piece=BLANK_PIECE, unk_id=UNK_ID, unk_piece=UNK_PIECE,
        bos_id=-1, eos_id=-1, unk_surface="",
        character_coverage=1.0,  # every training character gets a unit: no unk in training
        normalization_rule_name="identity",  # text is already normalised by asr.text
        num_threads=1,  # one thread: same corpus, same model, on any machine
        minloglevel=2)
    return model.getvalue()


def _sentencepiece_with_clamp(texts: list[str], kind: str, vocab_size: int) -> bytes:
    """Train; if the corpus cannot support `vocab_size` (or needs more), retry at the size
    sentencepiece reports as feasible and warn, rather than failing a whole preparation run."""
    requested, size = vocab_size, vocab_size
    for _ in range(3):  # the reported bound is normally right first time; never loop forever
        try:
            model = _train_sentencepiece(texts, kind, size)
            break
        except RuntimeError as e:
            match = _TOO_HIGH.search(str(e)) or _TOO_LOW.search(str(e))
            if match is None or int(match.group(1)) == size:
                raise
            size = int(match.group(1))
    else:
        raise RuntimeError(f"sentencepiece found no feasible {kind} vocabulary size near {requested}")
    if size != requested:
        direction = "lowered" if size < requested else "raised"
        warnings.warn(f"{kind} vocab_size {requested} does not fit this corpus "
                      f"({len(texts)} sentences); {direction} to {size}", stacklevel=3)
    return model


def _check_kind(locale: str, kind: str) -> str:
    """`kind` if `locale` may use it (the language table says which), else ValueError."""
    allowed = language(locale).unit_kinds
    if kind not in allowed:
        raise ValueError(f"tokenizer kind {kind!r} is not available for {locale}; choose one "
                         f"of {', '.join(allowed)}")
    return kind


def train_tokenizer(texts: Sequence[str], locale: str, kind: str = "auto",
                    vocab_size: int = 256, min_count: int = 1) -> Tokenizer:
    """Train a tokenizer of `kind` on normalised training transcripts of `locale`.

    `kind="auto"` is the language's default units (`Language.default_units`: unigram for
    spaced languages, char for unspaced ones such as zh-CN). `vocab_size` (blank and unk
    included) applies to unigram/bpe and is clamped with a warning when the corpus cannot
    support it. char and romanised vocabularies are whatever units occur at least `min_count`
    times: capping Chinese characters at a subword-sized budget would turn common characters
    into unk, and the point of the char kind is to measure coverage.
    """
    lang = language(locale)
    kind = _check_kind(locale, lang.default_units if kind == "auto" else kind)
    texts = [t for t in texts if t and not t.isspace()]
    if not texts:
        raise ValueError(f"no non-empty training transcripts for the {locale} tokenizer")
    if kind in SUBWORD_UNITS:
        return Tokenizer(locale, kind, sp_model=_sentencepiece_with_clamp(texts, kind, vocab_size))
    # char / romanised: a plain piece list rather than a sentencepiece char model. sentencepiece
    # would add its "▁" word marker to every Chinese sentence and hide unknown characters in
    # its own normaliser; a list is exact, readable in the header, and unk handling is one
    # dictionary lookup.
    counts = Counter(unit for t in texts for unit in _units_for(t, locale, kind))
    # Most frequent first (ties by code point) so the list reads like a frequency table and is
    # identical for the same corpus regardless of sentence order.
    units = sorted((u for u, c in counts.items() if c >= min_count), key=lambda u: (-counts[u], u))
    return Tokenizer(locale, kind, pieces=[BLANK_PIECE, UNK_PIECE, *units])


def _units_for(text: str, locale: str, kind: str) -> list[str]:
    """Characters, or the romanised units of a romanised kind."""
    romanisation = language(locale).romanisation
    return romanisation.units(text) if romanisation and kind == romanisation.kind else list(text)


# --- coverage ------------------------------------------------------------------------------

def unseen_rate(tokenizer: Tokenizer, texts: Iterable[str]) -> float:
    """Share of units in `texts` that map to <unk> (char kind: characters unseen in training)."""
    total = unknown = 0
    for text in texts:
        ids = tokenizer.encode(text)
        total += len(ids)
        unknown += sum(1 for i in ids if i == UNK_ID)
    return unknown / total if total else 0.0


def coverage_report(train_texts: Iterable[str], eval_texts: Iterable[str], locale: str,
                    kind: str = "char", top: int = 20) -> dict:
    """How well training units cover evaluation text, independent of any trained model.

    Units are characters (spaces excluded) for `kind="char"`, else the language's romanised
    units ("pinyin": syllables). Returns type and token counts, the unseen token rate and the
    most frequent unseen units.
    """
    romanisation = language(locale).romanisation
    kinds = ("char", *((romanisation.kind,) if romanisation else ()))
    if kind not in kinds:
        raise ValueError(f"coverage of {locale} is measured in {' or '.join(kinds)} units, not {kind!r}")

    def count(texts: Iterable[str]) -> Counter:
        return Counter(u for t in texts for u in _units_for(t, locale, kind) if not u.isspace())

    train, evaluation = count(train_texts), count(eval_texts)
    unseen = Counter({u: c for u, c in evaluation.items() if u not in train})
    eval_tokens = sum(evaluation.values())
    return {
        "locale": locale,
        "kind": kind,
        "train_types": len(train),
        "eval_types": len(evaluation),
        "eval_tokens": eval_tokens,
        "unseen_types": len(unseen),
        "unseen_tokens": sum(unseen.values()),
        "unseen_token_rate": sum(unseen.values()) / eval_tokens if eval_tokens else 0.0,
        "most_common_unseen": unseen.most_common(top),
    }
