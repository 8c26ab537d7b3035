"""Language identification: a classifier on pooled encoder statistics, fitted after training.

    feats ─► encode_shared(locale=None, statistics=True) ─► every shared block's output
          ─► mean ⊕ std over real frames, side by side (B, S) ─► standardise ─► Linear
          ─► logits (B, L)                                      (model.lid, LanguageIDHead)

S = 2 * d_model * shared blocks for a joint model, times the columns for a progressive one.

Why fitted on the frozen encoder rather than trained beside CTC. Batches hold one language, so
a head trained with the recogniser chases the language of the last batches, and its inputs
move under it while the encoder learns; fine-tuning on one language teaches it that every clip
is that language. Measured on one helpers' model (de, fr, es, it; 1600 updates, test CER
~70%): the head trained beside CTC with a replay of pooled vectors identified 67 / 44 / 36 /
23% of test utterances; a head fitted afterwards on the same encoder's last block 68-72%, and
on the mean and std of every shared block's output 85 / 84 / 87 / 75%. So LID is
fitted once the encoder is final, on utterances of every language the model holds (training
speakers and held-out ones: see `fit_language_id`), each language weighted equally; its
cross-validated accuracy on the held-out speakers is recorded in the model file, and
`--lang auto` is allowed only when that record is good (see `check_auto`).

Unseen speakers bring unseen channels and voices, so the fit also sees every utterance
AUGMENT_COPIES more times as if recorded otherwise (`recorded_otherwise`: another level, a
spectral tilt, a slightly longer or shorter vocal tract, white noise). Measured on
transfer_full's helpers' model after 2800 updates (mean dev CER 31%), on its test speakers
(1453 utterances, de / fr / es / it): every block's statistics 98.6 / 99.2 / 98.3 / 95.6%; with
two copies at another level, tilt and warp 99.1 / 99.5 / 99.4 / 97.4%; a tempo change on top no
better (98.9 / 99.2 / 98.9 / 98.2%); the last block alone 97.2 / 98.0 / 95.3 / 91.8%; the input
log-mel's statistics added, no change; a frame-level MLP with log-probabilities averaged over
frames 94.6 / 90.4 / 95.0 / 80.1%. The noise came from the harder condition of
scripts/lid_study.py (voices, rates and pitches outside the corpus, 0-10 dB SNR; 40 clips per
language), on the same model after 7200 updates: 60 / 92.5 / 60 / 57.5% without it (most errors
called French), 82.5 / 77.5 / 62.5 / 75% with it, test speakers 99.1 / 99.7 / 99.4 / 99.7%.

A fine-tuned model's statistics include those of the frozen copy of its start's encoder that
it keeps for language ID (`MultilingualCTC.keep_lid_reference`): fine-tuning on one language
moves its own blocks away from the others, and no head on them alone reached 98%.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from asr.data import LanguageData, collate, make_buckets
from asr.features import FeatureStats

MAX_FIT_UTTERANCES = 1000  # per language, spread over speakers: more changed nothing measured
HELD_OUT_SHARE = 0.2  # of a language's speakers, held out when its data has no dev split
FOLDS = 5  # cross-validation over the held-out speakers, for the recorded accuracy
L2 = 1e-3  # ridge on the standardised weights (summed squares, against the mean loss)
MIN_AUTO_ACCURACY = 0.95  # --lang auto needs at least this held-out accuracy in every language
UNCERTAIN = 0.8  # a file identified with a lower probability gets a warning (docs/results/lid)
ENCODE_FRAMES = 20_000  # padded input frames per encoding batch
AUGMENT_COPIES = 2  # re-recorded copies of every fitted utterance (recorded_otherwise)
GAIN_LN = 1.5  # level change, up to ± this in natural-log power (about ± 6.5 dB)
TILT_LN = 3.0  # spectral tilt, up to ± this ln-power difference across the band (± 13 dB)
WARP_BINS = 1.0  # frequency warp, up to ± this many mel bins (a vocal tract ~5% longer or shorter)
NOISE_SNR_DB = (0.0, 30.0)  # white noise mixed in at an SNR drawn from this range; (0, 0): none
AUGMENT_SEED = 0


class LanguageIDError(ValueError):
    """The model cannot be trusted to identify the language: pass it instead."""


@dataclasses.dataclass(frozen=True)
class LidRecord:
    """What a fit measured, kept in the model file's metadata under "lid"."""

    # share of held-out utterances identified correctly by a head fitted without their
    # speakers (cross-validated over FOLDS groups of held-out speakers), per language
    accuracy: dict[str, float]
    held_out: dict[str, int]  # held-out utterances per language
    held_out_from: dict[str, str]  # "dev" or "train speakers" (a share of train's speakers)
    fit_utterances: dict[str, int]  # utterances the final head was fitted on (both parts)

    @property
    def worst(self) -> tuple[str, float]:
        loc = min(self.accuracy, key=self.accuracy.get)
        return loc, self.accuracy[loc]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LidRecord:
        return cls(**{f.name: dict(d[f.name]) for f in dataclasses.fields(cls)})


