import json
import os
import shutil
import socket

import numpy as np
import pytest
import torch

from asr.config import DataConfig, load_run_config
from asr.data import LanguageData, MultilingualSampler, make_buckets
from asr.lid import record_of
from asr.package import load_package_model
from asr.prepare import feature_dir
from asr.tokenizer import Tokenizer
from asr.train import Trainer, TrainingError, lr_lambda

LOCALES = ["de", "zh-CN"]


def tiny(*overrides):
    return load_run_config("tiny", list(overrides))


def train_rows(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if r["kind"] == "train"}


def test_buckets_respect_frame_budget():
    frames = np.random.default_rng(0).integers(50, 900, size=300)
    batches = make_buckets(frames, batch_frames=4000, max_utterances=16)
    assert sorted(np.concatenate(batches).tolist()) == list(range(300))
    for b in batches:
        assert len(b) <= 16
        assert len(b) == 1 or frames[b].max() * len(b) <= 4000


def test_sampler_alpha_and_one_language_per_batch(fake_data):
    tok = {loc: Tokenizer.load(fake_data / loc / "tokenizer.model") for loc in LOCALES}
    data = {loc: LanguageData(loc, fake_data / loc / "train.jsonl",
                              feature_dir(fake_data, loc, "train"), tok[loc],
                              features=tiny().features) for loc in LOCALES}
    data["de"].hours *= 9  # pretend de has 9x the hours of zh-CN
    for alpha, expected in ((1.0, 0.9), (0.0, 0.5), (0.5, 0.75)):
        s = MultilingualSampler(data, DataConfig(batch_frames=1000, alpha=alpha), seed=1)
        assert s.language_probabilities()["de"] == pytest.approx(expected, rel=1e-6)
        draws = [s.next_batch() for _ in range(400)]
        share = sum(loc == "de" for loc, _ in draws) / len(draws)
        assert abs(share - expected) < 0.08
        for loc, idx in draws[:50]:  # each head only ever receives its own language
            ids = {data[loc].records[i]["id"] for i in idx}
            assert all(loc in i for i in ids)


def test_lr_schedule_warmup_then_decay():
    cfg = tiny("train.max_steps=100", "train.warmup_steps=10").train
    f = lr_lambda(cfg)
    assert f(0) < f(5) < f(9) == pytest.approx(1.0)
    assert f(50) < 1.0 and f(100) == pytest.approx(cfg.final_lr_ratio)


def test_train_writes_a_loadable_run(fake_data, tmp_path):
    summary = Trainer.from_data(tiny(), fake_data, LOCALES, tmp_path / "run", progress=False).fit()
    assert summary["steps"] == 40
    for name in ("model.safetensors", "config.json", "metrics.jsonl", "summary.json",
                 "train_state.safetensors"):
        assert (tmp_path / "run" / name).exists(), name
    model, pkg = load_package_model(tmp_path / "run")
    assert model.languages == LOCALES and set(pkg.tokenizers) == set(LOCALES)
    assert pkg.config == Trainer.from_data(tiny(), fake_data, LOCALES, tmp_path / "other",
                                 progress=False).cfg
    with pytest.raises(TrainingError, match="--resume"):
        Trainer.from_data(tiny(), fake_data, LOCALES, tmp_path / "run", progress=False)
    # language ID is fitted on the final model and its held-out accuracy recorded
    record = record_of(pkg.meta)
    assert set(record.accuracy) == set(LOCALES) and all(0 <= a <= 1 for a in record.accuracy.values())
    assert record.held_out_from == {loc: "dev" for loc in LOCALES}
    assert summary["language_id"]["fitted"] and summary["language_id"]["accuracy"] == record.accuracy
    assert not any(p.requires_grad for p in model.lid.parameters())


def test_language_id_stays_unfitted_without_every_languages_data(fake_data, tmp_path):
    """Fine-tuning a two-language model on one language's data: its head would be stale, so it
    is left unfitted and recorded as such; asr lid-fit fits it from data of both."""
    first = Trainer.from_data(tiny("train.max_steps=4", "train.valid_every=4"), fake_data, LOCALES,
                              tmp_path / "both", progress=False)
    first.fit()
    one = tmp_path / "one"
    shutil.copytree(fake_data, one, ignore=shutil.ignore_patterns("de"))
    summary = Trainer.from_data(tiny("train.max_steps=4", "train.valid_every=4"), one, ["zh-CN"],
                                tmp_path / "ft", init=tmp_path / "both" / "model.safetensors",
                                progress=False).fit()
    assert summary["language_id"] == {"fitted": False, "reason": "no training data for de"}
    model, pkg = load_package_model(tmp_path / "ft")
    assert model.languages == LOCALES and record_of(pkg.meta) is None
    assert torch.count_nonzero(model.lid.proj.weight) == 0


