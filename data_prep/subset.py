"""Pick N hours of training data: seeded, nested, and spread over as many speakers as possible.

The experiments plot error rate against hours of target-language data, so the subsets for
0.2 h, 0.5 h, 1 h ... must differ only in size, never in which speakers they happen to draw:
otherwise the curve measures speaker luck as much as data quantity. One rule gives it: fix a
seeded order of all utterances and take a prefix of it, so a smaller target's subset is always
contained in a larger one's.

The order is round-robin over speakers: speakers shuffled, each speaker's utterances shuffled,
then one utterance of every speaker, then a second of every speaker who has one, and so on.
Any prefix thus holds as many speakers as it can, each with as many utterances as any other
(give or take one, until a speaker runs out), and the number of speakers grows with the
hours. The earlier rule, whole speakers one after another, gave single-speaker subsets on a
heavy-tailed speaker list like Common Voice's (the transfer sweep's 0.05-0.5 h points held
one speaker), so seed-to-seed spread measured which speaker was drawn.
"""

from __future__ import annotations

import itertools
import random
import warnings
from collections.abc import Mapping, Sequence

SECONDS_PER_HOUR = 3600.0


def seeded_order(records: Sequence[Mapping], seed: int) -> list[int]:
    """Indices of `records` in the fixed selection order for `seed`: round-robin over
    speakers (module docstring).

    Speakers are sorted by name and utterances by id before their shuffles, so the order
    depends on the seed and the records' content, not on the order the caller read them in.
    """
    by_speaker: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        by_speaker.setdefault(str(rec["speaker"]), []).append(i)
    rng = random.Random(seed)
    speakers = sorted(by_speaker)
    rng.shuffle(speakers)
    queues = []
    for speaker in speakers:
        # sorted() is stable: records without an id keep their input order
        utterances = sorted(by_speaker[speaker], key=lambda i: str(records[i].get("id", "")))
        rng.shuffle(utterances)
        queues.append(utterances)
    order: list[int] = []
    for round_ in itertools.zip_longest(*queues):
        order.extend(i for i in round_ if i is not None)
    return order


def prefix_length(durations_seconds: Sequence[float], target_seconds: float) -> int:
    """How many leading utterances bring the total closest to `target_seconds`.

    Takes every utterance that fits, then the next one too if that lands nearer the target
    than stopping short; so the total is within one utterance of the target. The length never
    decreases as the target grows, which is what keeps the subsets nested.
    """
    total_seconds = 0.0
    for n, seconds in enumerate(durations_seconds):
        if total_seconds + seconds > target_seconds:
            overshoot = total_seconds + seconds - target_seconds
            shortfall = target_seconds - total_seconds
            return n + 1 if overshoot < shortfall else n
        total_seconds += seconds
    return len(durations_seconds)


def select_hours(records: Sequence[Mapping], hours: float, seed: int) -> list:
    """A reproducible subset of `records` totalling about `hours` of audio.

    Each record needs `speaker` and `duration` (seconds); `id` is used for ordering when
    present. The result keeps the input order. For one seed, the subset for fewer hours is
    contained in the subset for more. When `hours` exceeds what `records` hold, all of them
    are returned with a warning.
    """
    if hours < 0:
        raise ValueError(f"hours must be >= 0, got {hours}")
    pool_seconds = sum(float(r["duration"]) for r in records)
    target_seconds = hours * SECONDS_PER_HOUR
    if target_seconds > pool_seconds:
        warnings.warn(
            f"asked for {hours:g} h but the training pool holds only "
            f"{pool_seconds / SECONDS_PER_HOUR:.3f} h; taking all of it",
            stacklevel=2,
        )
        return list(records)
    order = seeded_order(records, seed)
    n = prefix_length([float(records[i]["duration"]) for i in order], target_seconds)
    chosen = set(order[:n])
    return [rec for i, rec in enumerate(records) if i in chosen]


def total_hours(records: Sequence[Mapping]) -> float:
    """Sum of the records' `duration` (seconds), in hours."""
    return sum(float(r["duration"]) for r in records) / SECONDS_PER_HOUR
