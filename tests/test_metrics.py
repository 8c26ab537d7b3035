import jiwer
import pytest
import torch

from asr.decode import collapse_path, greedy_hypotheses
from asr.metrics import cer, char_errors, wer, word_errors

PAIRS = [
    (["das ist gut", "ein haus"], ["das ist gut", "ein maus"]),
    (["le chat noir"], ["le chat"]),
    (["uno dos tres", "cuatro"], ["uno tres", "cuatro cinco seis"]),
]


@pytest.mark.parametrize("refs,hyps", PAIRS)
def test_wer_equals_jiwer(refs, hyps):
    assert wer(refs, hyps) == pytest.approx(jiwer.wer(refs, hyps))


@pytest.mark.parametrize("refs,hyps", PAIRS)
def test_cer_equals_jiwer_without_spaces(refs, hyps):
    strip = [r.replace(" ", "") for r in refs], [h.replace(" ", "") for h in hyps]
    assert cer(refs, hyps) == pytest.approx(jiwer.cer(*strip))


def test_counts_by_hand():
    c = word_errors(["a b c d"], ["a x c d e"])
    assert (c.substitutions, c.deletions, c.insertions, c.hits) == (1, 0, 1, 3)
    assert c.rate == pytest.approx(2 / 4)
    z = char_errors(["你好世界"], ["你好"])
    assert (z.deletions, z.reference_units) == (2, 4)


def test_empty_reference_counts_insertions():
    c = word_errors(["", "a"], ["x y", "a"])
    assert c.insertions == 2 and c.reference_units == 1


def test_greedy_collapses_repeats_and_blanks():
    frames = torch.tensor([[1, 1, 0, 1, 2, 2, 0, 0, 3]])
    log_probs = torch.nn.functional.one_hot(frames, 5).float().log()  # (1, T, V)
    (full,) = greedy_hypotheses(log_probs, torch.tensor([9]))
    assert (full.ids, full.frames) == ([1, 1, 2, 3], [0, 3, 4, 8])
    assert greedy_hypotheses(log_probs, torch.tensor([4]))[0].ids == [1, 1]


def test_collapse_path_matches_the_ctc_definition():
    def by_definition(path):  # merge repeats, then drop blanks (id 0)
        merged = [(t, x) for t, x in enumerate(path) if t == 0 or x != path[t - 1]]
        kept = [(t, x) for t, x in merged if x != 0]
        return [x for _, x in kept], [t for t, _ in kept]

    rng = torch.Generator().manual_seed(0)
    for length in (0, 1, 2, 7, 50):
        path = torch.randint(0, 3, (length,), generator=rng).tolist()
        assert collapse_path(path) == by_definition(path)