def test_resume_after_crash_matches_uninterrupted(fake_data, tmp_path):
    cfg = tiny("train.max_steps=30", "train.valid_every=10")
    Trainer.from_data(cfg, fake_data, LOCALES, tmp_path / "a", progress=False).fit()
    Trainer.from_data(cfg, fake_data, LOCALES, tmp_path / "b", progress=False).fit(stop_at=25)
    Trainer.from_data(cfg, fake_data, LOCALES, tmp_path / "b", resume=True, progress=False).fit()
    a, b = train_rows(tmp_path / "a"), train_rows(tmp_path / "b")
    assert sorted(a) == sorted(b)
    for step in a:
        assert a[step] == pytest.approx(b[step], rel=1e-5, abs=1e-6), step


def test_finetune_adds_a_language_and_freezes(fake_data, tmp_path):
    Trainer.from_data(tiny("train.max_steps=10"), fake_data, ["de"], tmp_path / "de", progress=False).fit()
    before, _ = load_package_model(tmp_path / "de")
    t = Trainer.from_data(tiny("train.max_steps=10"), fake_data, ["zh-CN"], tmp_path / "ft",
                init=tmp_path / "de", freeze=["encoder"], progress=False)
    t.fit()
    after, _ = load_package_model(tmp_path / "ft")
    assert after.languages == ["de", "zh-CN"]
    b, a = before.state_dict(), after.state_dict()
    assert all(torch.equal(b[k], a[k]) for k in b if not k.startswith(("heads.", "lid.")))


@pytest.mark.parametrize("fresh", [True, False])
def test_fresh_heads_replace_the_heads_of_the_languages_a_finetuning_trains(fake_data, tmp_path,
                                                                            fresh):
    """train.fresh_heads: fine-tuning a model on languages it has gives them new CTC heads
    (a joint model's encoder without its target head); every other weight starts as trained."""
    from asr.start import build_run
    Trainer.from_data(tiny("train.max_steps=4", "train.valid_every=4"), fake_data, LOCALES,
                      tmp_path / "both", progress=False).fit()
    before, _ = load_package_model(tmp_path / "both")
    parts = build_run(tiny(f"train.fresh_heads={str(fresh).lower()}"), fake_data, ["zh-CN"],
                      init=tmp_path / "both")
    b, a = before.state_dict(), parts.model.state_dict()
    changed = {k for k in b if not k.startswith("lid") and not torch.equal(b[k], a[k])}
    assert changed == ({"heads.zh-CN.weight", "heads.zh-CN.bias"} if fresh else set())
    assert a["heads.zh-CN.weight"].shape == b["heads.zh-CN.weight"].shape


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# fp32 whatever the CPU: in bf16 (auto on a CPU with AVX512-BF16) the two reduction orders
# differ by ~1e-2 after 8 updates, which says nothing about DDP
DDP_SETTINGS = ("train.max_steps=8", "train.valid_every=100", "train.spec_augment=false",
                "train.precision=fp32")


def _trained(model) -> np.ndarray:
    """Every parameter DDP trains, flat: not the language-ID head, which the main process fits
    after training (asr/lid.py), so rank 1 never has it."""
    return torch.cat([p.detach().flatten() for n, p in model.named_parameters()
                      if not n.startswith("lid.")]).numpy()


def _ddp_worker(rank, world, port, data_dir, out_dir, result_dir):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    cfg = tiny(*DDP_SETTINGS)
    trainer = Trainer.from_data(cfg, data_dir, LOCALES, out_dir, progress=False)
    trainer.fit()
    np.save(os.path.join(result_dir, f"rank{rank}.npy"), _trained(trainer.model))
    torch.distributed.destroy_process_group()


