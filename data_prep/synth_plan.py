"""What the synthetic corpus contains, decided before any audio exists: speakers, sentences,
clips and the TSV rows they become. Pure and seeded: the same arguments give the same plan.

Why plan first: the plan fixes every clip's name and recipe, so synthesis can run in any
order on any number of workers, resume after a crash, and still produce identical files.
Split sizes are reached with an estimate of each clip's duration (a per-language fit of
eSpeak's speaking time to the text length), off by ~1 % over a split, not per clip.

The release imitates what matters in Common Voice for an importer:
  * speakers (client_id) never cross train/dev/test, and dev/test voices use settings that
    never occur in training (held-out eSpeak variants, rates and pitches between the
    training grid points), so test scores measure generalisation to new speakers;
  * a few speakers record many clips, most record few (a Pitman-Yor speaker process);
  * dev/test sentences are unique and absent from train: a sentence's split is decided by a
    hash of its normalised text;
  * validated.tsv holds train, dev and test plus clips only it lists: legitimate extra
    training data, but also clips by dev/test speakers and clips repeating dev/test
    sentences, the leaks an importer building its pool from validated.tsv must remove;
  * invalidated.tsv (recordings that do not match their sentence) and other.tsv (not yet
    voted on) hold a few rows each.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field

import numpy as np

from asr.text import normalize_text
from data_prep.sentences import LOCALES, ZH_VOICE, SentenceMaker

VOICES = {"de": "de", "fr": "fr", "es": "es", "it": "it", "en": "en-us", "zh-CN": ZH_VOICE}
TRAIN_VARIANTS = ("", "+m1", "+m2", "+m3", "+m4", "+m6", "+f1", "+f2", "+f4")
HELDOUT_VARIANTS = ("+m5", "+m7", "+f3", "+f5")  # only dev/test speakers use these
TRAIN_RATES_WPM = tuple(range(120, 201, 10))  # eval speakers use the odd fives in between
TRAIN_PITCHES = tuple(range(20, 81, 10))
TRAIN_PITCH_RANGES = tuple(range(30, 81, 10))
AGES = ("", "", "teens", "twenties", "twenties", "thirties", "thirties", "fourties",
        "fifties", "sixties")
# speaking time ~ (a + b * letters) * 175 / rate, fitted on eSpeak NG 1.52 per language
_SECONDS_PER_LETTER = {"de": 0.064, "fr": 0.057, "es": 0.065, "it": 0.072, "en": 0.068,
                       "zh-CN": 0.244}
_SECONDS_CONSTANT = {"de": 0.28, "fr": 0.31, "es": 0.39, "it": 0.19, "en": 0.25, "zh-CN": 0.46}
_SPLIT_BUCKETS = {"dev": (0,), "test": (1,), "train": tuple(range(2, 10))}
EXTRA_SHARES = {  # clips per training clip, for the rows outside train/dev/test
    "eval_speaker": 0.05, "eval_sentence": 0.04, "validated_only": 0.10,
    "invalidated": 0.02, "other": 0.02,
}
MAX_EVAL_CLIPS_PER_SPEAKER = 6


def derive_seed(*parts) -> int:
    """A 63-bit seed from any parts (corpus seed, locale, clip name ...), stable across runs."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def rng_for(*parts) -> np.random.Generator:
    return np.random.default_rng(derive_seed(*parts))


@dataclass(frozen=True)
class Speaker:
    """A Common Voice contributor: one fixed voice and one fixed recording channel."""

    client_id: str  # 64 hex characters
    voice: str  # eSpeak voice with variant, e.g. "de+f2"
    rate_wpm: int
    pitch: int  # eSpeak's 0-100 scale
    pitch_range: int
    snr_db: float  # typical speech-to-noise ratio of the speaker's room and microphone
    rt60_seconds: float  # reverberation time of the room
    gain_db: float  # recording level relative to -26 dBFS speech
    tilt: float  # one-pole EQ: > 0 muffled (low-pass), < 0 thin (high-pass)
    noise_colour: float  # one-pole smoothing of the noise: 0 white ... 0.95 rumble
    gender: str
    age: str
    # the passband of a band-limited channel, e.g. a telephone line; None: the full band
    band_hz: tuple[float, float] | None = None


@dataclass(frozen=True)
class Clip:
    """One recording: its file name, its TSV rows and everything its audio depends on."""

    path: str  # bare file name in clips/
    tsvs: tuple[str, ...]  # the TSV files listing it, e.g. ("train", "validated")
    speaker: Speaker
    sentence: str  # the text in the TSV
    spoken: str  # the text eSpeak reads (differs only for invalidated clips)
    seed: int
    lead_seconds: float  # silence before and after the speech, as in real recordings
    tail_seconds: float
    up_votes: int
    down_votes: int
    estimated_seconds: float = field(compare=False)


def estimate_seconds(text: str, locale: str, rate_wpm: int) -> float:
    letters = sum(ch.isalnum() for ch in text)
    return (_SECONDS_CONSTANT[locale] + _SECONDS_PER_LETTER[locale] * letters) * 175 / rate_wpm


