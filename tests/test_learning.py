"""The model really learns: a few CPU minutes of training on synthetic speech of two languages
bring dev CER (speakers and voices absent from training) far below what an untrained model or
a constant output reach; the trained model then shows what decoding and language ID add on the
test sets. Slow (about 6 CPU minutes): runs in `make test-all`."""

from __future__ import annotations

import json
import warnings
from collections import Counter

import pytest

from asr.config import load_run_config
from asr.evaluate import score, validate

LOCALES = ["es", "zh-CN"]
CER_BOUND = 0.5  # both languages; untrained >= 0.98 and constant output 0.70-0.83 (asserted below)
STEPS = 1500

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Synthesise es (0.4 h) and zh-CN (1 h), prepare, train; the run and its dev curve."""
    from asr.prepare import prepare_data
    from asr.train import Trainer
    from data_prep.release import prepare_manifests
    from data_prep.synth import synthesize_corpus

    root = tmp_path_factory.mktemp("learn")
    synthesize_corpus(root / "cv", locales=LOCALES, hours={"es": 0.4, "zh-CN": 1.0},
                      eval_hours=0.03, seed=0, workers=2, zh_inventory_size=60, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepare_manifests(root / "cv", LOCALES, root / "data", progress=False)
        prepare_data(root / "data", LOCALES, workers=2, progress=False)  # es: characters
    # the experiment model with the 64-channel front end this bound was set on; with small's
    # own 32 channels, 1500 updates ended at dev CER es 0.47, zh-CN 0.53 (measured)
    cfg = load_run_config("small", [f"train.max_steps={STEPS}", "model.subsampling_channels=64"])
    data, run = root / "data", root / "run"
    trainer = Trainer.from_data(cfg, data, LOCALES, run, progress=False)  # 1 thread (conftest)
    untrained = validate(trainer.model, trainer.dev_data, trainer.tokenizers, trainer.stats,
                         trainer.device)
    trainer.fit()
    curve = [(r["step"], {loc: r["scores"][loc]["cer"] for loc in LOCALES})
             for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
             if r["kind"] == "valid"]
    return {"data": data, "run": run, "untrained": untrained, "curve": curve}


def constant_output_cer(data_dir, locale) -> float:
    """CER of always answering the most common training transcript."""
    def texts(split):
        return [json.loads(x)["norm_text"] for x in
                (data_dir / locale / f"{split}.jsonl").read_text().splitlines()]
    guess = Counter(texts("train")).most_common(1)[0][0]  # ties: the first in manifest order
    return score([("", ref, guess) for ref in texts("dev")], locale)["cer"]


def test_training_learns_two_languages(trained):
    curve = trained["curve"]
    print("\nstep  " + "  ".join(f"{loc:>6}" for loc in LOCALES))
    for step, cer in curve:
        print(f"{step:4d}  " + "  ".join(f"{cer[loc]:6.3f}" for loc in LOCALES))
    final = curve[-1][1]
    for loc in LOCALES:
        constant = constant_output_cer(trained["data"], loc)
        untrained = trained["untrained"][loc]["cer"]
        print(f"{loc}: untrained {untrained:.3f}, constant output {constant:.3f}, "
              f"trained {final[loc]:.3f}")
        assert untrained > CER_BOUND and constant > CER_BOUND
        assert final[loc] < CER_BOUND


def test_beam_search_and_lm_on_the_test_set(trained, tmp_path):
    """Beam search alone is no worse than greedy beyond noise; with an in-domain word LM it is
    better (measured: es test WER 0.954 greedy, 0.943 beam, 0.753 beam + LM)."""
    from asr.decode import DecodeConfig
    from asr.evaluate import evaluate_model
    from asr.lm import build_lm
    from asr.package import load_package_model

    pytest.importorskip("flashlight.lib.text.decoder")
    data, run = trained["data"], trained["run"]
    tok = load_package_model(run)[1].tokenizers["es"]
    texts = [json.loads(x)["norm_text"] for x in (data / "es" / "train.jsonl").read_text().splitlines()]
    build_lm(texts, tok, tmp_path / "es.arpa", order=3)

    def wer(**decode):
        lm = {"es": str(tmp_path / "es.arpa")} if decode.pop("lm", False) else None
        report = evaluate_model(run, data, split="test", locales=["es"],
                                decode=DecodeConfig(**decode), lm_paths=lm)
        return report["languages"]["es"]["wer"]["rate"]

    greedy, beam = wer(), wer(beam_size=16)
    fused = wer(beam_size=16, lm=True, lm_weight=1.0, word_score=1.0)
    print(f"\nes test WER: greedy {greedy:.3f}, beam 16 {beam:.3f}, beam 16 + 3-gram LM {fused:.3f}")
    assert beam <= greedy + 0.02
    assert fused < greedy - 0.02


def test_language_id_on_the_test_sets(trained):
    """The language-ID head, fitted after training (asr/lid.py), tells the two languages apart
    on unseen voices. Trained beside CTC with a replay of pooled outputs it reached es 100%,
    zh-CN 69% here, and without the replay it followed the last batches' language (es 15%)."""
    from asr.evaluate import evaluate_model

    report = evaluate_model(trained["run"], trained["data"], split="test")
    lid = {loc: r["lid_accuracy"] for loc, r in report["languages"].items()}
    print(f"language ID accuracy on the test sets: {lid}")
    assert min(lid.values()) >= 0.95  # chance: 0.5
