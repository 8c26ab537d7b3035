"""N-gram language models for shallow fusion: build an ARPA file from training text, read one.

Units. Spaced languages (asr/languages.py `word_separator`) get a *word* LM by default (the
decoder spells each LM word with the tokenizer and scores whole words, but can then only
output LM words). Languages written without word breaks (zh-CN, ja, th), and romanised units
(zh-CN `pinyin`), get a *token* LM over exactly the tokenizer's units, so every unit the CTC
head can emit is an LM symbol: a Chinese word LM would need a word segmenter that the
references do not have. `unit="token"` gives spaced languages an open-vocabulary LM over
subword pieces as well.
The decoder tells the two apart by the LM's vocabulary (`lm_unit_of`).

Smoothing. Interpolated Kneser-Ney (Chen & Goodman 1998) with one absolute discount per
order, D_n = n1 / (n1 + 2 n2) from the count-of-counts. Lower orders use continuation counts
(how many distinct words precede an n-gram), except n-grams that start with <s>, which
nothing can precede and which keep their raw counts (as KenLM's lmplz does). The unigram
level interpolates with a uniform distribution over the vocabulary plus <unk>, so every word
has a probability. Written as ARPA, the interpolation weight of a context is exactly its
back-off weight, and the stored probabilities are the interpolated ones, so any ARPA reader
(KenLM, used by the decoder; `ArpaModel` below) computes the same distribution.

Why not lmplz: KenLM's estimator is not on PyPI (the `kenlm` package only queries), and
building it needs Boost. This pure-Python builder counts in dictionaries: fine for the
hundreds of thousands of sentences of a Common Voice locale; for far more text, build the
ARPA with lmplz elsewhere and pass it to --lm as it is.
"""

from __future__ import annotations

import math
import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

from asr.fileio import atomic_write, refuse_special
from asr.languages import language

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
NO_PROB = -99.0  # ARPA's log10 probability of <s>, which is never predicted
MAX_ORDER = 10  # n-gram orders an ARPA header may claim (KenLM's default build stops at 6)
_HEADER_LINES = 1000  # lines read looking for an ARPA header's end


def default_unit(tokenizer) -> str:
    """"token" for a language without word breaks or a romanised tokenizer, "word" otherwise."""
    lang = language(tokenizer.locale)
    romanised = lang.romanisation is not None and tokenizer.kind == lang.romanisation.kind
    return "token" if romanised or not lang.word_separator else "word"


def lm_units(text: str, tokenizer, unit: str = "auto") -> list[str]:
    """Normalised `text` as LM symbols: words, or the tokenizer's units ("token"; subword
    pieces keep their "▁"). "auto" is `default_unit(tokenizer)`."""
    unit = default_unit(tokenizer) if unit == "auto" else unit
    if unit == "token":
        return [u for u in tokenizer.units(text) if not u.isspace()]
    if unit != "word":
        raise ValueError(f"LM unit must be word, token or auto, got {unit!r}")
    return text.split()


def _discount(counts: Iterable[int]) -> float:
    """D = n1 / (n1 + 2 n2); 0.5 when the counts of counts cannot give one (tiny corpora)."""
    hist = Counter(c for c in counts if c <= 2)
    n1, n2 = hist[1], hist[2]
    if n1 == 0 or n2 == 0:
        return 0.5
    return min(max(n1 / (n1 + 2 * n2), 0.05), 0.95)