def record_of(meta: dict) -> LidRecord | None:
    """The LID record of a model file's metadata; None when its head was never fitted."""
    d = meta.get("lid")
    return LidRecord.from_dict(d) if d else None


def check_auto(languages: list[str], record: LidRecord | None, where: str) -> None:
    """Raise LanguageIDError unless `--lang auto` is trustworthy for this model."""
    if len(languages) < 2:
        return  # one language: nothing to identify
    hint = f"pass --lang with one of {', '.join(languages)}"
    if record is None:
        raise LanguageIDError(
            f"{where}: its language ID was never fitted (the run lacked data for some of its "
            f"languages); {hint}, or fit it: asr lid-fit --model {where} --data DIR")
    missing = [loc for loc in languages if loc not in record.accuracy]
    if missing:
        raise LanguageIDError(f"{where}: its language ID was not measured on "
                              f"{', '.join(missing)}; {hint}")
    loc, acc = record.worst
    if acc < MIN_AUTO_ACCURACY:
        raise LanguageIDError(
            f"{where}: its language ID identified only {100 * acc:.0f}% of held-out {loc} "
            f"utterances (below {100 * MIN_AUTO_ACCURACY:.0f}%); {hint}")


# ---- data --------------------------------------------------------------------------------
def _speaker_bucket(speaker: str) -> float:
    """A stable pseudo-random number in [0, 1) per speaker."""
    return int(hashlib.sha256(speaker.encode()).hexdigest()[:8], 16) / 16 ** 8


def spread_over_speakers(records: list[dict], limit: int) -> list[int]:
    """Up to `limit` indices, round-robin over speakers (each speaker's in order)."""
    by_speaker: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_speaker.setdefault(str(r.get("speaker", i)), []).append(i)
    queues = [by_speaker[s] for s in sorted(by_speaker, key=_speaker_bucket)]
    out, k = [], 0
    while len(out) < limit and any(k < len(q) for q in queues):
        out += [q[k] for q in queues if k < len(q)][:limit - len(out)]
        k += 1
    return out


@dataclasses.dataclass
class LidSplit:
    """One language's fit and held-out utterances: (data, indices into it) each."""

    fit: tuple[LanguageData, list[int]]
    held_out: tuple[LanguageData, list[int]]
    held_out_from: str


def language_splits(train: LanguageData, dev: LanguageData | None,
                    limit: int = MAX_FIT_UTTERANCES) -> LidSplit:
    """Fit on training utterances; hold out the dev split, or, without one, a share of the
    training speakers (those never enter the fit)."""
    if dev is not None and len(dev):
        fit = spread_over_speakers(train.records, limit)
        return LidSplit((train, fit), (dev, spread_over_speakers(dev.records, limit)), "dev")
    speakers = {str(r.get("speaker", i)) for i, r in enumerate(train.records)}
    held = {s for s in speakers if _speaker_bucket(s) < HELD_OUT_SHARE}
    if not held or held == speakers:  # one speaker, or an unlucky draw: hold out utterances
        held_idx = set(range(0, len(train), 5))
    else:
        held_idx = {i for i, r in enumerate(train.records) if str(r.get("speaker", i)) in held}
    rest = [i for i in range(len(train)) if i not in held_idx]
    fit = [rest[j] for j in spread_over_speakers([train.records[i] for i in rest], limit)]
    return LidSplit((train, fit), (train, sorted(held_idx)[:limit]), "train speakers")


