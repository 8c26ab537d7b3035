import importlib.util
import json
import shutil

import jiwer
import numpy as np
import pytest
import torch

from asr.cli import main
from asr.config import load_run_config
from asr.data import LanguageData, collate
from asr.decode import DecodeConfig, Decoder
from asr.evaluate import (
    decode_split,
    evaluate_model,
    format_report,
    score_locale,
    transcribe_split,
)
from asr.metrics import bootstrap_ci, score_texts
from asr.package import load_package_model
from asr.prepare import feature_dir
from asr.train import Trainer

needs_beam_search = pytest.mark.skipif(
    importlib.util.find_spec("flashlight") is None, reason="beam search needs flashlight-text")
PAIRS = [("das ist gut", "das ist gut"), ("ein haus", "ein maus"), ("le chat noir", "le chat"),
         ("uno dos tres", "uno tres"), ("cuatro", "cuatro cinco seis"), ("a b c d", "a x c d e")]


def rows(pairs, locale_prefix="u"):
    return [{"id": f"{locale_prefix}{i}", "reference": r, "hypothesis": h, "duration": 1.8}
            for i, (r, h) in enumerate(pairs)]


def test_numbers_equal_jiwer():
    refs, hyps = zip(*PAIRS, strict=True)
    report = score_locale("de", rows(PAIRS))
    words = jiwer.process_words(list(refs), list(hyps))
    assert report["wer"]["rate"] == pytest.approx(words.wer)
    assert (report["wer"]["substitutions"], report["wer"]["deletions"],
            report["wer"]["insertions"]) == (words.substitutions, words.deletions, words.insertions)
    strip = [r.replace(" ", "") for r in refs], [h.replace(" ", "") for h in hyps]
    assert report["cer"]["rate"] == pytest.approx(jiwer.cer(*strip))
    assert report["utterances"] == 6 and report["hours"] == pytest.approx(6 * 1.8 / 3600)
    words = score_texts(list(refs), list(hyps), "de")["wer"]
    errs, units = words["per_utterance_errors"], words["per_utterance_units"]
    assert errs == [0, 1, 1, 1, 2, 2]
    assert sum(errs) == report["wer"]["errors"] == (report["wer"]["substitutions"] + report["wer"]["deletions"]
                                                    + report["wer"]["insertions"])
    assert sum(units) == report["wer"]["reference_units"]
    assert "per_utterance_errors" not in report["wer"] and "ser" not in report


def test_worst_utterances_and_primary_metric():
    report = score_locale("de", rows(PAIRS))
    assert report["primary_metric"] == "wer" and report["wer"]["meaningful"]
    worst = report["worst"]
    assert [w["errors"] for w in worst] == sorted((w["errors"] for w in worst), reverse=True)
    assert worst[0]["reference"] in ("a b c d", "cuatro") and all(w["errors"] > 0 for w in worst)
    zh = score_locale("zh-CN", rows([("天地人", "天地"), ("山水", "山水")]))
    assert zh["primary_metric"] == "cer" and not zh["wer"]["meaningful"]
    assert zh["cer"]["rate"] == pytest.approx(1 / 5)
    assert zh["ser"]["rate"] == pytest.approx(1 / 5) and zh["ser"]["unit"] == "toned syllable"
    assert "not meaningful" in format_report({
        "model": "m", "data": "d", "split": "test", "languages": {"zh-CN": zh | {"failed": []}},
        "decode": {"beam_size": 1, "lm_paths": {}}, "bootstrap": {"resamples": 1000, "seed": 0}})
    ja = score_locale("ja", rows([("こんにちは", "こんにちわ")]))
    assert ja["primary_metric"] == "cer" and not ja["wer"]["meaningful"] and "ser" not in ja


def test_bootstrap_contains_estimate_and_narrows():
    rng = np.random.default_rng(0)
    units = rng.integers(3, 15, size=40)
    errors = rng.binomial(units, 0.2)
    rate = errors.sum() / units.sum()
    lo, hi = bootstrap_ci(errors, units, seed=1)
    assert lo <= rate <= hi
    lo10, hi10 = bootstrap_ci(np.tile(errors, 10), np.tile(units, 10), seed=1)
    assert lo10 <= rate <= hi10 and hi10 - lo10 < 0.5 * (hi - lo)
    assert bootstrap_ci(errors, units, seed=1) == (lo, hi)  # seeded
    assert bootstrap_ci(np.zeros(0), np.zeros(0)) == (0.0, 0.0)