def train_kneser_ney(sentences: Iterable[list[str]], order: int = 3) -> dict:
    """Interpolated Kneser-Ney estimates from sentences of symbols.

    Returns {"order", "vocab" (sorted symbols, <unk> included), "ngrams": [order n -> {ngram
    tuple: (log10 prob, log10 backoff or None)}]} with n = 1..order.
    """
    if order < 1:
        raise ValueError(f"n-gram order must be at least 1, got {order}")
    raw = [Counter() for _ in range(order + 1)]  # raw[n][ngram] for n = 1..order
    n_sentences = 0
    for words in sentences:
        if not words:
            continue
        n_sentences += 1
        padded = (BOS, *words, EOS)
        for n in range(1, order + 1):
            for i in range(len(padded) - n + 1):
                raw[n][padded[i:i + n]] += 1
    if not n_sentences:
        raise ValueError("no non-empty sentences to build a language model from")
    raw[1].pop((BOS,), None)  # <s> is only ever a context
    # Kneser-Ney counts: raw at the top order and for n-grams starting with <s>; below the top,
    # the number of distinct symbols seen before the n-gram.
    kn = [Counter() for _ in range(order + 1)]
    kn[order] = raw[order]
    for n in range(order - 1, 0, -1):
        for gram in raw[n + 1]:
            kn[n][gram[1:]] += 1
        for gram, c in raw[n].items():
            if gram[0] == BOS:
                kn[n][gram] = c
    kn[1].pop((BOS,), None)
    vocab = sorted({g[0] for g in kn[1]} | {UNK})
    probs: list[dict] = [{}]  # probs[n][ngram]: interpolated p(w | h) of seen n-grams
    gammas: list[dict] = [{}]  # gammas[n][h]: mass order n leaves to order n - 1 after context h
    uniform = 1.0 / len(vocab)
    for n in range(1, order + 1):
        d = _discount(kn[n].values())
        totals, types = defaultdict(int), defaultdict(int)  # per context
        for gram, c in kn[n].items():
            totals[gram[:-1]] += c
            types[gram[:-1]] += 1
        gamma = {h: d * types[h] / totals[h] for h in totals}
        level = {}
        for gram, c in kn[n].items():
            # the lower-order n-gram is always seen: anything seen at order n was seen shorter
            below = probs[n - 1][gram[1:]] if n > 1 else uniform
            level[gram] = max(c - d, 0.0) / totals[gram[:-1]] + gamma[gram[:-1]] * below
        if n == 1:
            level[(UNK,)] = level.get((UNK,), 0.0) + gamma[()] * uniform
        probs.append(level)
        gammas.append(gamma)
    out = []
    for n in range(1, order + 1):
        level = {gram: (math.log10(p), None) for gram, p in probs[n].items()}
        if n == 1 and order > 1:
            level[(BOS,)] = (NO_PROB, None)
        if n < order:  # ARPA back-off weight of a context = its interpolation weight
            for h, g in gammas[n + 1].items():
                level[h] = (level[h][0], math.log10(g))
        out.append(level)
    return {"order": order, "vocab": vocab, "ngrams": out, "sentences": n_sentences}


def write_arpa(path: str | os.PathLike, model: dict) -> None:
    """Write `train_kneser_ney` output as an ARPA file (atomically)."""
    with atomic_write(path) as f:
        f.write("\\data\\\n")
        for n, level in enumerate(model["ngrams"], 1):
            f.write(f"ngram {n}={len(level)}\n")
        for n, level in enumerate(model["ngrams"], 1):
            f.write(f"\n\\{n}-grams:\n")
            for gram in sorted(level):
                logp, bow = level[gram]
                line = f"{logp:.6f}\t{' '.join(gram)}"
                if bow is not None:
                    line += f"\t{bow:.6f}"
                f.write(line + "\n")
        f.write("\n\\end\\\n")


def build_lm(texts: Iterable[str], tokenizer, out_path: str | os.PathLike, order: int = 3,
             unit: str = "auto") -> dict:
    """Normalised training `texts` -> ARPA at `out_path`; returns a summary dict."""
    unit = default_unit(tokenizer) if unit == "auto" else unit
    model = train_kneser_ney((lm_units(t, tokenizer, unit) for t in texts), order=order)
    write_arpa(out_path, model)
    return {"path": str(out_path), "order": order, "sentences": model["sentences"],
            "vocab": len(model["vocab"]), "unit": unit,
            "ngrams": [len(level) for level in model["ngrams"]]}


def lm_unit_of(path: str | os.PathLike, tokenizer) -> str:
    """"token" when the LM's symbols are the tokenizer's units (lexicon-free decoding), else
    "word". Judged from the vocabulary, so a subword-piece LM works for spaced languages too;
    a KenLM binary without a word list is taken to be of the tokenizer's default unit."""
    try:
        vocab = read_vocabulary(path)
    except ValueError:
        return default_unit(tokenizer)
    pieces = set(tokenizer.pieces)
    inside = sum(w in pieces for w in vocab)
    return "token" if vocab and inside >= 0.9 * len(vocab) else "word"


