import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from asr.decode import (
    BeamSearchDecoder,
    DecodeConfig,
    Decoder,
    Hypothesis,
    collapse_path,
    greedy_hypotheses,
)
from asr.lm import build_lm
from asr.tokenizer import train_tokenizer

pytest.importorskip("flashlight.lib.text.decoder")

DE_TEXT = ["das haus ist rot", "ein haus ist gut", "das haus ist gut", "das haus ist alt",
           "die maus ist grau", "eine maus", "der hund ist rot"] * 4
ZH_TEXT = ["天地人", "天地山", "天地人山", "山水", "水火"] * 4


def emissions(tok, text: str, confusions: dict[int, dict[str, float]] | None = None,
              sharp: float = 0.9) -> torch.Tensor:
    """Hand-made CTC log-probs (T, V): each unit of `text` on one frame, then a blank frame.

    confusions[k] replaces the distribution of unit k's frame by {unit: probability}.
    """
    ids = tok.encode(text)
    V = tok.vocab_size
    rows = []
    for k, i in enumerate(ids):
        p = np.full(V, (1 - sharp) / (V - 1))
        p[i] = sharp
        if confusions and k in confusions:
            p = np.full(V, 1e-3)
            for unit, prob in confusions[k].items():
                p[tok.piece_to_id(unit)] = prob
        rows.append(p / p.sum())
        blank = np.full(V, (1 - sharp) / (V - 1))
        blank[0] = sharp
        rows.append(blank)
    return torch.tensor(np.log(np.stack(rows)), dtype=torch.float32)  # (T, V)


def ctc_nll(log_probs: torch.Tensor, ids: list[int]) -> float:
    """-log p(ids | log_probs) under CTC, log_probs (T, V)."""
    return F.ctc_loss(log_probs[:, None], torch.tensor([ids or [0]])[:, :len(ids)],
                      torch.tensor([log_probs.shape[0]]), torch.tensor([len(ids)]),
                      reduction="sum").item()


def test_collapse_path_gives_first_frames():
    assert collapse_path([0, 3, 3, 0, 3, 5, 5, 0]) == ([3, 3, 5], [1, 4, 5])
    assert collapse_path([]) == ([], [])


def test_greedy_hypotheses_are_the_collapsed_best_path():
    lp = torch.randn(3, 20, 7).log_softmax(-1)
    lens = torch.tensor([20, 11, 1])
    hyps = greedy_hypotheses(lp, lens)
    for b, n in enumerate(lens.tolist()):
        merged = torch.unique_consecutive(lp[b, :n].argmax(-1))  # repeats merged
        assert hyps[b].ids == merged[merged != 0].tolist()  # then blanks dropped
    assert all(len(h.ids) == len(h.frames) and h.frames == sorted(h.frames) for h in hyps)


def test_beam_of_one_is_greedy_and_wide_beam_is_no_worse():
    tok = train_tokenizer(DE_TEXT, "de", kind="char")
    gen = torch.Generator().manual_seed(0)
    lp = (3 * torch.randn(4, 40, tok.vocab_size, generator=gen)).log_softmax(-1)
    lens = torch.tensor([40, 33, 12, 5])
    greedy = greedy_hypotheses(lp, lens)
    one = BeamSearchDecoder(tok, DecodeConfig(beam_size=1, beam_size_token=tok.vocab_size))
    assert [(h.ids, h.frames) for h in one.decode_batch(lp, lens)] == [(h.ids, h.frames) for h in greedy]
    wide = BeamSearchDecoder(tok, DecodeConfig(beam_size=32, beam_size_token=tok.vocab_size))
    for b, (g, w) in enumerate(zip(greedy, wide.decode_batch(lp, lens), strict=True)):
        n = int(lens[b])
        # the prefix search scores whole labelings: never less likely than the best path's
        assert ctc_nll(lp[b, :n], w.ids) <= ctc_nll(lp[b, :n], g.ids) + 1e-4


def test_wide_beam_finds_the_most_probable_labeling():
    tok = train_tokenizer(["ab"], "de", kind="char")  # blank, unk, a, b
    gen = torch.Generator().manual_seed(3)
    for _ in range(5):
        lp = (2 * torch.randn(5, tok.vocab_size, generator=gen)).log_softmax(-1)  # (T, V)
        totals: dict[tuple, float] = {}
        for path in itertools.product(range(tok.vocab_size), repeat=5):
            label = tuple(collapse_path(path)[0])
            p = math.exp(sum(lp[t, k].item() for t, k in enumerate(path)))
            totals[label] = totals.get(label, 0.0) + p
        best = max(totals, key=totals.get)
        dec = BeamSearchDecoder(tok, DecodeConfig(beam_size=200, beam_size_token=tok.vocab_size,
                                                  beam_threshold=1000))
        assert tuple(dec.decode(lp).ids) == best