@pytest.fixture(scope="module")
def run_dir(fake_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "run"
    Trainer.from_data(load_run_config("tiny"), fake_data, ["de", "zh-CN"], out, progress=False).fit()
    return out


def test_cache_and_audio_give_the_training_transcripts(run_dir, fake_data, tmp_path):
    report = evaluate_model(run_dir, fake_data, split="test")
    model, pkg = load_package_model(run_dir)
    for loc in ("de", "zh-CN"):
        data = LanguageData(loc, fake_data / loc / "test.jsonl", feature_dir(fake_data, loc, "test"),
                            pkg.tokenizers[loc], features=pkg.config.features)
        triples = transcribe_split(model, data, pkg.tokenizers[loc], pkg.stats, torch.device("cpu"))
        decoded = decode_split(model, pkg, fake_data, loc, "test", Decoder(pkg.tokenizers),
                               torch.device("cpu"))
        assert [(r["id"], r["reference"], r["hypothesis"]) for r in decoded["rows"]] == triples
        lang = report["languages"][loc]
        assert lang["feature_source"] == "cache" and lang["utterances"] == len(triples)
        batch = collate(data, list(range(len(data.records))), pkg.stats)  # LID, all in one batch
        with torch.no_grad():
            lid = model.eval().lid_logits(model.encode_shared(batch.feats, batch.feat_lens,
                                                              statistics=True)[2])
        picks = [model.languages[k] for k in lid.argmax(dim=-1).tolist()]
        assert lang["lid_accuracy"] == pytest.approx(picks.count(loc) / len(picks))
        assert lang["lid_predicted"] == {k: picks.count(k) for k in model.languages}
    no_cache = tmp_path / "data"
    shutil.copytree(fake_data, no_cache, ignore=shutil.ignore_patterns("feats"))
    from_audio = evaluate_model(run_dir, no_cache, split="test", locales=["zh-CN"])
    lang = from_audio["languages"]["zh-CN"]
    assert lang["feature_source"] == "audio"
    # float16 cache vs float32 recomputation: the same rates on this model
    assert lang["cer"]["rate"] == pytest.approx(report["languages"]["zh-CN"]["cer"]["rate"], abs=0.1)


@needs_beam_search
def test_beam_is_not_worse_than_greedy_on_the_test_set(run_dir, fake_data):
    greedy = evaluate_model(run_dir, fake_data, split="test")
    beam = evaluate_model(run_dir, fake_data, split="test", decode=DecodeConfig(beam_size=8))
    for loc in ("de", "zh-CN"):
        g, b = greedy["languages"][loc]["cer"], beam["languages"][loc]["cer"]
        assert b["rate"] <= g["ci95"][1] + 1e-9  # within greedy's interval or better


@needs_beam_search
def test_evaluate_command_writes_reports(run_dir, fake_data, tmp_path, capsys):
    assert main(["lm", "--data", str(fake_data), "--locale", "zh-CN", "--out",
                 str(tmp_path / "zh.arpa")]) == 0
    assert main(["evaluate", "--model", str(run_dir), "--data", str(fake_data), "--locales",
                 "zh-CN", "--lm", str(tmp_path / "zh.arpa"), "--out", str(tmp_path / "rep"),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "| zh-CN |" in out and "beam 16" in out
    d = json.loads((tmp_path / "rep" / "eval_test_beam16_lm.json").read_text())
    assert set(d["languages"]) == {"zh-CN"} and d["decode"]["lm_paths"]["zh-CN"].endswith("zh.arpa")
    assert (tmp_path / "rep" / "eval_test_beam16_lm.md").read_text().startswith("# Evaluation")
    assert main(["evaluate", "--model", str(run_dir), "--data", str(fake_data), "--no-progress"]) == 0
    assert (run_dir / "eval_test.json").exists()
    assert main(["evaluate", "--model", str(run_dir), "--data", str(fake_data), "--lm", "x.arpa",
                 "--no-progress"]) == 2  # two languages: the LM must name its own


def test_cache_with_other_feature_settings_is_refused(run_dir, fake_data, tmp_path, capsys):
    """A test cache computed with 20 ms frames for a 10 ms model: an error, not a silent detour."""
    from asr.config import FeatureConfig, FeatureMismatchError
    from asr.feature_cache import build_cache

    data = tmp_path / "data"
    shutil.copytree(fake_data, data, ignore=shutil.ignore_patterns("feats"))
    cache_dir = feature_dir(data, "de", "test")
    build_cache(data / "de" / "test.jsonl", cache_dir, config=FeatureConfig(hop_ms=20.0), progress=False)
    with pytest.raises(FeatureMismatchError, match=f"^{cache_dir}: features were computed with "
                                                   r"hop_ms=20.0 but the model uses hop_ms=10.0;"):
        evaluate_model(run_dir, data, split="test", locales=["de"])
    assert main(["evaluate", "--model", str(run_dir), "--data", str(data), "--locales", "de",
                 "--out", str(tmp_path / "rep"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(cache_dir) in err and "hop_ms=10.0" in err
    assert not (tmp_path / "rep").exists()