def _make_speaker(locale: str, seed: int, group: str, index: int, held_out: bool) -> Speaker:
    rng = rng_for(seed, locale, "speaker", group, index)
    client_id = hashlib.sha256(f"{seed}/{locale}/{group}/{index}".encode()).hexdigest()
    if held_out:  # a setting combination no training speaker has
        variant = str(rng.choice(HELDOUT_VARIANTS if rng.random() < 0.6 else TRAIN_VARIANTS))
        rate = int(rng.choice(TRAIN_RATES_WPM[:-1])) + 5
        pitch = int(rng.choice(TRAIN_PITCHES[:-1])) + 5
        pitch_range = int(rng.choice(TRAIN_PITCH_RANGES[:-1])) + 5
    else:
        variant = str(rng.choice(TRAIN_VARIANTS))
        rate = int(rng.choice(TRAIN_RATES_WPM))
        pitch = int(rng.choice(TRAIN_PITCHES))
        pitch_range = int(rng.choice(TRAIN_PITCH_RANGES))
    gender = {"m": "male_masculine", "f": "female_feminine"}.get(variant[1:2], "male_masculine")
    return Speaker(
        client_id=client_id, voice=VOICES[locale] + variant, rate_wpm=rate, pitch=pitch,
        pitch_range=pitch_range, snr_db=round(float(rng.uniform(12, 35)), 2),
        rt60_seconds=round(float(rng.uniform(0.05, 0.5)), 3),
        gain_db=round(float(rng.uniform(-10, 4)), 2), tilt=round(float(rng.uniform(-0.5, 0.6)), 3),
        noise_colour=round(float(rng.choice([0.0, 0.5, 0.9, 0.97])), 2),
        gender=gender if rng.random() < 0.7 else "", age=str(rng.choice(AGES)),
    )


class _SpeakerPool:
    """Pitman-Yor draws: new speakers keep arriving, a few existing ones take most clips."""

    def __init__(self, locale, seed, group, held_out, discount, concentration, max_clips=None):
        self.args = (locale, seed, group, held_out)
        self.rng = rng_for(seed, locale, "speaker-draws", group)
        self.discount, self.concentration, self.max_clips = discount, concentration, max_clips
        self.speakers: list[Speaker] = []
        self.counts: list[int] = []

    def draw(self) -> Speaker:
        n, k = sum(self.counts), len(self.counts)
        p_new = (self.concentration + self.discount * k) / (n + self.concentration)
        if k == 0 or self.rng.random() < p_new:
            return self._new()
        weights = np.array(self.counts, dtype=float) - self.discount
        i = int(self.rng.choice(k, p=weights / weights.sum()))
        if self.max_clips and self.counts[i] >= self.max_clips:
            return self._new()
        self.counts[i] += 1
        return self.speakers[i]

    def _new(self) -> Speaker:
        locale, seed, group, held_out = self.args
        self.speakers.append(_make_speaker(locale, seed, group, len(self.speakers), held_out))
        self.counts.append(1)
        return self.speakers[-1]


class _SentenceStream:
    """Unique sentences whose normalised text hashes into this stream's buckets."""

    def __init__(self, maker: SentenceMaker, seed: int, name: str, buckets: tuple[int, ...]):
        self.maker, self.buckets = maker, buckets
        self.rng = rng_for(seed, maker.locale, "sentences", name)
        self.seen: set[str] = set()

    def next(self) -> str:
        for _ in range(100_000):
            text = self.maker(self.rng)
            key = sentence_key(text, self.maker.locale)
            if key not in self.seen and bucket(key) in self.buckets:
                self.seen.add(key)
                return text
        raise RuntimeError(f"{self.maker.locale}: ran out of new sentences; the grammar's "
                           "sentence space is exhausted (ask for fewer hours)")


def sentence_key(text: str, locale: str) -> str:
    """What makes two sentences 'the same' for leakage: their normalised text."""
    return normalize_text(text, locale)


def bucket(key: str) -> int:
    return hashlib.sha256(key.encode()).digest()[0] % 10


def _clip(locale, seed, tsvs, speaker, sentence, spoken, names, votes) -> Clip:
    clip_seed = derive_seed(seed, locale, speaker.client_id, sentence, spoken, tsvs[0])
    rng = np.random.default_rng(clip_seed)
    lead, tail = round(float(rng.uniform(0.2, 0.9)), 3), round(float(rng.uniform(0.3, 1.2)), 3)
    number = clip_seed % 90_000_000 + 10_000_000  # 8 digits, like recent releases
    while number in names:  # a hash collision: move on deterministically
        number = number % 90_000_000 + 10_000_001
    names.add(number)
    up, down = votes(rng)
    return Clip(
        path=f"common_voice_{locale}_{number}.mp3", tsvs=tsvs, speaker=speaker,
        sentence=sentence, spoken=spoken, seed=clip_seed, lead_seconds=lead,
        tail_seconds=tail, up_votes=up, down_votes=down,
        estimated_seconds=lead + tail + estimate_seconds(spoken, locale, speaker.rate_wpm),
    )


def _validated_votes(rng) -> tuple[int, int]:
    return int(rng.choice([2, 2, 2, 3, 4])), int(rng.choice([0, 0, 0, 1]))


