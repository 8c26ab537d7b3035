import random

import pytest

from asr.cli import main
from asr.lm import BOS, EOS, UNK, ArpaModel, build_lm, lm_units, train_kneser_ney, write_arpa
from asr.tokenizer import train_tokenizer

WORDS = "das haus ist rot ein hund der gut".split()


def corpus(seed=0, n=300):
    rng = random.Random(seed)
    return [[rng.choice(WORDS) for _ in range(rng.randint(1, 6))] for _ in range(n)]


@pytest.fixture(scope="module")
def arpa(tmp_path_factory):
    path = tmp_path_factory.mktemp("lm") / "lm.arpa"
    write_arpa(path, train_kneser_ney(corpus(), order=3))
    return ArpaModel(path)


@pytest.mark.parametrize("context", [(), (BOS,), (BOS, "das"), ("das", "haus"), ("rot", "rot"),
                                     ("never", "seen")])
def test_kneser_ney_distributions_sum_to_one(arpa, context):
    total = sum(10 ** arpa.log10_prob(w, context) for w in [*arpa.vocabulary, EOS, UNK])
    assert total == pytest.approx(1.0, abs=1e-5)


def test_arpa_structure_and_unknown_words(arpa):
    assert arpa.order == 3
    assert arpa.vocabulary == sorted(WORDS)
    assert arpa.prob[(BOS,)] == -99.0  # <s> is never predicted
    assert arpa.log10_prob("zebra", ("das",)) == arpa.log10_prob(UNK, ("das",))
    assert arpa.log10_prob(UNK) < min(arpa.log10_prob(w) for w in WORDS)


def test_perplexity_lower_in_domain(arpa):
    in_domain = corpus(seed=1, n=50)
    shuffled = [[w[::-1] for w in s] for s in in_domain]  # every word unknown
    assert arpa.perplexity(in_domain) < arpa.perplexity(shuffled)


def test_order_one_and_empty_corpus(tmp_path):
    m = train_kneser_ney([["a", "b"], ["a"]], order=1)
    assert len(m["ngrams"]) == 1
    with pytest.raises(ValueError, match="no non-empty"):
        train_kneser_ney([[], []])


def test_units_words_or_tokenizer_units(tmp_path):
    de = train_tokenizer(["das haus ist rot"] * 5, "de", vocab_size=12)
    zh = train_tokenizer(["天地人", "山水"], "zh-CN")
    assert lm_units("das haus", de) == ["das", "haus"]
    assert lm_units("天地人", zh) == ["天", "地", "人"]
    summary = build_lm(["天地人", "山水"], zh, tmp_path / "zh.arpa", order=2)
    assert summary["unit"] == "token" and summary["ngrams"][0] == 5 + 3  # + <s> </s> <unk>


def test_kenlm_in_the_decoder_reads_our_arpa(arpa):
    kenlm = pytest.importorskip("flashlight.lib.text.decoder.kenlm")
    from flashlight.lib.text.dictionary import Dictionary

    words = ["<unk>", *WORDS]
    lm = kenlm.KenLM(str(arpa.path), Dictionary(words))
    state, score = lm.score(lm.start(False), words.index("das"))
    assert score == pytest.approx(arpa.log10_prob("das", (BOS,)), abs=1e-4)
    _, score = lm.score(state, words.index("haus"))
    assert score == pytest.approx(arpa.log10_prob("haus", (BOS, "das")), abs=1e-4)


def test_lm_command(fake_data, tmp_path, capsys):
    out = tmp_path / "de.arpa"
    assert main(["lm", "--data", str(fake_data), "--locale", "de", "--order", "2",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "word LM" in printed and "dev perplexity" in printed
    assert ArpaModel(out).order == 2
    assert main(["lm", "--data", str(fake_data), "--locale", "zh-CN", "--out",
                 str(tmp_path / "zh.arpa")]) == 0
    assert "token LM" in capsys.readouterr().out