def test_word_lm_resolves_an_acoustically_ambiguous_word(tmp_path):
    tok = train_tokenizer(DE_TEXT, "de", kind="char")
    build_lm(DE_TEXT, tok, tmp_path / "de.arpa", order=3)
    # "das ?aus ist rot": the acoustics slightly prefer m (maus) over h (haus)
    lp = emissions(tok, "das haus ist rot", {4: {"m": 0.5, "h": 0.4}})
    greedy = tok.decode(greedy_hypotheses(lp[None], torch.tensor([len(lp)]))[0].ids)
    plain = tok.decode(BeamSearchDecoder(tok, DecodeConfig(beam_size=16)).decode(lp).ids)
    fused = BeamSearchDecoder(tok, DecodeConfig(beam_size=16, lm_path=str(tmp_path / "de.arpa"),
                                                lm_weight=1.0)).decode(lp)
    assert greedy == plain == "das maus ist rot"
    assert tok.decode(fused.ids) == "das haus ist rot"
    assert fused.frames == sorted(fused.frames) and fused.frames[-1] < len(lp)


def test_token_lm_resolves_an_ambiguous_character(tmp_path):
    tok = train_tokenizer(ZH_TEXT, "zh-CN")
    build_lm(ZH_TEXT, tok, tmp_path / "zh.arpa", order=3)
    lp = emissions(tok, "天地人", {1: {"水": 0.5, "地": 0.4}})
    assert tok.decode(greedy_hypotheses(lp[None], torch.tensor([len(lp)]))[0].ids) == "天水人"
    fused = BeamSearchDecoder(tok, DecodeConfig(beam_size=16, lm_path=str(tmp_path / "zh.arpa")))
    assert tok.decode(fused.decode(lp).ids) == "天地人"


def test_subword_tokenizer_with_word_lm(tmp_path):
    tok = train_tokenizer(DE_TEXT, "de", vocab_size=25)
    build_lm(DE_TEXT, tok, tmp_path / "de.arpa")
    dec = Decoder({"de": tok}, DecodeConfig(beam_size=8), {"de": str(tmp_path / "de.arpa")})
    lp = emissions(tok, "der hund ist gut")
    (hyp,) = dec(lp[None], torch.tensor([len(lp)]), "de")
    assert isinstance(hyp, Hypothesis) and tok.decode(hyp.ids) == "der hund ist gut"


def test_decoder_errors(tmp_path):
    tok = train_tokenizer(ZH_TEXT, "zh-CN")
    with pytest.raises(FileNotFoundError, match="nowhere.arpa"):
        DecodeConfig(lm_path=str(tmp_path / "nowhere.arpa"))
    with pytest.raises(ValueError, match="fr"):
        Decoder({"zh-CN": tok}, DecodeConfig(), {"fr": "x.arpa"})
    bad = tmp_path / "bad.arpa"
    bad.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\nnot numbers\n\\end\\\n")
    with pytest.raises(ValueError, match="bad.arpa"):
        BeamSearchDecoder(tok, DecodeConfig(beam_size=4, lm_path=str(bad)))
    with pytest.raises(ValueError, match=r"\(T, "):
        BeamSearchDecoder(tok, DecodeConfig(beam_size=4)).decode(torch.zeros(3, 2))


def test_piece_lm_keeps_the_vocabulary_open(tmp_path):
    tok = train_tokenizer(DE_TEXT, "de", vocab_size=25)
    build_lm(DE_TEXT, tok, tmp_path / "words.arpa", order=3)
    summary = build_lm(DE_TEXT, tok, tmp_path / "pieces.arpa", order=4, unit="token")
    assert summary["unit"] == "token"
    lp = emissions(tok, "der hund ist grau rot")  # "grau rot" never follows in the LM text
    word = BeamSearchDecoder(tok, DecodeConfig(beam_size=8, lm_path=str(tmp_path / "words.arpa")))
    piece = BeamSearchDecoder(tok, DecodeConfig(beam_size=8, lm_path=str(tmp_path / "pieces.arpa")))
    assert tok.decode(piece.decode(lp).ids) == "der hund ist grau rot"
    oov = emissions(tok, "der hund ist gros")  # "gros" is no LM word: only pieces can spell it
    assert "gros" not in tok.decode(word.decode(oov).ids).split()
    assert tok.decode(piece.decode(oov).ids) == "der hund ist gros"