def test_ddp_two_cpu_processes_match_single_process(fake_data, tmp_path):
    torch.multiprocessing.spawn(_ddp_worker, nprocs=2, join=True,
                                args=(2, _free_port(), str(fake_data), str(tmp_path / "ddp"),
                                      str(tmp_path)))
    r0, r1 = np.load(tmp_path / "rank0.npy"), np.load(tmp_path / "rank1.npy")
    assert np.array_equal(r0, r1)
    cfg = tiny(*DDP_SETTINGS)
    single = Trainer.from_data(cfg, fake_data, LOCALES, tmp_path / "single", progress=False)
    single.fit()
    assert np.abs(_trained(single.model) - r0).max() < 1e-4


def test_resume_after_early_stop_stops_again(fake_data, tmp_path):
    """Killed after deciding to stop early (state saved, summary not written): --resume must
    not train on."""
    cfg = tiny("train.max_steps=40", "train.valid_every=5", "train.patience=1", "train.lr=1e-9")
    first = Trainer.from_data(cfg, fake_data, LOCALES, tmp_path / "run", progress=False).fit()
    assert first["stopped_early"] and first["steps"] == 10  # dev CER cannot improve at lr 1e-9
    (tmp_path / "run" / "summary.json").unlink()
    again = Trainer.from_data(cfg, fake_data, LOCALES, tmp_path / "run", resume=True, progress=False).fit()
    assert again["stopped_early"] and again["steps"] == 10


def test_features_other_than_the_caches_are_refused_before_training(fake_data, tmp_path, capsys):
    """Data prepared with 10 ms frames and a run asking for 20 ms: an error, not a model."""
    from asr.cli import main

    out = tmp_path / "run"
    assert main(["train", "--config", "tiny", "--data", str(fake_data), "--locales", "de",
                 "--out", str(out), "--set", "features.hop_ms=20"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"{feature_dir(fake_data, 'de', 'train')}: features were computed with hop_ms=10.0 " \
           "but the model uses hop_ms=20.0" in err
    assert not (out / "model.safetensors").exists() and not (out / "metrics.jsonl").exists()


def test_a_base_model_with_other_features_is_refused(fake_data, tmp_path):
    """Fine-tuning or a progressive column on a model trained with 10 ms frames, asked to use
    20 ms ones: refused before anything is built, naming the model file and both settings."""
    from asr.config import FeatureMismatchError

    Trainer.from_data(tiny("train.max_steps=2"), fake_data, ["de"], tmp_path / "de",
                      progress=False).fit()
    for start in ("init", "base"):
        with pytest.raises(FeatureMismatchError, match=rf"^{tmp_path / 'de'} \(the model this run "
                           r"starts from\): features were computed with hop_ms=20.0 but the model "
                           r"uses hop_ms=10.0"):
            Trainer.from_data(tiny("features.hop_ms=20"), fake_data, ["zh-CN"], tmp_path / start,
                              progress=False, **{start: tmp_path / "de"})


def test_plateau_schedule_decays_then_stops_at_its_floor(fake_data, tmp_path):
    """No improvement on dev (lr 1e-9): each plateau halves the learning rate, and training
    stops when the next halving would go below final_lr_ratio, long before the cap; a run
    killed half-way resumes into the same decays."""
    cfg = tiny("train.schedule=plateau", "train.lr=1e-9", "train.warmup_steps=1",
               "train.max_steps=100", "train.valid_every=2", "train.patience=1",
               "train.decay_factor=0.5", "train.final_lr_ratio=0.2")
    summary = Trainer.from_data(cfg, fake_data, ["de"], tmp_path / "a", progress=False).fit()
    assert summary["stopped_early"] and summary["steps"] == 8
    assert summary["final_lr"] == pytest.approx(0.25e-9)
    rows = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["lr_scale"]) for r in rows if r.get("name") == "lr_decay"] == [
        (4, 0.5), (6, 0.25)]
    Trainer.from_data(cfg, fake_data, ["de"], tmp_path / "b", progress=False).fit(stop_at=5)
    again = Trainer.from_data(cfg, fake_data, ["de"], tmp_path / "b", resume=True,
                              progress=False).fit()
    assert (again["steps"], again["final_lr"]) == (8, summary["final_lr"])


