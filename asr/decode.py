"""CTC decoding: log-probabilities (T, V) -> token ids (and the frame of each), kept out of the model.

Two searches:
  greedy      best path: argmax per frame, repeats merged, blanks removed (`greedy_hypotheses`);
  beam        CTC prefix beam search, optionally with shallow fusion of an n-gram LM:
              score = log p_ctc + lm_weight * log10 p_lm + word_score * words.

The beam search is flashlight-text's C++ decoder (`flashlight-text` on PyPI, with KenLM inside
its wheel), not a search written here. Measured on this project's 2-core CPU it decodes a
second of audio in about a millisecond with a 3-gram LM (see the README), it installs as a
1.3 MB wheel with no dependencies, and it reads ARPA and KenLM binary files. The other
candidate, pyctcdecode, pins numpy < 2 (this project uses numpy 2) and needs KenLM compiled
from source. flashlight-text publishes wheels for CPython 3.6-3.12; elsewhere greedy decoding
still works and beam search raises an error saying what to install.

How an LM is used depends on its symbols (asr/lm.py, `lm_unit_of`):
  - a *word* LM (default for spaced languages): flashlight's lexicon decoder walks a trie of
    the LM's words, each spelled with the tokenizer, and scores a word when its last piece is
    emitted. Output words are then limited to the LM's vocabulary, as in wav2letter.
  - a *token* LM over the tokenizer's own units (characters or syllables of a language
    without word breaks, such as zh-CN; subword
    pieces with `asr lm --unit token`): the lexicon-free decoder, so any unit sequence stays
    reachable. flashlight has no per-token bonus there, so `word_score` is added to every
    non-blank log-probability instead.
Without an LM the beam search is the lexicon-free decoder with a zero LM.
KenLM scores are log10 probabilities; CTC scores are natural logs: lm_weight absorbs the factor.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from asr.fileio import refuse_special
from asr.tokenizer import BLANK_ID, UNK_ID


@dataclass(frozen=True)
class DecodeConfig:
    """How log-probabilities become text. beam_size 1 without an LM is greedy decoding."""

    beam_size: int = 1  # hypotheses kept per frame; 1 = greedy
    lm_path: str | None = None  # ARPA or KenLM binary n-gram LM for shallow fusion
    lm_weight: float = 1.0  # weight of the LM's log10 probability
    word_score: float = 0.0  # added per word (word LM) or per emitting frame (token LM)
    beam_size_token: int = 16  # most likely tokens tried per frame
    beam_threshold: float = 25.0  # drop hypotheses this far (log-prob) below the best

    def __post_init__(self):
        if self.beam_size < 1 or self.beam_size_token < 1:
            raise ValueError(f"beam_size and beam_size_token must be >= 1, got "
                             f"{self.beam_size} and {self.beam_size_token}")
        if self.lm_path is not None:
            refuse_special(self.lm_path)  # SpecialFileError: a FIFO would block KenLM forever
        if self.lm_path is not None and not os.path.isfile(self.lm_path):
            raise FileNotFoundError(f"{self.lm_path}: no such language model file")

    @property
    def greedy(self) -> bool:
        return self.beam_size == 1 and self.lm_path is None


@dataclass(frozen=True)
class Hypothesis:
    """Token ids of one utterance, the output frame where each id starts, and the search score."""

    ids: list[int]
    frames: list[int] = field(default_factory=list)  # same length as ids, increasing
    score: float = 0.0


def collapse_path(path: np.ndarray | list[int]) -> tuple[list[int], list[int]]:
    """A per-frame token path (T,) -> (ids, first frame of each): CTC's many-to-one map
    (repeats merged, then blanks removed)."""
    path = np.asarray(path, dtype=np.int64).reshape(-1)  # (T,)
    keep = path != BLANK_ID  # (T,)
    keep[1:] &= path[1:] != path[:-1]  # a token starts where it differs from the frame before
    frames = np.flatnonzero(keep)
    return path[frames].tolist(), frames.tolist()


def greedy_hypotheses(log_probs: torch.Tensor, lengths: torch.Tensor) -> list[Hypothesis]:
    """Greedy (best path) decoding, the only one: argmax per frame, `collapse_path`.

    log_probs (B, T, V), lengths (B,) valid frames -> one hypothesis per utterance, with the
    frame where each token starts and the summed best log-probability as its score.
    """
    best = log_probs.argmax(dim=-1).cpu().numpy()  # (B, T)
    top = log_probs.max(dim=-1).values.float().cpu().numpy()  # (B, T)
    out = []
    for b, n in enumerate(lengths.tolist()):
        ids, frames = collapse_path(best[b, :n])
        out.append(Hypothesis(ids, frames, float(top[b, :n].sum())))
    return out


@contextlib.contextmanager
def _quiet_stderr():
    """KenLM prints loading progress on the C stderr; keep a CLI's output readable."""
    try:
        fd = os.dup(2)
    except OSError:  # no real stderr (embedded interpreters): nothing to hide
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(fd, 2)
        os.close(fd)