def recorded_otherwise(feats: torch.Tensor, stats: FeatureStats,
                       generator: torch.Generator) -> torch.Tensor:
    """Normalised log-mel (B, T, F) -> the same utterances as if recorded at another level,
    through a tilted channel, by a speaker whose formants sit up to WARP_BINS mel bins higher
    or lower: one random draw per utterance. Padding frames change too; nothing reads them."""
    b, _, n = feats.shape
    mean = torch.as_tensor(stats.mean, dtype=torch.float32)  # (F,)
    std = torch.as_tensor(stats.std, dtype=torch.float32)  # (F,)

    def uniform(bound: float, *shape: int) -> torch.Tensor:
        return (torch.rand(*shape, generator=generator) * 2 - 1) * bound

    raw = feats.float().cpu() * std + mean  # (B, T, F) natural-log mel power
    bins = (torch.arange(n, dtype=torch.float32) + uniform(WARP_BINS, b, 1)).clamp(0, n - 1)  # (B, F)
    lo = bins.floor().long()
    hi = (lo + 1).clamp(max=n - 1)
    w = (bins - lo)[:, None, :]  # (B, 1, F)
    t = raw.shape[1]
    raw = (raw.gather(2, lo[:, None, :].expand(-1, t, -1)) * (1 - w)
           + raw.gather(2, hi[:, None, :].expand(-1, t, -1)) * w)  # (B, T, F)
    ramp = torch.linspace(-0.5, 0.5, n)  # (F,)
    raw = raw + uniform(GAIN_LN, b, 1, 1) + uniform(TILT_LN, b, 1, 1) * ramp
    if NOISE_SNR_DB[1] > 0:  # white noise at an SNR drawn per utterance, mixed in the power domain
        level = raw.logsumexp(dim=(1, 2), keepdim=True) - math.log(raw.shape[1] * n)  # (B, 1, 1)
        snr = NOISE_SNR_DB[0] + torch.rand(b, 1, 1, generator=generator) * (NOISE_SNR_DB[1] - NOISE_SNR_DB[0])
        raw = torch.logaddexp(raw, level - snr * (math.log(10) / 10))
    return ((raw - mean) / std).to(feats.device, feats.dtype)


@torch.no_grad()
def pooled(model, data: LanguageData, indices: list[int], stats: FeatureStats,
           device: torch.device, augment: torch.Generator | None = None) -> torch.Tensor:
    """Pooled statistics (N, S) float32 of `data`'s utterances `indices`, in that order; with
    `augment`, of the utterances recorded otherwise (`recorded_otherwise`, drawn from it)."""
    model.eval()
    if not indices:
        return torch.zeros(0, 0)
    frames = data.frames[indices]
    out = [None] * len(indices)
    for bucket in make_buckets(frames, ENCODE_FRAMES, 256):
        batch = collate(data, [indices[j] for j in bucket.tolist()], stats)  # (B, T, F)
        feats = batch.feats if augment is None else recorded_otherwise(batch.feats, stats, augment)
        _, _, stats_bs = model.encode_shared(feats.to(device), batch.feat_lens.to(device),
                                             locale=None, statistics=True)  # (B, S)
        stats_bs = stats_bs.float().cpu()
        for row, j in enumerate(bucket.tolist()):
            out[j] = stats_bs[row]
    return torch.stack(out)


# ---- fitting -----------------------------------------------------------------------------
def fit_head(head, x: torch.Tensor, y: torch.Tensor, n_languages: int, l2: float = L2) -> None:
    """Multinomial logistic regression of labels y (N,) on statistics x (N, F), each language
    weighted equally, into `head` (its standardisation and Linear), full batch, by L-BFGS."""
    x = x.double()
    center, scale = x.mean(0), x.std(0).clamp(min=1e-6)
    z = (x - center) / scale  # (N, F)
    counts = torch.bincount(y, minlength=n_languages).double()
    weights = torch.where(counts > 0, len(y) / (n_languages * counts.clamp(min=1)), 0.0)
    w = torch.zeros(n_languages, z.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_languages, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=300, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z @ w.T + b, y, weight=weights) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        head.center.copy_(center.float())
        head.scale.copy_(scale.float())
        head.proj.weight.copy_(w.float())
        head.proj.bias.copy_(b.float())


