"""Language identification (asr/lid.py): pooling, the fit, held-out speakers, the record that
gates `--lang auto`, `asr lid-fit`, and a tiny two-language model that really tells its
languages apart on unseen speakers."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
import torch

from asr.cli import main as asr
from asr.lid import (
    MIN_AUTO_ACCURACY,
    LanguageIDError,
    LidRecord,
    check_auto,
    fit_head,
    language_splits,
    record_of,
    recorded_otherwise,
    spread_over_speakers,
)
from asr.model.heads import LanguageIDHead, pooled_statistics


def test_pooled_statistics_ignore_padding():
    x = torch.randn(1, 7, 3)
    padded = torch.cat([x, torch.full((1, 5, 3), 9.0)], dim=1)
    mask = torch.tensor([[True] * 7 + [False] * 5])
    got = pooled_statistics(padded, mask)
    torch.testing.assert_close(got, torch.cat([x.mean(1), x.std(1, unbiased=False)], dim=-1))


def test_fit_head_separates_languages_and_weighs_them_equally():
    """Three Gaussian clouds, one of them 20x rarer: the fitted head finds all three, on new
    draws, and an unfitted (reset) head has no opinion."""
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 8, generator=g) * 3
    sizes = [400, 400, 20]
    x = torch.cat([centres[k] + torch.randn(n, 8, generator=g) for k, n in enumerate(sizes)])
    y = torch.cat([torch.full((n,), k) for k, n in enumerate(sizes)])
    head = LanguageIDHead(8, 3)
    fit_head(head, x, y, 3)
    new = torch.cat([centres[k] + torch.randn(200, 8, generator=g) for k in range(3)])
    pred = head(new).argmax(1).view(3, 200)
    assert all((pred[k] == k).float().mean() > 0.95 for k in range(3))
    head.reset()
    assert torch.count_nonzero(head(new)) == 0
    assert not any(p.requires_grad for p in head.parameters())


def test_recorded_otherwise_changes_level_tilt_and_formants_only(monkeypatch):
    """The fit's augmentation: per utterance a level, a tilt and a frequency warp within their
    bounds, reproducible from the generator, nothing else (no bound: the input itself)."""
    import asr.lid as lid
    from asr.features import FeatureStats

    n = 8
    stats = FeatureStats(mean=np.linspace(-5, 0, n), std=np.full(n, 2.0), frames=100)
    feats = torch.randn(3, 20, n)
    a = recorded_otherwise(feats, stats, torch.Generator().manual_seed(1))
    assert a.shape == feats.shape and not torch.allclose(a, feats)
    assert torch.equal(a, recorded_otherwise(feats, stats, torch.Generator().manual_seed(1)))
    for name in ("GAIN_LN", "TILT_LN", "WARP_BINS"):
        monkeypatch.setattr(lid, name, 0.0)
    monkeypatch.setattr(lid, "NOISE_SNR_DB", (0.0, 0.0))
    assert torch.allclose(recorded_otherwise(feats, stats, torch.Generator()), feats, atol=1e-5)
    monkeypatch.setattr(lid, "GAIN_LN", 1.5)  # a level change alone: a constant per utterance
    shift = (recorded_otherwise(feats, stats, torch.Generator()) - feats) * 2.0  # raw units
    per_utt = shift.reshape(3, -1)
    assert torch.allclose(per_utt, per_utt[:, :1].expand_as(per_utt), atol=1e-4)
    assert (per_utt[:, 0].abs() <= 1.5).all()


def test_spread_over_speakers_takes_every_speaker_first():
    records = [{"speaker": "a"}] * 10 + [{"speaker": "b"}, {"speaker": "c"}]
    picked = spread_over_speakers(records, 3)
    assert {records[i]["speaker"] for i in picked} == {"a", "b", "c"}
    assert sorted(spread_over_speakers(records, 100)) == list(range(12))


class _Data:
    def __init__(self, speakers):
        self.records = [{"speaker": s} for s in speakers]

    def __len__(self):
        return len(self.records)


def test_without_dev_whole_speakers_are_held_out():
    data = _Data([f"s{i % 40}" for i in range(400)])
    split = language_splits(data, None)
    fit, held = set(split.fit[1]), set(split.held_out[1])
    assert split.held_out_from == "train speakers" and held and not fit & held
    fit_spk = {data.records[i]["speaker"] for i in fit}
    held_spk = {data.records[i]["speaker"] for i in held}
    assert not fit_spk & held_spk and 0.05 < len(held_spk) / 40 < 0.45
    one = language_splits(_Data(["only"] * 10), None)  # one speaker: utterances held out
    assert one.held_out[1] and not set(one.fit[1]) & set(one.held_out[1])


def test_auto_needs_a_good_recorded_accuracy():
    langs = ["de", "zh-CN"]
    check_auto(["de"], None, "m")  # one language: nothing to identify
    with pytest.raises(LanguageIDError, match="never fitted.*--lang with one of de, zh-CN"):
        check_auto(langs, None, "m.safetensors")

    def rec(de):
        return LidRecord({"de": de, "zh-CN": 1.0}, {"de": 50, "zh-CN": 50},
                         {"de": "dev", "zh-CN": "dev"}, {"de": 100, "zh-CN": 100})

    with pytest.raises(LanguageIDError, match="only 61% of held-out de"):
        check_auto(langs, rec(0.61), "m")
    check_auto(langs, rec(MIN_AUTO_ACCURACY), "m")
    assert LidRecord.from_dict(rec(0.5).to_dict()) == rec(0.5)
    assert record_of({"lid": None}) is None and record_of({"lid": rec(0.5).to_dict()}) == rec(0.5)


def test_unfitted_model_refuses_auto_and_lid_fit_fixes_it(tiny_run, fake_data, tmp_path, capsys):
    """A fine-tuned model whose run lacked the other language's data has no language ID; the
    CLI says so in one line, and `asr lid-fit` with data of both languages restores it."""
    from asr.package import load_package_model, save_model

    model, pkg = load_package_model(tiny_run)
    assert record_of(pkg.meta) is not None  # training fitted it
    model.lid.reset()
    unfitted = tmp_path / "unfitted.safetensors"
    save_model(unfitted, model, pkg.config, pkg.tokenizers, pkg.stats)
    clip = json.loads((fake_data / "de" / "test.jsonl").read_text().splitlines()[0])["audio"]
    capsys.readouterr()
    assert asr(["transcribe", str(clip), "--model", str(unfitted), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "never fitted" in err and "--lang" in err and "asr lid-fit" in err
    assert len(err.strip().splitlines()) == 1
    refit = tmp_path / "refit.safetensors"
    assert asr(["lid-fit", "--model", str(unfitted), "--data", str(fake_data), "--out", str(refit)]) == 0
    assert set(record_of(load_package_model(refit)[1].meta).accuracy) == {"de", "zh-CN"}
    only_zh = tmp_path / "only_zh"
    shutil.copytree(fake_data, only_zh, ignore=shutil.ignore_patterns("de"))
    assert asr(["lid-fit", "--model", str(unfitted), "--data", str(only_zh)]) == 2
    assert "no prepared training data for de" in capsys.readouterr().err


def test_fine_tuning_on_one_language_keeps_the_start_encoder_for_language_id(
        tiny_run, fake_data, tmp_path):
    """Fine-tuned on zh-CN alone, a de + zh-CN model keeps its start's front end and shared
    blocks, frozen, for language ID; its own blocks move, its LID is fitted on both languages;
    the file reloads with the reference. Fine-tuning on every language, or a frozen encoder,
    keeps none. A train state saved without the reference still resumes."""
    from asr.checkpoint import load_package, save_package
    from asr.config import load_run_config
    from asr.package import load_package_model
    from asr.train import Trainer

    start, _ = load_package_model(tiny_run)
    cfg = load_run_config("tiny", ["train.max_steps=12", "train.valid_every=6"])
    Trainer.from_data(cfg, fake_data, ["zh-CN"], tmp_path / "ft", init=tiny_run,
                      progress=False).fit()
    tuned, pkg = load_package_model(tmp_path / "ft")
    assert tuned.lid_reference is not None and pkg.meta["lid_reference"] is True
    for k, v in start.shared.state_dict().items():
        torch.testing.assert_close(tuned.lid_reference.shared.state_dict()[k], v)
    assert any(not torch.equal(v, start.shared.state_dict()[k])
               for k, v in tuned.shared.state_dict().items())
    assert set(record_of(pkg.meta).accuracy) == {"de", "zh-CN"}
    assert tuned.lid.proj.in_features == 2 * start.lid.proj.in_features
    for locales, freeze in ((["de", "zh-CN"], ()), (["zh-CN"], ("encoder",))):
        trainer = Trainer.from_data(cfg, fake_data, locales, tmp_path / f"x{len(locales)}",
                                    init=tiny_run, freeze=freeze, progress=False)
        assert trainer.model.lid_reference is None
    # a state from before the reference existed: no lid_reference.*, a LID head of the old size
    state = tmp_path / "ft" / "train_state.safetensors"
    tensors, meta = load_package(state)
    old = {k: v for k, v in tensors.items() if not k.startswith("model.lid_reference.")}
    old |= {f"model.lid.{k}": v for k, v in start.lid.state_dict().items()}
    save_package(state, old, meta)
    resumed = Trainer.from_data(load_run_config("tiny", ["train.max_steps=14", "train.valid_every=6"]),
                                fake_data, ["zh-CN"], tmp_path / "ft", init=tiny_run, resume=True,
                                progress=False)
    assert resumed.step == 12
    for k, v in start.shared.state_dict().items():
        torch.testing.assert_close(resumed.model.lid_reference.shared.state_dict()[k], v)


def test_lid_fit_keeps_a_reference_for_a_model_fine_tuned_before(tiny_run, fake_data, tmp_path,
                                                                 capsys):
    """`asr lid-fit --reference START` gives a fine-tuned model file without a reference the
    start's path for LID; a second reference, or a model normalised otherwise, is refused."""
    from asr.package import load_package_model, save_model

    model, pkg = load_package_model(tiny_run)
    out = tmp_path / "with_ref.safetensors"
    assert asr(["lid-fit", "--model", str(tiny_run), "--data", str(fake_data), "--out", str(out),
                "--reference", str(tiny_run)]) == 0
    kept, kept_pkg = load_package_model(out)
    assert kept.lid_reference is not None and set(record_of(kept_pkg.meta).accuracy) == {"de", "zh-CN"}
    capsys.readouterr()
    assert asr(["lid-fit", "--model", str(out), "--data", str(fake_data), "--reference",
                str(tiny_run)]) == 2
    assert "already keeps a LID reference" in capsys.readouterr().err
    other = tmp_path / "other_stats.safetensors"
    pkg.stats.mean = pkg.stats.mean + 1.0
    save_model(other, model, pkg.config, pkg.tokenizers, pkg.stats, lid=pkg.meta["lid"])
    assert asr(["lid-fit", "--model", str(tiny_run), "--data", str(fake_data), "--out",
                str(tmp_path / "x.safetensors"), "--reference", str(other)]) == 2
    assert "feature statistics differ" in capsys.readouterr().err