def check_arpa_header(path: str | os.PathLike) -> list[int]:
    """The n-gram counts an ARPA file's \\data\\ header declares, refused (ValueError naming the
    file) unless the file's size could hold them. KenLM sizes its tables from these counts
    before reading a single n-gram: a header claiming 10^12 n-grams would allocate terabytes."""
    path = Path(path)
    refuse_special(path)
    size = path.stat().st_size
    counts: dict[int, int] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for _, line in zip(range(_HEADER_LINES), f, strict=False):
            line = line.strip()
            if line.endswith("-grams:"):
                break
            if line.startswith("ngram ") and "=" in line:
                order, _, count = line[len("ngram "):].partition("=")
                try:
                    counts[int(order)] = int(count)
                except ValueError:
                    raise ValueError(f"{path}: malformed ARPA header line {line!r}") from None
    if not counts:
        raise ValueError(f"{path}: no ARPA \\data\\ header with n-gram counts")
    if sorted(counts) != list(range(1, len(counts) + 1)) or len(counts) > MAX_ORDER:
        raise ValueError(f"{path}: ARPA header declares orders {sorted(counts)}, not 1..N with "
                         f"N <= {MAX_ORDER}")
    # an n-gram line is at least "p w1 ... wn\n": 2n + 2 bytes
    need = sum(max(c, 0) * (2 * n + 2) for n, c in counts.items())
    if any(c < 0 for c in counts.values()) or need > size:
        raise ValueError(f"{path}: ARPA header declares {sum(counts.values())} n-grams, more than "
                         f"its {size} bytes can hold (truncated or damaged?)")
    return [counts[n] for n in sorted(counts)]


class ArpaModel:
    """A small pure-Python ARPA reader and scorer (tests, perplexity, vocabulary lists)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.order = 0
        self.prob: dict[tuple, float] = {}
        self.bow: dict[tuple, float] = {}
        section = None
        refuse_special(self.path)
        with open(self.path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line or line in ("\\data\\", "\\end\\") or line.startswith("ngram "):
                    continue
                if line.startswith("\\") and line.endswith("-grams:"):
                    section = int(line[1:-len("-grams:")])
                    self.order = max(self.order, section)
                    continue
                if section is None:
                    continue
                parts = line.split("\t") if "\t" in line else line.split()
                try:
                    if "\t" in line:
                        logp, gram = float(parts[0]), tuple(parts[1].split())
                        bow = float(parts[2]) if len(parts) > 2 else None
                    else:
                        logp, gram = float(parts[0]), tuple(parts[1:1 + section])
                        bow = float(parts[1 + section]) if len(parts) > 1 + section else None
                except (ValueError, IndexError):
                    raise ValueError(f"{self.path}:{lineno}: not an ARPA n-gram line") from None
                self.prob[gram] = logp
                if bow is not None:
                    self.bow[gram] = bow
        if not self.order:
            raise ValueError(f"{self.path}: no n-gram sections; is this an ARPA file?")

    @property
    def vocabulary(self) -> list[str]:
        """Unigram symbols except <s>, </s> and <unk>."""
        return sorted(g[0] for g in self.prob if len(g) == 1 and g[0] not in (BOS, EOS, UNK))

    def log10_prob(self, word: str, context: tuple[str, ...] = ()) -> float:
        """log10 p(word | context) with ARPA back-off; unknown words score as <unk>."""
        if (word,) not in self.prob:
            word = UNK
        context = tuple(context)[-(self.order - 1):] if self.order > 1 else ()
        penalty = 0.0
        while True:
            gram = (*context, word)
            if gram in self.prob:
                return penalty + self.prob[gram]
            if not context:
                return penalty + self.prob.get((UNK,), NO_PROB)
            penalty += self.bow.get(context, 0.0)
            context = context[1:]

    def perplexity(self, sentences: Iterable[list[str]]) -> float:
        """Per-symbol perplexity (</s> counted) over sentences of symbols."""
        total, count = 0.0, 0
        for words in sentences:
            history = (BOS,)
            for w in (*words, EOS):
                total += self.log10_prob(w, history)
                history = (*history, w)
                count += 1
        return 10 ** (-total / max(count, 1))


def read_vocabulary(path: str | os.PathLike) -> list[str]:
    """Words of an LM: the unigrams of an ARPA file, or one word a line for a KenLM binary
    (`<lm>.bin` needs a `<lm>.bin.vocab` beside it, since the binary's words are not listed)."""
    path = Path(path)
    if is_arpa(path):
        return ArpaModel(path).vocabulary
    sidecar = path.with_name(path.name + ".vocab")
    if not sidecar.exists():
        raise ValueError(f"{path}: a binary word LM needs its word list in {sidecar} "
                         "(one word a line), or pass the ARPA file instead")
    return [w for w in sidecar.read_text(encoding="utf-8").split() if w not in (BOS, EOS, UNK)]


def is_arpa(path: Path) -> bool:
    """Whether the file looks like an ARPA text LM (a \\data\\ line near its start)."""
    refuse_special(path)
    with open(path, "rb") as f:
        head = f.read(4096)
    return b"\\data\\" in head