def speaker_folds(data: LanguageData, indices: list[int], k: int) -> list[int]:
    """A fold number in [0, k) per index, whole speakers to a fold, folds about equal."""
    speakers = sorted({str(data.records[i].get("speaker", i)) for i in indices}, key=_speaker_bucket)
    fold_of = {spk: n % k for n, spk in enumerate(speakers)}
    return [fold_of[str(data.records[i].get("speaker", i))] for i in indices]


def fit_language_id(model, splits: dict[str, LidSplit], stats: FeatureStats,
                    device: torch.device | str = "cpu", progress=None) -> LidRecord | None:
    """Fit `model.lid` on its frozen encoder; None (head left unfitted) when a language of the
    model has no split. `progress(message)` is told each step.

    The fit uses both parts of each language's split, so it sees the held-out speakers too:
    an encoder knows its training speakers better than anyone else, and a head fitted on them
    alone was measured to generalise worse (tiny model, de / zh-CN test speakers: 92 / 85%
    fitted on train, 94 / 97% on train and dev). The recorded accuracy is therefore
    cross-validated: the held-out speakers are split into FOLDS groups, and each group's plain
    recordings are identified by a head fitted without it (nor its re-recorded copies).
    Every utterance enters the fit 1 + AUGMENT_COPIES times (`recorded_otherwise`).
    """
    device = torch.device(device)
    languages = model.languages
    if len(languages) < 2 or any(loc not in splits for loc in languages):
        model.lid.reset()
        return None
    generator = torch.Generator().manual_seed(AUGMENT_SEED)
    # per language: the fit part and the held-out part, each as 1 + AUGMENT_COPIES stacked
    # blocks of its utterances (plain first, then recorded otherwise)
    fit_x, held_x, folds, plain = [], [], [], []
    for loc in languages:
        if progress:
            progress(f"language ID: encoding {loc}")
        sp = splits[loc]
        for part, store in ((sp.fit, fit_x), (sp.held_out, held_x)):
            store.append(torch.cat([pooled(model, *part, stats, device)] + [
                pooled(model, *part, stats, device, augment=generator)
                for _ in range(AUGMENT_COPIES)]))
        plain.append(len(sp.held_out[1]))
        folds.append(torch.tensor(speaker_folds(*sp.held_out, FOLDS), dtype=torch.long))
    copies = 1 + AUGMENT_COPIES
    label = [torch.full((len(x),), k, dtype=torch.long) for k, x in enumerate(fit_x)]
    held_label = [torch.full((len(x),), k, dtype=torch.long) for k, x in enumerate(held_x)]
    correct = [torch.zeros(n, dtype=torch.bool) for n in plain]
    head = copy.deepcopy(model.lid).cpu()
    for fold in range(FOLDS):
        keep = [(f != fold).repeat(copies) for f in folds]  # every copy of a kept utterance
        fit_head(head, torch.cat(fit_x + [x[m] for x, m in zip(held_x, keep, strict=True)]),
                 torch.cat(label + [y[m] for y, m in zip(held_label, keep, strict=True)]),
                 len(languages))
        with torch.no_grad():  # scored on the plain recordings of the fold left out
            for k, (x, f) in enumerate(zip(held_x, folds, strict=True)):
                out = f == fold
                if out.any():
                    correct[k][out] = head(x[:plain[k]][out]).argmax(-1) == k
    fit_head(model.lid, torch.cat(fit_x + held_x), torch.cat(label + held_label), len(languages))
    model.lid.to(device)
    return LidRecord(
        accuracy={loc: round(float(c.float().mean()), 4) if len(c) else 0.0
                  for loc, c in zip(languages, correct, strict=True)},
        held_out={loc: n for loc, n in zip(languages, plain, strict=True)},
        held_out_from={loc: splits[loc].held_out_from for loc in languages},
        fit_utterances={loc: (len(x) + len(h)) // copies
                        for loc, x, h in zip(languages, fit_x, held_x, strict=True)})


def splits_from_dir(data_dir: str | Path, languages: list[str], tokenizers: dict, features,
                    ) -> dict[str, LidSplit]:
    """LID splits for every language of `languages` with prepared training data in data_dir
    (`<data_dir>/<locale>/train.jsonl` and its feature cache; dev.jsonl when present)."""
    from asr.prepare import feature_dir

    data_dir = Path(data_dir)
    out = {}
    for loc in languages:
        if not (data_dir / loc / "train.jsonl").exists() or loc not in tokenizers:
            continue

        def split(loc: str, name: str) -> LanguageData:
            return LanguageData(loc, data_dir / loc / f"{name}.jsonl",
                                feature_dir(data_dir, loc, name), tokenizers[loc], features=features)

        train = split(loc, "train")
        dev = split(loc, "dev") if (data_dir / loc / "dev.jsonl").exists() else None
        if len(train):
            out[loc] = language_splits(train, dev)
    return out