def script_dev_scores(monkeypatch) -> list:
    """Replace validation by scripted dev scores: zh-CN best at the first validation (0.4) and
    0.5 after it; the mean 0.8, 0.7, ... down to 0.5 at the fourth and flat after. Returns the
    list of calls (clear it to start the script again)."""
    import asr.train

    calls = []

    def scripted(*args, **kwargs):
        calls.append(1)
        zh, mean = (0.4 if len(calls) == 1 else 0.5), max(0.9 - 0.1 * len(calls), 0.5)
        return {"zh-CN": {"cer": zh, "wer": zh}, "mean": {"cer": mean, "wer": mean}}

    monkeypatch.setattr(asr.train, "validate", scripted)
    return calls


@pytest.mark.parametrize("schedule_metric", ["", "mean_cer"])
def test_patience_follows_the_schedule_metric_and_selection_the_select_metric(
        fake_data, tmp_path, monkeypatch, schedule_metric):
    """train.schedule_metric: scripted dev scores where zh-CN is best at the first validation
    and flat after it while the mean keeps improving for three more. Following zh-CN alone
    (the default) the run stops at the first flat validation; following the mean it trains
    until the mean stops improving, and the zh-CN best is the model either way. A run killed
    half-way resumes into the same stop (the schedule's best is in the train state)."""
    calls = script_dev_scores(monkeypatch)
    cfg = tiny("train.max_steps=40", "train.valid_every=2", "train.patience=1",
               "train.select_metric=zh-CN_cer", f"train.schedule_metric='{schedule_metric}'")
    summary = Trainer.from_data(cfg, fake_data, LOCALES, tmp_path / "a", progress=False).fit()
    stop = 10 if schedule_metric else 4
    assert (summary["steps"], summary["best_step"], summary["stopped_early"]) == (stop, 2, True)
    assert summary["best_zh-CN_cer"] == 0.4
    assert summary[f"best_{schedule_metric or 'zh-CN_cer'}"] == (0.5 if schedule_metric else 0.4)
    calls.clear()
    Trainer.from_data(cfg, fake_data, LOCALES, tmp_path / "b", progress=False).fit(stop_at=6)
    again = Trainer.from_data(cfg, fake_data, LOCALES, tmp_path / "b", resume=True,
                              progress=False).fit()
    assert (again["steps"], again["best_step"]) == (stop, 2)


def test_keep_schedule_best_keeps_the_best_on_every_language_beside_the_targets(
        fake_data, tmp_path, monkeypatch):
    """train.keep_schedule_best: with the scripted scores above (zh-CN best at update 2, the
    mean at update 8 and tied at 10), model.safetensors is the zh-CN best and
    model_schedule_best.safetensors the mean's (a tie goes to the later checkpoint, as for
    model.safetensors); a kill and resume in between changes neither.
    Without a schedule metric of its own the option is refused (it would be model.safetensors)."""
    from asr import checkpoint as ckpt
    from asr.package import MODEL_FILE, SCHEDULE_MODEL_FILE

    calls = script_dev_scores(monkeypatch)
    cfg = tiny("train.max_steps=40", "train.valid_every=2", "train.patience=1",
               "train.keep_checkpoints=1", "train.select_metric=zh-CN_cer",
               "train.schedule_metric=mean_cer", "train.keep_schedule_best=true")
    for run, stop_at in (("a", None), ("b", 6)):
        calls.clear()
        out = tmp_path / run
        summary = Trainer.from_data(cfg, fake_data, LOCALES, out, progress=False).fit(
            stop_at=stop_at)
        if stop_at:
            summary = Trainer.from_data(cfg, fake_data, LOCALES, out, resume=True,
                                        progress=False).fit()
        assert (summary["steps"], summary["best_step"]) == (10, 2)
        assert summary["schedule_model_path"] == str(out / SCHEDULE_MODEL_FILE)
        steps = {f: ckpt.load_package(out / f)[1]["step"]
                 for f in (MODEL_FILE, SCHEDULE_MODEL_FILE)}
        assert steps == {MODEL_FILE: 2, SCHEDULE_MODEL_FILE: 10}
    with pytest.raises(ValueError, match="keep_schedule_best needs a train.schedule_metric"):
        tiny("train.keep_schedule_best=true")
    with pytest.raises(ValueError, match="keep_schedule_best needs a train.schedule_metric"):
        tiny("train.keep_schedule_best=true", "train.schedule_metric=mean_cer")


