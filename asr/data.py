"""Training data: per-language datasets over the feature cache, a duration-bucketed batch
sampler with a frame budget, language mixing p_l ∝ hours_l^alpha, and collation.

The sampler is a pure function of (seed, step) and a small JSON-able position per language,
so training resumes exactly after a kill and every DDP rank draws the same language.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from asr.config import DataConfig, FeatureConfig, check_features
from asr.feature_cache import FeatureCache
from asr.features import SILENCE_LOG_MEL, FeatureStats
from asr.fileio import read_jsonl
from asr.model.encoder import MIN_INPUT_FRAMES
from asr.tokenizer import Tokenizer


class LanguageData:
    """One language's split: utterance ids, lengths, token targets and the feature cache.

    `features` are the model's feature settings: a cache computed with others is refused
    (FeatureMismatchError) here, before any batch is drawn from it.
    """

    def __init__(self, locale: str, manifest_path, cache_dir, tokenizer: Tokenizer,
                 max_utterance_seconds: float | None = None, *, features: FeatureConfig):
        self.locale = locale
        self.cache = FeatureCache.open(cache_dir)
        check_features(features, self.cache.config, where=str(cache_dir))
        self.records = []
        self.skipped = {"not_in_cache": 0, "too_long": 0, "too_short": 0, "empty_target": 0}
        for rec in read_jsonl(manifest_path):
            if rec["id"] not in self.cache:
                self.skipped["not_in_cache"] += 1
            # A data filter, not batch_features' padding: padded to one output frame, such an
            # utterance could align at most one token, so CTC would call its target impossible
            # (or teach the model to emit text on silence); skipping it loses a few ms of audio.
            elif self.cache.frames(rec["id"]) < MIN_INPUT_FRAMES:
                self.skipped["too_short"] += 1
            elif max_utterance_seconds and rec["duration"] > max_utterance_seconds:
                self.skipped["too_long"] += 1
            elif not rec["norm_text"]:
                self.skipped["empty_target"] += 1
            else:
                self.records.append(rec)
        self.targets = [tokenizer.encode(r["norm_text"]) for r in self.records]
        self.frames = np.array([self.cache.frames(r["id"]) for r in self.records], dtype=np.int64)
        self.hours = float(sum(r["duration"] for r in self.records) / 3600)

    def __len__(self) -> int:
        return len(self.records)

    def features(self, i: int) -> np.ndarray:
        """(T, F) float16 log-mel features of utterance i."""
        return self.cache[self.records[i]["id"]]


def make_buckets(frames: np.ndarray, batch_frames: int, max_utterances: int) -> list[np.ndarray]:
    """Group utterance indices of similar length so each batch's padded frames fit the budget."""
    order = np.argsort(frames, kind="stable")
    batches, current, longest = [], [], 0
    for i in order:
        longest_if_added = max(longest, int(frames[i]))
        if current and (longest_if_added * (len(current) + 1) > batch_frames
                        or len(current) >= max_utterances):
            batches.append(np.array(current))
            current, longest_if_added = [], int(frames[i])
        current.append(int(i))
        longest = longest_if_added
    if current:
        batches.append(np.array(current))
    return batches