def _flashlight():
    try:
        from flashlight.lib.text import decoder, dictionary
    except ImportError as e:
        raise RuntimeError(
            "beam search needs the flashlight-text package (wheels for Python 3.6-3.12): "
            f"pip install flashlight-text, or decode greedily with --beam 1 ({e})") from None
    return decoder, dictionary


class BeamSearchDecoder:
    """CTC prefix beam search for one language's tokenizer, optionally with an n-gram LM."""

    def __init__(self, tokenizer, config: DecodeConfig):
        from asr.lm import lm_unit_of, read_vocabulary

        fl, fl_dict = _flashlight()
        self.tokenizer, self.config = tokenizer, config
        self.bonus = 0.0  # added to non-blank log-probs (token LMs' stand-in for a word score)
        criterion = fl.CriterionType.CTC
        if config.lm_path is None or lm_unit_of(config.lm_path, tokenizer) == "token":
            if config.lm_path is None:
                lm = fl.ZeroLM()
            else:
                lm = self._kenlm(fl_dict.Dictionary(tokenizer.pieces))
                self.bonus = config.word_score
            opts = fl.LexiconFreeDecoderOptions(
                beam_size=config.beam_size, beam_size_token=config.beam_size_token,
                beam_threshold=config.beam_threshold, lm_weight=config.lm_weight, sil_score=0.0,
                log_add=True, criterion_type=criterion)
            self._decoder = fl.LexiconFreeDecoder(opts, lm, BLANK_ID, BLANK_ID, [])
        else:
            words = read_vocabulary(config.lm_path)
            word_list = ["<unk>", *words]
            lm = self._kenlm(fl_dict.Dictionary(word_list))
            trie = fl.Trie(tokenizer.vocab_size, BLANK_ID)
            start = lm.start(False)
            spelled = 0
            for index, word in enumerate(word_list[1:], 1):
                unigram = lm.score(start, index)[1]
                for spelling in self._spellings(word):
                    trie.insert(spelling, index, unigram)
                    spelled += 1
            if not spelled:
                raise ValueError(f"{config.lm_path}: none of its {len(words)} words can be spelled "
                                 f"with the {tokenizer.locale} tokenizer; is it the right LM?")
            trie.smear(fl.SmearingMode.MAX)
            opts = fl.LexiconDecoderOptions(
                beam_size=config.beam_size, beam_size_token=config.beam_size_token,
                beam_threshold=config.beam_threshold, lm_weight=config.lm_weight,
                word_score=config.word_score, unk_score=-math.inf, sil_score=0.0, log_add=True,
                criterion_type=criterion)
            # The blank doubles as the word separator: subword pieces carry their own "▁".
            self._decoder = fl.LexiconDecoder(opts, trie, lm, BLANK_ID, BLANK_ID, 0, [], False)
        self._lm = lm  # the decoder holds a reference too; keep ours for clarity of lifetime

    def _kenlm(self, usr_dict):
        from flashlight.lib.text.decoder.kenlm import KenLM

        from asr.lm import check_arpa_header, is_arpa

        if is_arpa(Path(self.config.lm_path)):  # KenLM checks a binary's size itself
            check_arpa_header(self.config.lm_path)
        try:
            with _quiet_stderr():
                return KenLM(str(self.config.lm_path), usr_dict)
        except Exception as e:  # KenLM raises bare RuntimeErrors without the path
            raise ValueError(f"{self.config.lm_path}: cannot load the language model ({e})") from None

    def _spellings(self, word: str) -> list[list[int]]:
        """Token spellings of an LM word; none if a unit of it is unknown to the tokenizer."""
        ids = self.tokenizer.encode(word)
        if not ids or UNK_ID in ids:  # the head cannot emit this word
            return []
        spellings = [ids]
        space = self.tokenizer.piece_to_id(" ")
        if self.tokenizer.kind == "char" and space != UNK_ID:
            spellings.append([space, *ids])  # char tokenizers mark word breaks with a space unit
        return spellings

    def decode(self, log_probs: torch.Tensor | np.ndarray) -> Hypothesis:
        """log_probs (T, V) of one utterance (valid frames only) -> best hypothesis."""
        emissions = torch.as_tensor(log_probs).detach().float().cpu().contiguous()  # (T, V)
        if emissions.ndim != 2 or emissions.shape[1] != self.tokenizer.vocab_size:
            raise ValueError(f"expected log-probs (T, {self.tokenizer.vocab_size}), got {tuple(emissions.shape)}")
        T, V = emissions.shape
        if T == 0:
            return Hypothesis([], [], 0.0)
        if self.bonus:
            emissions = emissions.clone()
            emissions[:, 1:] += self.bonus
        results = self._decoder.decode(emissions.data_ptr(), T, V)
        if not results:  # every hypothesis pruned (e.g. no LM word fits): nothing recognised
            return Hypothesis([], [], -math.inf)
        best = results[0]
        path = list(best.tokens)[1:T + 1]  # drop the start and end states the decoder adds
        ids, frames = collapse_path(path)
        return Hypothesis(ids, frames, float(best.score))

    def decode_batch(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[Hypothesis]:
        """log_probs (B, T, V), lengths (B,) -> one hypothesis per utterance."""
        lp = log_probs.detach().float().cpu()
        return [self.decode(lp[b, :n]) for b, n in enumerate(lengths.tolist())]


class Decoder:
    """Greedy or beam decoding per language, with decoders built once and reused.

    `config.lm_path` is ignored here: LMs are per language, `lm_paths` maps locale -> file.
    """

    def __init__(self, tokenizers: dict, config: DecodeConfig = DecodeConfig(),
                 lm_paths: dict[str, str] | None = None):
        self.tokenizers, self.config = tokenizers, config
        self.lm_paths = dict(lm_paths or {})
        unknown = sorted(set(self.lm_paths) - set(tokenizers))
        if unknown:
            raise ValueError(f"LM given for {', '.join(unknown)}, which the model does not have "
                             f"({', '.join(tokenizers)})")
        self._beams: dict[str, BeamSearchDecoder] = {}

    def config_for(self, locale: str) -> DecodeConfig:
        return DecodeConfig(**{**self.config.__dict__, "lm_path": self.lm_paths.get(locale)})

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor, locale: str) -> list[Hypothesis]:
        """log_probs (B, T, V_locale), lengths (B,) -> hypotheses."""
        cfg = self.config_for(locale)
        if cfg.greedy:
            return greedy_hypotheses(log_probs, lengths)
        if locale not in self._beams:
            self._beams[locale] = BeamSearchDecoder(self.tokenizers[locale], cfg)
        return self._beams[locale].decode_batch(log_probs, lengths)