def confusion(true: list[str], predicted: list[str], languages: list[str]) -> np.ndarray:
    """Counts (L, L): row = true language, column = predicted."""
    m = np.zeros((len(languages), len(languages)), dtype=np.int64)
    index = {loc: i for i, loc in enumerate(languages)}
    for t, p in zip(true, predicted, strict=True):
        m[index[t], index[p]] += 1
    return m


def refit(model_path: str | Path, data_dir: str | Path, out: str | Path | None = None,
          device: str = "cpu", progress=None, reference: str | Path | None = None,
          ) -> tuple[Path, LidRecord]:
    """Fit a model file's language ID on prepared data of every one of its languages (after
    fine-tuning on one language, say) and write it to `out` (default: the same file, replaced
    atomically). `reference`: the model it was fine-tuned from, whose front end and shared
    blocks it keeps, frozen, for language ID (`MultilingualCTC.keep_lid_reference`; fine-tuning
    runs keep one themselves, this is for models fine-tuned before they did). Returns the file
    written and the record."""
    from asr.package import load_package_model, resolve_model_path, save_model

    model, package = load_package_model(model_path, device=device)
    if len(model.languages) < 2:
        raise LanguageIDError(f"{package.path}: one language ({model.languages[0]}), nothing to identify")
    if model.lid_needs_locale:
        raise LanguageIDError(f"{package.path}: layout {list(model.config.layout)} has "
                              "per-language input blocks, so it cannot identify a language")
    if reference is not None:
        _keep_reference(model, package, reference, device)
    splits = splits_from_dir(data_dir, model.languages, package.tokenizers, package.config.features)
    missing = [loc for loc in model.languages if loc not in splits]
    if missing:
        raise LanguageIDError(f"{data_dir}: no prepared training data for {', '.join(missing)} "
                              f"(needs <data>/<locale>/train.jsonl and its features for every "
                              f"language of the model: {', '.join(model.languages)})")
    record = fit_language_id(model, splits, package.stats, device, progress=progress)
    out = Path(out) if out else resolve_model_path(model_path)
    extra = {k: package.meta[k] for k in ("step",) if k in package.meta}
    save_model(out, model, package.config, package.tokenizers, package.stats,
               lid=record.to_dict(), extra=extra)
    return out, record


def _keep_reference(model, package, reference: str | Path, device) -> None:
    """Give `model` the front end and shared blocks of the model file `reference`, frozen,
    for language ID; both must normalise features alike."""
    from asr.model.multilingual import MultilingualCTC
    from asr.package import load_package_model

    source, ref_package = load_package_model(reference, device=device)
    where = f"--reference {ref_package.path}"
    if not isinstance(model, MultilingualCTC) or not isinstance(source, MultilingualCTC):
        raise LanguageIDError(f"{where}: a LID reference is for a fine-tuned joint model; a "
                              "progressive model's language ID reads its frozen columns")
    if model.lid_reference is not None:
        raise LanguageIDError(f"{package.path} already keeps a LID reference")
    mine, theirs = package.stats, ref_package.stats
    if mine.mean.shape != theirs.mean.shape or not (
            np.allclose(mine.mean, theirs.mean) and np.allclose(mine.std, theirs.std)):
        raise LanguageIDError(f"{where}: its feature statistics differ from {package.path}'s, "
                              "so it is not the model that one was fine-tuned from")
    try:
        model.keep_lid_reference(source)
    except ValueError as e:
        raise LanguageIDError(f"{where}: {e}") from None


def format_record(record: LidRecord) -> str:
    """One line per language: held-out accuracy, from where, how many utterances."""
    return "\n".join(f"  {loc:6s} {100 * acc:5.1f}%  of {record.held_out[loc]} held-out "
                     f"({record.held_out_from[loc]}, cross-validated over speakers); fitted on "
                     f"{record.fit_utterances[loc]}" for loc, acc in record.accuracy.items())
