"""Hours selection: nested across targets, reproducible per seed, close to the target."""

from __future__ import annotations

import itertools
import random
import warnings

import pytest

from data_prep.subset import prefix_length, seeded_order, select_hours, total_hours

HOUR_VALUES = [0.0, 0.01, 0.05, 0.1, 0.2, 0.35, 0.5, 0.8, 1.0]
SEEDS = [0, 1, 7, 1234]


def fake_records(n_speakers: int = 30, seed: int = 99) -> list[dict]:
    """About 2 h over speakers of very different sizes, utterances of 1-15 s."""
    rng = random.Random(seed)
    records = []
    for s in range(n_speakers):
        for u in range(rng.randint(1, 60)):
            records.append({"id": f"spk{s:02d}_utt{u:03d}", "speaker": f"spk{s:02d}",
                            "duration": round(rng.uniform(1.0, 15.0), 3)})
    rng.shuffle(records)
    return records


def ids(records) -> set[str]:
    return {r["id"] for r in records}


@pytest.fixture(scope="module")
def records():
    recs = fake_records()
    assert total_hours(recs) > max(HOUR_VALUES)
    return recs


@pytest.mark.parametrize("seed", SEEDS)
def test_subsets_are_nested(records, seed):
    subsets = [ids(select_hours(records, h, seed)) for h in HOUR_VALUES]
    for smaller, larger in itertools.pairwise(subsets):
        assert smaller <= larger


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("hours", HOUR_VALUES)
def test_total_within_one_utterance_of_target(records, hours, seed):
    chosen = select_hours(records, hours, seed)
    longest_seconds = max(r["duration"] for r in records)
    assert abs(total_hours(chosen) - hours) * 3600 <= longest_seconds + 1e-9


def test_reproducible_for_a_seed_and_independent_of_input_order(records):
    a = select_hours(records, 0.3, seed=5)
    b = select_hours(list(reversed(records)), 0.3, seed=5)
    assert ids(a) == ids(b)
    assert ids(a) == ids(select_hours(records, 0.3, seed=5))
    assert any(ids(select_hours(records, 0.3, seed=s)) != ids(a) for s in range(6, 12))


def test_result_keeps_input_order(records):
    chosen = select_hours(records, 0.4, seed=2)
    position = {r["id"]: i for i, r in enumerate(records)}
    assert [position[r["id"]] for r in chosen] == sorted(position[r["id"]] for r in chosen)


@pytest.mark.parametrize("seed", SEEDS)
def test_speakers_share_each_subset_evenly(records, seed):
    """Round-robin: in every subset, speakers who still have utterances left hold as many as
    any other speaker, give or take one."""
    per_speaker: dict[str, int] = {}
    for r in records:
        per_speaker[r["speaker"]] = per_speaker.get(r["speaker"], 0) + 1
    for hours in HOUR_VALUES[1:]:
        chosen: dict[str, int] = {}
        for r in select_hours(records, hours, seed):
            chosen[r["speaker"]] = chosen.get(r["speaker"], 0) + 1
        most = max(chosen.values())
        assert all(n >= most - 1 or n == per_speaker[s] for s, n in chosen.items())
        # and nobody is left out while others have two or more
        assert most <= 1 or set(chosen) == set(per_speaker)


def heavy_tailed_records(n_speakers: int = 200, seed: int = 5) -> list[dict]:
    """Common Voice's shape: speaker sizes Zipf-like, the top speaker holding a large share."""
    rng = random.Random(seed)
    records = []
    for s in range(n_speakers):
        for u in range(max(1, int(400 / (s + 1) ** 1.1))):
            records.append({"id": f"s{s:03d}_{u:03d}", "speaker": f"s{s:03d}",
                            "duration": round(rng.uniform(2.0, 7.0), 3)})
    return records


@pytest.mark.parametrize("seed", SEEDS)
def test_heavy_tailed_speakers_small_subsets_hold_many_voices(seed):
    records = heavy_tailed_records()
    top_share = max(sum(r["speaker"] == s for r in records) for s in {"s000"}) / len(records)
    assert top_share > 0.15  # the shape that gave single-speaker subsets
    speakers = []
    for hours in (0.05, 0.1, 0.5, 1.0):
        chosen = select_hours(records, hours, seed)
        counts: dict[str, int] = {}
        for r in chosen:
            counts[r["speaker"]] = counts.get(r["speaker"], 0) + 1
        speakers.append(len(counts))
        assert max(counts.values()) / len(chosen) <= 0.1  # no speaker dominates
    assert speakers[0] >= 30 and speakers == sorted(speakers)  # grows with the hours


def test_more_hours_than_the_pool_takes_all_and_warns(records):
    with pytest.warns(UserWarning, match="taking all"):
        chosen = select_hours(records, 100.0, seed=0)
    assert ids(chosen) == ids(records)


def test_exact_pool_size_does_not_warn():
    recs = [{"id": str(i), "speaker": "a", "duration": 1800.0} for i in range(2)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(select_hours(recs, 1.0, seed=0)) == 2


def test_negative_hours_rejected(records):
    with pytest.raises(ValueError, match="hours"):
        select_hours(records, -0.1, seed=0)


def test_seeded_order_is_round_robin_over_speakers(records):
    order = seeded_order(records, seed=3)
    assert sorted(order) == list(range(len(records)))
    n_speakers = len({r["speaker"] for r in records})
    first_round = [records[i]["speaker"] for i in order[:n_speakers]]
    assert len(set(first_round)) == n_speakers  # every speaker once before anyone twice


@pytest.mark.parametrize(
    ("durations", "target", "expected"),
    [([], 5.0, 0), ([2.0, 2.0, 2.0], 0.0, 0), ([2.0, 2.0, 2.0], 4.0, 2),
     ([2.0, 2.0, 2.0], 4.9, 2), ([2.0, 2.0, 2.0], 5.1, 3), ([2.0, 2.0, 2.0], 99.0, 3)],
)
def test_prefix_length(durations, target, expected):
    assert prefix_length(durations, target) == expected