@dataclass(frozen=True)
class Channel:
    """A recording channel that every speaker of a locale shares on top of their own: what
    makes one language's input differ from the others' (the sharing-depth study's variant)."""

    band_hz: tuple[float, float]  # passband
    snr_db: tuple[float, float]  # each speaker's typical SNR, mapped from the usual 12-35 dB


# One row per channel: its whole meaning.
CHANNELS = {
    # narrowband telephone speech (ITU-T G.712's 300-3400 Hz) over a noisier line
    "telephone": Channel(band_hz=(300.0, 3400.0), snr_db=(5.0, 20.0)),
}
_USUAL_SNR_DB = (12.0, 35.0)  # _make_speaker's draw range


def with_channel(speaker: Speaker, name: str) -> Speaker:
    """The same voice and room through channel `name`: the SNR drawn for the speaker mapped
    linearly into the channel's range, and its passband; everything else unchanged."""
    try:
        ch = CHANNELS[name]
    except KeyError:
        raise ValueError(f"unknown channel {name!r}; known: {', '.join(CHANNELS)}") from None
    lo, hi = _USUAL_SNR_DB
    share = (speaker.snr_db - lo) / (hi - lo)
    return dataclasses.replace(speaker, band_hz=ch.band_hz,
                               snr_db=round(ch.snr_db[0] + share * (ch.snr_db[1] - ch.snr_db[0]), 2))


def plan_locale(locale: str, train_hours: float, eval_hours: float, seed: int = 0,
                zh_inventory_size: int = 300, channel: str | None = None) -> list[Clip]:
    """Every clip of one locale's release, in TSV row order; with `channel` (a CHANNELS name),
    the same clips (texts, voices, seeds) recorded through that channel."""
    if locale not in LOCALES:
        raise ValueError(f"unknown locale {locale!r}; supported: {', '.join(LOCALES)}")
    maker = SentenceMaker(locale, zh_inventory_size)
    names: set[int] = set()
    clips: list[Clip] = []
    pools = {}
    for split, hours in (("train", train_hours), ("dev", eval_hours), ("test", eval_hours)):
        held_out = split != "train"
        pools[split] = _SpeakerPool(locale, seed, split, held_out,
                                    discount=0.6 if held_out else 0.4,
                                    concentration=8.0 if held_out else 3.0,
                                    max_clips=MAX_EVAL_CLIPS_PER_SPEAKER if held_out else None)
        stream = _SentenceStream(maker, seed, split, _SPLIT_BUCKETS[split])
        total = 0.0
        while total < hours * 3600:
            text = stream.next()
            clip = _clip(locale, seed, (split, "validated"), pools[split].draw(), text, text,
                         names, _validated_votes)
            clips.append(clip)
            total += clip.estimated_seconds
    n_train = sum(c.tsvs[0] == "train" for c in clips)
    clips += _extra_clips(locale, seed, maker, clips, pools, names, n_train)
    if channel is not None:
        clips = [dataclasses.replace(c, speaker=with_channel(c.speaker, channel)) for c in clips]
    return clips


def _extra_clips(locale, seed, maker, clips, pools, names, n_train) -> list[Clip]:
    rng = rng_for(seed, locale, "extras")
    count = {kind: max(1, round(share * n_train)) if n_train else 0
             for kind, share in EXTRA_SHARES.items()}
    eval_speakers = pools["dev"].speakers + pools["test"].speakers
    eval_sentences = [c.sentence for c in clips if c.tsvs[0] in ("dev", "test")]
    if not eval_speakers:
        count["eval_speaker"] = count["eval_sentence"] = 0
    fresh = _SentenceStream(maker, seed, "validated-extra", _SPLIT_BUCKETS["train"])
    newcomers = _SpeakerPool(locale, seed, "validated-extra", False, 0.4, 3.0)
    extras = []
    for _ in range(count["eval_speaker"]):  # a dev/test voice reading a new sentence
        text = fresh.next()
        extras.append(_clip(locale, seed, ("validated",), eval_speakers[
            int(rng.integers(len(eval_speakers)))], text, text, names, _validated_votes))
    for _ in range(count["eval_sentence"]):  # a new voice reading a dev/test sentence
        text = eval_sentences[int(rng.integers(len(eval_sentences)))]
        extras.append(_clip(locale, seed, ("validated",), newcomers.draw(), text, text, names,
                            _validated_votes))
    for _ in range(count["validated_only"]):
        text = fresh.next()
        extras.append(_clip(locale, seed, ("validated",), newcomers.draw(), text, text, names,
                            _validated_votes))
    for _ in range(count["invalidated"]):  # the recording reads another sentence
        text, other_text = fresh.next(), fresh.next()
        extras.append(_clip(locale, seed, ("invalidated",), newcomers.draw(), text, other_text,
                            names, lambda r: (int(r.integers(0, 2)), int(r.integers(2, 4)))))
    for _ in range(count["other"]):
        text = fresh.next()
        extras.append(_clip(locale, seed, ("other",), newcomers.draw(), text, text, names,
                            lambda r: (int(r.integers(0, 2)), 0)))
    return extras