class MultilingualSampler:
    """Yields (locale, utterance indices) per step; each batch holds one language.

    One language per batch keeps each step's graph to one head (and its per-language blocks)
    and makes per-language loss weights exact. Which language: drawn with p_l ∝ hours_l^alpha.
    Within a language, bucketed batches are visited in a fresh seeded order every epoch.
    """

    def __init__(self, datasets: dict[str, LanguageData], config: DataConfig, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        self.locales = sorted(datasets)
        self.config = config
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.buckets = {
            loc: make_buckets(datasets[loc].frames, config.batch_frames, config.max_batch_utterances)
            for loc in self.locales
        }
        hours = np.array([max(datasets[loc].hours, 1e-6) for loc in self.locales])
        weights = hours ** config.alpha
        self.probs = weights / weights.sum()
        self.step = 0
        self.position = {loc: [0, 0] for loc in self.locales}  # locale -> [epoch, batch index]

    def language_probabilities(self) -> dict[str, float]:
        return dict(zip(self.locales, self.probs.tolist(), strict=True))

    def _order(self, locale: str, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.locales.index(locale), epoch])
        return rng.permutation(len(self.buckets[locale]))

    def next_batch(self) -> tuple[str, np.ndarray]:
        """The next (locale, indices) for this rank: its share of the global batch."""
        rng = np.random.default_rng([self.seed, 1_000_003, self.step])
        locale = self.locales[int(rng.choice(len(self.locales), p=self.probs))]
        epoch, index = self.position[locale]
        batch = self.buckets[locale][self._order(locale, epoch)[index]]
        index += 1
        if index == len(self.buckets[locale]):
            epoch, index = epoch + 1, 0
        self.position[locale] = [epoch, index]
        self.step += 1
        return locale, batch[self.rank :: self.world_size]

    def state_dict(self) -> dict:
        return {"step": self.step, "position": {k: list(v) for k, v in self.position.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.position = {k: [int(e), int(i)] for k, (e, i) in state["position"].items()}


@dataclass
class Batch:
    locale: str
    feats: torch.Tensor  # (B, T, F) float32, normalised
    feat_lens: torch.Tensor  # (B,) int64
    targets: torch.Tensor  # (sum U,) int64, concatenated token ids
    target_lens: torch.Tensor  # (B,) int64
    ids: list[str]

    def to(self, device) -> Batch:
        return Batch(self.locale, self.feats.to(device, non_blocking=True),
                     self.feat_lens.to(device), self.targets.to(device),
                     self.target_lens.to(device), self.ids)


def batch_features(feats: list[torch.Tensor], stats: FeatureStats | None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Utterances [(T_b, F)] -> a model batch: features (B, T, F) float32 and lengths (B,) int64.

    The one policy for every model input (training, evaluation, transcription): an utterance
    shorter than MIN_INPUT_FRAMES, the model's shortest input, is extended to it with the
    log-mel of silence (SILENCE_LOG_MEL) and counts those frames as real, so it still gives
    one output frame; then CMVN with `stats` (skipped when None), and the padding after each
    utterance's length is zeroed (the mean after CMVN).
    """
    padded = []
    for f in feats:
        f = torch.as_tensor(f).to(torch.float32)  # (T_b, F)
        if f.shape[0] < MIN_INPUT_FRAMES:
            f = torch.nn.functional.pad(f, (0, 0, 0, MIN_INPUT_FRAMES - f.shape[0]),
                                        value=SILENCE_LOG_MEL)  # (MIN_INPUT_FRAMES, F)
        padded.append(f)
    lens = torch.tensor([f.shape[0] for f in padded], dtype=torch.int64)  # (B,)
    x = torch.nn.utils.rnn.pad_sequence(padded, batch_first=True)  # (B, T, F)
    if stats is not None:
        x = stats.normalize(x)
    real = torch.arange(x.shape[1])[None, :] < lens[:, None]  # (B, T)
    return x * real[:, :, None], lens


def collate(data: LanguageData, indices, stats: FeatureStats | None) -> Batch:
    """Pad the utterances `indices` of `data` into one normalised batch (see batch_features)."""
    padded, lens = batch_features(
        [torch.from_numpy(np.asarray(data.features(int(i)), dtype=np.float32)) for i in indices],
        stats)  # (B, T, F), (B,)
    targets = [torch.tensor(data.targets[int(i)], dtype=torch.int64) for i in indices]
    return Batch(
        locale=data.locale,
        feats=padded,
        feat_lens=lens,
        targets=torch.cat(targets) if targets else torch.zeros(0, dtype=torch.int64),
        target_lens=torch.tensor([len(t) for t in targets], dtype=torch.int64),
        ids=[data.records[int(i)]["id"] for i in indices],
    )


def eval_batches(data: LanguageData, batch_frames: int, max_utterances: int = 128):
    """Length-sorted batches over a whole split, for validation and scoring."""
    return make_buckets(data.frames, batch_frames, max_utterances)


class TrainingBatches:
    """The batch source a Trainer draws from: the languages' training data, the sampler that
    picks each step's language and utterances, and collation with the run's statistics.

    Its position is the sampler's (`state_dict`), so a resumed run draws what an
    uninterrupted one would have. A benchmark may hand the Trainer any object with the same
    `next_batch`, `state_dict`, `load_state_dict` and `describe`.
    """

    def __init__(self, datasets: dict[str, LanguageData], config: DataConfig,
                 stats: FeatureStats | None, seed: int = 0, rank: int = 0, world_size: int = 1):
        self.datasets, self.stats = datasets, stats
        self.sampler = MultilingualSampler(datasets, config, seed=seed, rank=rank,
                                           world_size=world_size)

    def next_batch(self) -> Batch:
        """The next batch of this rank, on the CPU."""
        locale, indices = self.sampler.next_batch()
        return collate(self.datasets[locale], indices, self.stats)

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)

    def describe(self) -> dict:
        """Hours, utterances and skipped utterances per language, and the sampling probabilities."""
        return {"languages": {loc: {"train_hours": d.hours, "utterances": len(d),
                                    "skipped": d.skipped} for loc, d in self.datasets.items()},
                "sampling": self.sampler.language_probabilities()}