def test_evaluate_writes_a_confusion_matrix(tiny_run, fake_data, tmp_path, capsys):
    assert asr(["evaluate", "--model", str(tiny_run), "--data", str(fake_data), "--out",
                str(tmp_path), "--no-progress"]) == 0
    report = json.loads((tmp_path / "eval_test.json").read_text())
    for loc, r in report["languages"].items():
        assert sum(r["lid_predicted"].values()) == r["utterances"]
        assert r["lid_accuracy"] == r["lid_predicted"][loc] / r["utterances"]
    assert "Confusion (rows: spoken" in (tmp_path / "eval_test.md").read_text()
    assert (tmp_path / "eval_test_lid.png").stat().st_size > 1000


@pytest.fixture(scope="module")
def two_languages(tmp_path_factory):
    """Synthetic de and zh-CN (9 minutes each, held-out voices in dev and test), prepared."""
    from asr.prepare import prepare_data
    from data_prep.release import prepare_manifests
    from data_prep.synth import synthesize_corpus

    root = tmp_path_factory.mktemp("lid2")
    locales = ["de", "zh-CN"]
    synthesize_corpus(root / "cv", locales=locales, hours={"de": 0.15, "zh-CN": 0.15},
                      eval_hours=0.04, seed=0, workers=2, zh_inventory_size=60, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepare_manifests(root / "cv", locales, root / "data", progress=False)
        prepare_data(root / "data", locales, workers=2, progress=False)
    return root / "data"


@pytest.mark.slow
def test_a_tiny_two_language_model_identifies_both_on_test_speakers(two_languages, tmp_path):
    """The tiny config, 600 updates on 9 minutes of each language: language ID on test speakers
    (voices that training never heard) is right at least 90% of the time in each. Measured
    (AMD EPYC, 1 thread): de 97.2%, zh-CN 93.9% (36 and 33 utterances); cross-validated at fit
    94.1 / 93.9%. With 5 minutes and 300 updates, and a head fitted on training speakers
    alone, it was 74 / 71%: the fit needs the held-out speakers' voices (asr/lid.py)."""
    from asr.config import load_run_config
    from asr.evaluate import evaluate_model
    from asr.train import Trainer

    cfg = load_run_config("tiny", ["train.max_steps=600", "train.valid_every=100"])
    summary = Trainer.from_data(cfg, two_languages, ["de", "zh-CN"], tmp_path / "run",
                                progress=False).fit()
    report = evaluate_model(tmp_path / "run", two_languages, split="test")
    lid = {loc: r["lid_accuracy"] for loc, r in report["languages"].items()}
    print(f"LID on test speakers: {lid}; recorded at fit: {summary['language_id']['accuracy']}")
    assert all(r["utterances"] >= 10 for r in report["languages"].values())
    assert min(lid.values()) >= 0.9
    assert np.isclose(sum(report["languages"]["de"]["lid_predicted"].values()),
                      report["languages"]["de"]["utterances"])