def test_a_schedule_metric_without_a_dev_set_is_refused_before_training(fake_data, tmp_path):
    with pytest.raises(TrainingError, match=r"train.schedule_metric: .*'fr_cer'"):
        Trainer.from_data(tiny("train.schedule_metric=fr_cer"), fake_data, ["de"],
                          tmp_path / "r", progress=False)
    with pytest.raises(ValueError, match="train.schedule_metric must be empty"):
        tiny("train.schedule_metric=mean")


def test_cosine_schedule_ignores_the_plateau_settings():
    cfg = tiny("train.warmup_steps=10", "train.max_steps=110").train
    f = lr_lambda(cfg)
    assert f(0) == pytest.approx(0.1) and f(10) == pytest.approx(1.0)
    assert f(110) == pytest.approx(cfg.final_lr_ratio)
    plateau = lr_lambda(tiny("train.schedule=plateau", "train.warmup_steps=10").train)
    assert plateau(10) == plateau(10_000) == 1.0


def test_a_selection_metric_without_a_dev_set_is_refused_before_training(fake_data, tmp_path):
    """`fr_cer` on a run without French: found before the first step, not at the first
    validation."""
    with pytest.raises(TrainingError, match=r"train.select_metric: .*'fr_cer'"):
        Trainer.from_data(tiny("train.select_metric=fr_cer"), fake_data, ["de"], tmp_path / "r",
                          progress=False)
    assert not (tmp_path / "r" / "metrics.jsonl").exists()


def test_json_for_programs_never_holds_nan_or_infinity(tmp_path):
    """Non-finite numbers become null: standard JSON that strict readers accept."""
    from asr.fileio import write_json, write_jsonl

    def strict(text: str):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))

    write_json(tmp_path / "a.json", {"best": float("inf"), "x": [1.0, float("nan")],
                                     "nested": {"y": -float("inf")}})
    assert strict((tmp_path / "a.json").read_text()) == {"best": None, "x": [1.0, None],
                                                          "nested": {"y": None}}
    write_jsonl(tmp_path / "b.jsonl", [{"loss": float("nan")}])
    assert strict((tmp_path / "b.jsonl").read_text()) == {"loss": None}


def test_loss_weights_for_a_language_not_trained_are_refused(fake_data, tmp_path):
    with pytest.raises(TrainingError, match="data.loss_weights names fr"):
        Trainer.from_data(tiny("data.loss_weights={fr: 2.0}"), fake_data, ["de"], tmp_path / "r",
                          progress=False)


@pytest.mark.parametrize("validate_start", [True, False])
def test_a_fine_tuning_that_never_beats_its_start_keeps_it(fake_data, tiny_run, tmp_path,
                                                           monkeypatch, validate_start):
    """train.validate_start: the starting model is validated before the first update and
    competes for the best checkpoint, so when dev prefers it (scripted here: 30% CER at the
    first validation, 50% at every later one) the run's model is the start, bit for bit;
    without it, the first validation is after 2 updates and that checkpoint is the best."""
    import asr.train
    from asr import checkpoint as ckpt

    calls = []

    def scripted(*args, **kwargs):
        calls.append(1)
        cer = 0.3 if len(calls) == 1 else 0.5
        return {"zh-CN": {"cer": cer, "wer": cer}, "mean": {"cer": cer, "wer": cer}}

    monkeypatch.setattr(asr.train, "validate", scripted)
    cfg = tiny("train.max_steps=4", "train.valid_every=2",
               f"train.validate_start={str(validate_start).lower()}")
    start = tiny_run / "model.safetensors"
    summary = Trainer.from_data(cfg, fake_data, LOCALES, tmp_path / "ft", init=start,
                                progress=False).fit()
    assert summary["best_step"] == (0 if validate_start else 2)
    steps = [json.loads(line)["step"] for line in (tmp_path / "ft" / "metrics.jsonl")
             .read_text().splitlines() if json.loads(line)["kind"] == "valid"]
    assert steps[:3] == ([0, 2, 4] if validate_start else [2, 4])[:3]
    before, _ = ckpt.load_package(start)
    after, _ = ckpt.load_package(tmp_path / "ft" / "model.safetensors")
    same = all(torch.equal(before[k], after[k]) for k in before if k.startswith("model.")
               and not k.startswith("model.lid."))
    assert same == validate_start
