import csv
import dataclasses
import json
import math
import shutil
import warnings
from pathlib import Path

import pytest
import yaml
from cvfake import make_release

import asr.train
from asr.config import ConfigError
from asr.experiment.config import EXPERIMENT_DIR
from asr.experiment.data import prepare_experiment_data, shuffled_records
from asr.experiment.plan import budget_rule, plan_jobs, run_config
from asr.experiment.report import (
    costs,
    efficiency,
    equivalent_hours,
    glance,
    headline,
    pooled_interval,
)
from asr.experiment.results import LocaleScores, RunResult
from asr.experiment.strategies import STRATEGIES, Strategy
from asr.experiment.study import load_experiment_config, run_experiment

# 24 train clips of 0.4-1.0 s per language: 0.0047 h. Two points: about a third and all of it.
HOURS = [0.0015, 0.0047]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("exp") / "cv"
    for locale in ("de", "zh-CN"):
        make_release(root, locale, train=24, dev=4, test=4, speakers=(6, 2, 2),
                     seconds=[0.4, 0.6, 0.8, 1.0])
    return root


def write_config(path, release, strategies=("target_only", "progressive"), ledger=None,
                 **budget):
    cfg = {
        "name": "tiny_transfer",
        "corpus": {"root": str(release), "vocab_size": 32, "workers": 1},
        "target": {"locale": "zh-CN", "hours": HOURS},
        "helpers": {"locales": ["de"]},
        "grid": {"strategies": list(strategies), "seeds": [0]},
        "run": {"base": "tiny", "overrides": ["model.d_model=32", "data.batch_frames=2000"]},
        "budget": {"max_steps": 4, "valid_every": 2, "patience": 2} | budget,
    } | ({"ledger": str(ledger)} if ledger else {})
    path.write_text(yaml.safe_dump(cfg))
    return path


def run(config_path, out, overrides=(), **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tokenizer vocabularies clamped on a toy corpus
        return run_experiment(load_experiment_config(config_path, list(overrides)), out,
                              device="cpu", progress=False, **kwargs)


@pytest.fixture(scope="module")
def finished(release, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grid")
    cfg = write_config(tmp / "exp.yaml", release)
    report = run(cfg, tmp / "out")
    return cfg, tmp / "out", report


def test_costs_are_per_strategy_and_layout_over_finished_runs(finished):
    def run(strategy, steps, seconds, lid, layout=""):
        return {"strategy": strategy, "layout": layout, "steps": steps, "train_seconds": seconds,
                "lid_fit_seconds": lid, "parameters": 10, "trainable_parameters": 5}

    table = costs([run("pretrain", 900, 3600, None), run("finetune", 100, 80, 20),
                   run("finetune", 300, 140, 40), run("joint", 50, 30, 0.0, "0-2-2")])
    assert [c["name"] for c in table] == ["pretrain", "finetune", "joint 0-2-2"]
    assert table[1] == {"name": "finetune", "runs": 2, "updates": 200, "train_seconds": 80,
                        "lid_fit_seconds": 30, "train_hours_total": 160 / 3600,
                        "parameters": 10, "trainable_parameters": 5}
    assert table[0]["lid_fit_seconds"] is None and table[0]["train_seconds"] == 3600
    _, out, report = finished
    assert [c["runs"] for c in report["costs"]] == [1, len(HOURS), len(HOURS)]
    progressive = report["costs"][2]  # two languages: a fit, timed within the training
    assert 0 < progressive["lid_fit_seconds"] and report["costs"][1]["lid_fit_seconds"] == 0
    assert "## Cost: what each strategy's runs took" in (out / "results.md").read_text()


def test_grid_writes_report_files(finished):
    _, out, report = finished
    for name in ("results.csv", "results.md", "cer_vs_hours.png", "report.json",
                 "experiment.yaml", "versions.txt", "data/facts.json"):
        assert (out / name).exists(), name
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert sorted((r["strategy"], r["target_hours"]) for r in rows) == sorted(
        [("pretrain", "")] + [(s, str(h)) for s in ("target_only", "progressive") for h in HOURS])
    for r in rows:
        assert int(r["steps"]) <= 4 and float(r["train_seconds"]) > 0
        if r["strategy"] != "pretrain":
            assert 0 <= float(r["cer_ci_low"]) <= float(r["cer"]) <= float(r["cer_ci_high"])
            assert r["zh-CN_ser"] and r["unseen_char_rate"]
    md = (out / "results.md").read_text()
    assert "Training budget" in md and "Data-efficiency ratio" in md and "Forgetting" in md
    assert "\n".join(glance(report["aggregate"])) in md
    assert report["headline"].splitlines()[0] in md.splitlines()[2]
    assert "torch==" in (out / "versions.txt").read_text()
    # each run names its data by an absolute path, so scripts find it from any directory
    for job in (out / "runs").glob("*/job.json"):
        data = Path(json.loads(job.read_text())["data"])
        assert data.is_absolute() and data.is_dir(), job
    # the experiment.yaml written there reloads to the same config
    assert load_experiment_config(out / "experiment.yaml") == load_experiment_config(finished[0])


def test_progressive_leaves_helpers_exactly_unchanged(finished):
    forget = finished[2]["forgetting"]
    assert {f["strategy"] for f in forget} == {"progressive"} and len(forget) == len(HOURS)
    assert all(f["de"]["change"] == 0.0 for f in forget)
    assert [(f["strategy"], f["hours"]) for f in finished[2]["forgetting_cer"]] == [
        (f["strategy"], f["hours"]) for f in forget]
    assert all(f["de"]["change"] == 0.0 for f in finished[2]["forgetting_cer"])


def test_points_are_nested_and_share_dev_and_test(finished):
    _, out, _ = finished
    small, big = (out / "data" / "s0" / f"h{h:g}" / "zh-CN" for h in HOURS)
    ids = [{json.loads(x)["id"] for x in (d / "train.jsonl").read_text().splitlines()}
           for d in (small, big)]
    assert ids[0] < ids[1]
    assert (small / "test.jsonl").resolve() == (big / "test.jsonl").resolve()
    assert not (out / "data" / "s0" / f"h{HOURS[0]:g}" / "de" / "dev.jsonl").exists()


def test_rerun_skips_finished_runs(finished, monkeypatch, capsys):
    cfg, out, report = finished

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(asr.train.Trainer, "fit", no_training)
    again = run(cfg, out)
    assert again["runs"] == report["runs"]
    assert capsys.readouterr().out.count("finished earlier") == 1 + 2 * len(HOURS)


def test_changed_config_never_reuses_a_stale_result(finished, capsys):
    cfg, out, report = finished
    old = {r["run_dir"] for r in report["runs"]}
    changed = run(cfg, out, ["budget.patience=1"])
    new = {r["run_dir"] for r in changed["runs"]}
    assert not old & new  # every run depends on the budget: all retrained in new dirs
    assert "finished earlier" not in capsys.readouterr().out
    # a smaller grid under the first config reuses its runs, the helpers' pretraining included
    smaller = run(cfg, out, [f"target.hours=[{HOURS[1]}]"])
    assert {r["run_dir"] for r in smaller["runs"]} < old
    assert capsys.readouterr().out.count("finished earlier") == 1 + 2


def test_parallel_runs_match_sequential_ones(finished, tmp_path):
    cfg, _, report = finished
    parallel = run(cfg, tmp_path / "par", workers=2, threads=1)
    assert ([(r["strategy"], r["target_hours"], r["cer"], r["steps"]) for r in parallel["runs"]]
            == [(r["strategy"], r["target_hours"], r["cer"], r["steps"]) for r in report["runs"]])
    assert all((tmp_path / "par" / "runs" / r["run_dir"].split("/runs/")[1] / "train.log").exists()
               for r in parallel["runs"])


def crash_first_fit(monkeypatch) -> list[bool]:
    """The test's first Trainer.fit stops after 3 updates (a state is saved at step 2) with a
    KeyboardInterrupt, as a kill would; later ones train whole. Returns the `resume` flag of
    every Trainer built, in order."""
    real_fit, real_init = asr.train.Trainer.fit, asr.train.Trainer.__init__
    resumed, crashed = [], []

    def fit(self, stop_at=None, **kwargs):
        if crashed:
            return real_fit(self, stop_at, **kwargs)
        crashed.append(True)
        real_fit(self, stop_at=3, **kwargs)
        raise KeyboardInterrupt

    def init(self, *args, **kwargs):
        resumed.append(kwargs["resume"])
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(asr.train.Trainer, "__init__", init)
    monkeypatch.setattr(asr.train.Trainer, "fit", fit)
    return resumed


def test_interrupted_sweep_resumes(release, tmp_path, monkeypatch):
    cfg = write_config(tmp_path / "exp.yaml", release, strategies=("target_only",),
                       max_steps=6, patience=5)
    resumed = crash_first_fit(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "out")
    report = run(cfg, tmp_path / "out")
    assert resumed == [False, True, False]  # the crashed run resumed, the next one fresh
    assert [r["steps"] for r in report["runs"]] == [6, 6]


def test_joint_shuffled_data_breaks_pairs_but_keeps_audio(release, tmp_path):
    cfg = load_experiment_config(write_config(tmp_path / "e.yaml", release,
                                              strategies=("joint", "joint_shuffled")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepare_experiment_data(cfg, tmp_path / "out", run_config(cfg, "joint", 0).features)
    jobs = plan_jobs(cfg, tmp_path / "out")
    shuffled = next(j for j in jobs if j.strategy == "joint_shuffled")
    joint = next(j for j in jobs if j.strategy == "joint" and j.hours == shuffled.hours)
    assert shuffled.key != joint.key and shuffled.locales == ["de", "zh-CN"]

    def rows(job, loc):
        return [json.loads(x) for x in (job.data_dir / loc / "train.jsonl").read_text().splitlines()]

    a, b = rows(joint, "de"), rows(shuffled, "de")
    assert [r["id"] for r in a] == [r["id"] for r in b]
    assert sorted(r["norm_text"] for r in a) == sorted(r["norm_text"] for r in b)
    assert all(x["norm_text"] != y["norm_text"] for x, y in zip(a, b, strict=True))
    assert rows(joint, "zh-CN") == rows(shuffled, "zh-CN")  # the target is untouched


def test_joint_runs_follow_every_language_and_select_on_the_target(release, tmp_path):
    """A run on helpers + target validates on the helpers' dev sets too (true transcripts,
    shuffled training or not) and decays and stops on their mean, while its model is chosen
    on the target's dev CER. Runs on the target alone keep a data dir without the helpers'
    dev sets and the key they had before train.schedule_metric existed."""
    cfg = load_experiment_config(write_config(
        tmp_path / "e.yaml", release, strategies=("target_only", "joint", "joint_shuffled",
                                                  "finetune")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepare_experiment_data(cfg, tmp_path / "out", run_config(cfg, "joint", 0).features)
    jobs = {(j.strategy, j.hours): j for j in plan_jobs(cfg, tmp_path / "out")}
    helpers_dev = (tmp_path / "out" / "data" / "helpers" / "de" / "dev.jsonl").read_text()
    for name in ("joint", "joint_shuffled"):
        job = jobs[name, HOURS[0]]
        assert (job.data_dir / "de" / "dev.jsonl").read_text() == helpers_dev
        t = job.cfg.train
        assert (t.select_metric, t.schedule_metric, t.patience_metric, t.keep_schedule_best) == (
            "zh-CN_cer", "mean_cer", "mean_cer", True)
    for name in ("target_only", "finetune"):
        job = jobs[name, HOURS[0]]
        assert not (job.data_dir / "de" / "dev.jsonl").exists()
        assert job.cfg.train.schedule_metric == "" and job.cfg.train.patience_metric == "zh-CN_cer"
    assert jobs["pretrain", None].cfg.train.schedule_metric == ""


def test_no_early_stop_before_min_steps(fake_data, tmp_path):
    from asr.config import load_run_config
    from asr.train import Trainer

    cfg = load_run_config("tiny", ["train.max_steps=12", "train.valid_every=2", "train.patience=1",
                                   "train.min_steps=10", "train.lr=1e-9"])  # no improvement
    summary = Trainer.from_data(cfg, fake_data, ["zh-CN"], tmp_path / "run", progress=False).fit()
    assert summary["stopped_early"] and summary["steps"] == 10


def test_shuffle_stays_among_similar_durations():
    recs = [{"id": f"u{i}", "duration": float(i), "text": f"t{i}", "norm_text": f"t{i}"}
            for i in range(40)]
    out = shuffled_records(recs, seed=3)
    for r in out:
        j = int(r["norm_text"][1:])
        assert j != int(r["id"][1:]) and abs(j - r["duration"]) < 16


def test_ratio_interpolates_in_log_hours():
    curve = [(0.1, 0.8), (0.2, 0.6), (0.4, 0.5), (0.8, 0.45)]
    assert equivalent_hours(curve, 0.6) == {"kind": "within", "hours": 0.2}
    e = efficiency(curve, 0.1, 0.55)  # halfway between 0.2 h and 0.4 h in log-hours
    assert e["kind"] == "within"
    assert e["equivalent_hours"] == pytest.approx(math.sqrt(0.08))
    assert e["ratio"] == pytest.approx(2 * math.sqrt(2))
    assert e["label"] == "2.83x"
    e = efficiency(curve, 0.2, 0.7)  # between 0.1 h and 0.2 h
    assert e["ratio"] == pytest.approx(math.sqrt(0.02) / 0.2)
    # better than every target-only point: a lower bound, not an extrapolation
    e = efficiency(curve, 0.2, 0.4)
    assert (e["kind"], e["ratio"], e["label"]) == ("above", pytest.approx(4.0), ">= 4.00x")
    # worse than target-only's fewest hours: an upper bound
    e = efficiency(curve, 0.1, 0.9)
    assert (e["kind"], e["label"]) == ("below", "<= 1.00x")


def test_ratio_takes_the_first_crossing_of_a_bumpy_curve():
    curve = [(1, 0.5), (2, 0.3), (4, 0.35), (8, 0.2)]
    assert equivalent_hours(curve, 0.3)["hours"] == pytest.approx(2)
    assert equivalent_hours(curve, 0.4)["hours"] == pytest.approx(2 ** 0.5)
    assert equivalent_hours(curve, 0.25)["hours"] == pytest.approx(4 * 2 ** (2 / 3))


def test_pooled_interval_widens_with_seed_spread():
    ids = tuple(f"u{i}" for i in range(50))
    one = LocaleScores(50, {}, ids, tuple(i % 3 for i in range(50)), (4,) * 50)
    same = pooled_interval([one, one])
    spread = pooled_interval([one, LocaleScores(50, {}, ids, (4,) * 50, (4,) * 50)])
    assert same[0] <= 0.25 <= same[1]
    assert spread[1] - spread[0] > same[1] - same[0]


def synthetic_results():
    """Target-only at 0.1-0.8 h, and two strategies at 0.1 h (2 seeds each, 200 utterances):
    finetune between the curve's 0.2 and 0.4 h, progressive beyond all of it; and a result
    maker for more."""
    import numpy as np

    from asr.experiment.results import Metric

    rng = np.random.default_rng(0)
    ids = tuple(f"u{i}" for i in range(200))

    def result(strategy: str, hours: float, seed: int, rate: float) -> RunResult:
        errors = tuple(int(e) for e in rng.binomial(10, rate, size=len(ids)))  # 10 chars each
        scores = LocaleScores(len(ids), {"cer": Metric(sum(errors) / 2000, (0.0, 1.0))}, ids,
                              errors, (10,) * len(ids))
        return RunResult(key=f"{strategy}{hours}{seed}", strategy=strategy, seed=seed,
                         hours=hours, actual_hours=hours, unseen_char_rate=0.0,
                         test={"zh-CN": scores}, parameters=1, trainable_parameters=1,
                         train_seconds=1.0, steps=10, best_step=10, stopped_early=True,
                         max_steps=100, run_dir="r", pretrain=None, dev_curve=((10, 0.5),),
                         machine="test")

    results = [result("target_only", h, s, c) for h, c in ((0.1, 0.8), (0.2, 0.6), (0.4, 0.4),
                                                            (0.8, 0.2)) for s in (0, 1)]
    results += [result("finetune", 0.1, s, 0.5) for s in (0, 1)]  # between 0.2 and 0.4 h
    results += [result("progressive", 0.1, s, 0.05) for s in (0, 1)]  # beyond every point
    return results, result


def test_ratio_interval_holds_the_ratio_and_says_where_the_curve_ends():
    from asr.experiment.report import aggregate, ratio_intervals, ratios, with_intervals

    results, result = synthetic_results()
    rows = aggregate(results, "zh-CN", [])
    table = {(r["strategy"], r["hours"]): r for r in with_intervals(ratios(rows), results, rows,
                                                                     "zh-CN")}
    ft = table[("finetune", 0.1)]
    assert 2 < ft["ratio_low"] < ft["ratio"] < ft["ratio_high"] < 4
    assert ft["ratio_interval"] == f"{ft['ratio_low']:.3g}-{ft['ratio_high']:.3g}x"
    pr = table[("progressive", 0.1)]  # every resample beats the curve: a bound, no number
    assert pr["ratio_low"] is None and pr["ratio_beyond"] == {"low": "above", "high": "above"}
    assert pr["ratio_interval"] == "> 8x"
    # more seeds that disagree widen it
    wide = results + [result("finetune", 0.1, 2, 0.7)]
    rows = aggregate(wide, "zh-CN", [])
    (w,) = [v for k, v in ratio_intervals(wide, "zh-CN", ratios(rows)).items()
            if k == ("finetune", 0.1)]
    assert w[1] - w[0] > ft["ratio_high"] - ft["ratio_low"]


def test_the_same_ledger_gives_the_same_intervals_in_every_process():
    """The bootstrap is seeded and draws in a fixed order: Python's per-process string hashing
    (PYTHONHASHSEED) must not change a rebuilt report's intervals."""
    import os
    import subprocess
    import sys

    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); "
            "from test_experiment import synthetic_results; "
            "from asr.experiment.report import aggregate, ratio_intervals, ratios; "
            "results, _ = synthetic_results(); rows = aggregate(results, 'zh-CN', []); "
            "print(json.dumps(sorted((list(k), v) for k, v in "
            "ratio_intervals(results, 'zh-CN', ratios(rows), resamples=200).items())))")
    outs = {subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)], check=True,
                           capture_output=True, text=True,
                           env=os.environ | {"PYTHONHASHSEED": str(h)}).stdout
            for h in range(1, 7)}
    assert len(outs) == 1 and "finetune" in outs.pop()


@pytest.mark.parametrize("path", sorted(EXPERIMENT_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_experiments_load(path):
    exp = load_experiment_config(path.stem)
    assert exp.target.locale and exp.grid.strategies


def test_bad_experiment_config_names_the_key(tmp_path, release):
    path = write_config(tmp_path / "e.yaml", release, strategies=("target_only", "jiont"))
    with pytest.raises(ConfigError, match="jiont"):
        load_experiment_config(path)
    with pytest.raises(ConfigError, match="budget.max_stpes"):
        load_experiment_config(write_config(tmp_path / "f.yaml", release), ["budget.max_stpes=3"])


def test_budget_per_language_scales_multilingual_runs(tmp_path, release):
    path = write_config(tmp_path / "b.yaml", release, per_language=True, min_steps=2)
    exp = load_experiment_config(path, ["helpers.locales=[de,fr]"])
    same = load_experiment_config(path, ["helpers.locales=[de,fr]", "budget.per_language=false"])
    for strategy, k in (("target_only", 1), ("finetune", 1), ("pretrain", 2), ("joint", 3)):
        t = run_config(exp, strategy, 0).train
        assert (t.max_steps, t.valid_every, t.min_steps, t.patience) == (4 * k, 2 * k, 2 * k, 2)
        assert run_config(same, strategy, 0).train.max_steps == 4
    assert "per language" in budget_rule(exp) and "per language" not in budget_rule(same)


def test_per_strategy_grid_narrows_and_extends(tmp_path, release):
    path = write_config(tmp_path / "g.yaml", release,
                        strategies=("target_only", "joint", "joint_shuffled", "finetune"))
    overrides = [
        "grid.seeds=[0,1]",
        f"grid.per_strategy={{target_only: {{hours: [{HOURS[0]}, {HOURS[1]}, 0.01]}}, "
        f"joint: {{hours: [{HOURS[0]}]}}, joint_shuffled: {{hours: [{HOURS[0]}], seeds: [1]}}}}"]
    exp = load_experiment_config(path, overrides)
    assert exp.points(("joint_shuffled",)) == [(1, HOURS[0])]
    assert (0, 0.01) in exp.points() and (1, 0.01) in exp.points()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the 0.01 h point asks for more than the pool holds
        prepare_experiment_data(exp, tmp_path / "out", run_config(exp, "joint", 0).features)
    jobs = plan_jobs(exp, tmp_path / "out")
    grid = sorted((j.strategy, j.hours, j.seed) for j in jobs if j.strategy != "pretrain")
    expected = ([("target_only", h, s) for h in (*HOURS, 0.01) for s in (0, 1)]
                + [("finetune", h, s) for h in HOURS for s in (0, 1)]
                + [("joint", HOURS[0], s) for s in (0, 1)] + [("joint_shuffled", HOURS[0], 1)])
    assert grid == sorted(expected)
    assert [j.seed for j in jobs if j.strategy == "pretrain"] == [0, 1]
    one = plan_jobs(load_experiment_config(path, [*overrides, "helpers.model_per_seed=false"]),
                    tmp_path / "out")
    pretrain = [j for j in one if j.strategy == "pretrain"]
    assert [j.seed for j in pretrain] == [0]  # one helpers' model, every seed starts from it
    assert {j.seed for j in one if j.starts_from is pretrain[0]} == {0, 1}
    assert not (tmp_path / "out" / "data" / "s0" / f"h{HOURS[0]:g}-shuffled").exists()
    assert (tmp_path / "out" / "data" / "s1" / f"h{HOURS[0]:g}-shuffled").exists()
    with pytest.raises(ConfigError, match="not in strategies"):
        load_experiment_config(path, ["grid.per_strategy={progressive: {seeds: [0]}}"])


def test_per_strategy_overrides_touch_only_that_strategy(tmp_path, release):
    path = write_config(tmp_path / "o.yaml", release, strategies=("target_only", "joint"))
    plain = load_experiment_config(path)
    exp = load_experiment_config(path, ["grid.per_strategy={joint: {overrides: [data.alpha=0]}}"])
    assert run_config(exp, "joint", 0).data.alpha == 0 != run_config(plain, "joint", 0).data.alpha
    assert run_config(exp, "target_only", 0) == run_config(plain, "target_only", 0)
    assert "joint: data.alpha=0" in budget_rule(exp) and "data.alpha=0;" not in budget_rule(plain)
    with pytest.raises(ConfigError, match="data.alhpa"):
        load_experiment_config(path, ["grid.per_strategy={joint: {overrides: [data.alhpa=0]}}"])


def test_progressive_variants_differ_only_in_their_column(tmp_path, release):
    exp = load_experiment_config(write_config(tmp_path / "p.yaml", release, strategies=(
        "progressive", "progressive_copy", "progressive_nolateral", "progressive_alpha1")))
    plain, copy, alone, loud = (run_config(exp, s, 0) for s in exp.grid.strategies)
    assert (plain.progressive.init, copy.progressive.init) == ("random", "copy")
    assert (plain.progressive.lateral_scale_init, loud.progressive.lateral_scale_init) == (0.1, 1.0)
    assert dataclasses.replace(loud.progressive, lateral_scale_init=0.1) == plain.progressive
    assert alone.progressive.adapter_blocks == () and plain.progressive.adapter_blocks != ()
    assert plain.model == copy.model == alone.model and plain.train == copy.train


def test_glance_pivots_strategies_by_hours_and_bolds_the_best():
    def row(s, h, cer, layout=None):
        name = s + (f" {'-'.join(map(str, layout))}" if layout else "")
        return {"strategy": s, "layout": layout, "name": name, "hours": h, "cer": cer,
                "cer_lo": cer - 0.1, "cer_hi": cer + 0.1}

    lines = glance([row("finetune", 0.1, 0.3), row("target_only", 0.1, 0.5),
                    row("target_only", 1.0, 0.2)])
    assert lines[0] == "| strategy | 0.1 h | 1 h |"
    assert lines[2] == "| target_only | 50.0 (40.0-60.0) | **20.0 (10.0-30.0)** |"
    assert lines[3] == "| finetune | **30.0 (20.0-40.0)** |  |"
    # a layout sweep: one row per layout, in layout order, after the strategy's table rank
    lines = glance([row("joint", 0.1, 0.4, (0, 3, 1)), row("joint", 0.1, 0.3, (0, 2, 2)),
                    row("target_only", 0.1, 0.5)])
    assert [x.split(" |")[0] for x in lines[2:]] == ["| target_only", "| joint 0-2-2", "| joint 0-3-1"]


def test_headline_skips_controls_and_warns_of_a_capped_baseline():
    def row(strategy, ratio, kind="within"):
        return {"strategy": strategy, "name": strategy, "hours": 0.1, "cer": 0.5,
                "equivalent_hours": ratio * 0.1,
                "ratio": ratio, "kind": kind, "clearly_better": True}

    rows = [row("joint_shuffled", 3.0), row("joint", 2.0), row("finetune", 5.0, "above")]
    text = headline(rows, "zh-CN")
    assert "(finetune)" in text and "at least 5.00x" in text and "Caution" not in text
    assert "(joint)" in headline(rows[:2], "zh-CN")  # the control is never the headline
    assert "1, 2 h was stopped by the update cap" in headline(rows, "zh-CN", [1.0, 2.0])
    # every target-only run capped: no ratio, and the headline says why (not "no runs")
    assert "stopped by the update cap at every amount (0.1, 0.3 h)" in headline([], "zh-CN", [0.1, 0.3])
    # target-only runs and nothing else yet (a sweep's first chunk): not "no target-only runs"
    assert "No run with the helper languages" in headline([], "zh-CN")
    assert "No target-only runs" in headline([], "zh-CN", baseline=False)
    # the interval and the seeds behind the headline ratio
    one = [row("finetune", 4.0) | {"ratio_interval": "3.1-5.2x", "seeds": 1}]
    text = headline(one, "zh-CN")
    assert "4.00x (95% interval 3.1-5.2x" in text and "one seed" in text
    assert "one seed" not in headline([one[0] | {"seeds": 3}], "zh-CN")


def test_strategies_are_one_table_of_records():
    """Planner and report read the records, not the names: a new strategy is one new row."""
    assert all(isinstance(s, Strategy) and s.name == name for name, s in STRATEGIES.items())
    assert [s.name for s in STRATEGIES.values() if s.role == "baseline"] == ["target_only"]
    joint, shuffled = STRATEGIES["joint"], STRATEGIES["joint_shuffled"]
    assert joint.languages(["de"], "it") == ["de", "it"] and shuffled.helper_text == "shuffled"
    assert STRATEGIES["target_only"].languages(["de"], "it") == ["it"]
    assert not STRATEGIES["target_only"].scored_on_helpers and joint.scored_on_helpers
    assert STRATEGIES["finetune"].needs_model and not joint.needs_model


def test_a_new_strategy_named_like_joint_is_not_joint(tmp_path, release, monkeypatch):
    """`joint_balanced` trains the target alone unless its record says otherwise (no name
    prefixes anywhere)."""
    import asr.experiment.strategies as strategies

    record = Strategy("joint_balanced", "a target-only variant with a joint-like name",
                      overrides=("data.alpha=0",))
    monkeypatch.setitem(strategies.STRATEGIES, record.name, record)
    exp = load_experiment_config(write_config(tmp_path / "n.yaml", release,
                                              strategies=("target_only", "joint_balanced")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepare_experiment_data(exp, tmp_path / "out", run_config(exp, "target_only", 0).features)
    jobs = {j.strategy: j for j in plan_jobs(exp, tmp_path / "out")}
    assert "pretrain" not in jobs  # nothing needs the helpers' model
    assert jobs["joint_balanced"].locales == ["zh-CN"] and jobs["joint_balanced"].starts_from is None
    assert jobs["joint_balanced"].cfg.data.alpha == 0


@pytest.fixture(scope="module")
def european_release(tmp_path_factory):
    root = tmp_path_factory.mktemp("exp-it") / "cv"
    for locale in ("it", "de", "fr", "es", "zh-CN"):
        make_release(root, locale, train=12, dev=3, test=3, speakers=(4, 1, 1),
                     seconds=[0.5, 0.8])
    return root


def test_a_european_target_runs_to_a_report(european_release, tmp_path):
    """Any locale can be the target: Italian from German, French, Spanish and Mandarin,
    through training, scoring, the report and the plot."""
    path = write_config(tmp_path / "it.yaml", european_release, strategies=("target_only", "finetune"))
    exp = load_experiment_config(path, ["target.locale=it", "helpers.locales=[de,fr,es,zh-CN]",
                                        "target.hours=[0.001,0.002]", "budget.max_steps=2",
                                        "budget.valid_every=2", "budget.patience=1"])
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = run_experiment(exp, out, device="cpu", progress=False)
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {r["strategy"] for r in rows} == {"pretrain", "target_only", "finetune"}
    assert all(r["cer"] for r in rows if r["strategy"] != "pretrain")
    assert not any("ser" in k for k in rows[0])  # Italian has no romanised metric
    assert {"de_cer", "fr_cer", "es_cer", "zh-CN_cer"} <= set(rows[0])
    md = (out / "results.md").read_text()
    assert "it CER against hours" in md and "Forgetting" in md
    assert (out / "cer_vs_hours.png").stat().st_size > 1000
    assert [f["strategy"] for f in report["forgetting"]] == ["finetune", "finetune"]
    tuned = sorted((out / "runs").glob("finetune-*"))
    assert len(tuned) == 2
    for run_dir in tuned:  # it keeps a LID reference, left out of the recogniser's cost
        described = json.loads((run_dir / "run.json").read_text())
        result = json.loads((run_dir / "result.json").read_text())
        assert described["lid_reference_parameters"] > 0
        assert result["parameters"] == described["parameters"] - described["lid_reference_parameters"]


def test_ledger_carries_a_sweep_across_machines(release, tmp_path, monkeypatch, capsys):
    """Finished runs go to the committed ledger; on a machine without the run directories the
    sweep trains nothing it records, the report is rebuilt from the ledger alone, and a run
    missing from it is trained again together with the helpers' model it starts from."""
    from asr.experiment.ledger import Ledger

    ledger_path = tmp_path / "docs" / "ledger.jsonl"
    cfg = write_config(tmp_path / "l.yaml", release, ledger=ledger_path)
    first = run(cfg, tmp_path / "a")
    ledger = Ledger(ledger_path)
    assert len(ledger) == 1 + 2 * len(HOURS)
    assert all(r.machine and r.dev_curve for r in ledger.runs.values())
    lines = ledger_path.read_text().splitlines()
    assert lines == sorted(lines, key=lambda x: (json.loads(x)["strategy"],
                                                 json.loads(x)["hours"] or -1.0,
                                                 json.loads(x)["seed"], json.loads(x)["key"]))
    capsys.readouterr()
    real_fit = asr.train.Trainer.fit
    monkeypatch.setattr(asr.train.Trainer, "fit", lambda *a, **k: pytest.fail("retrained"))
    elsewhere = run(cfg, tmp_path / "b")  # another machine: no run directories
    assert elsewhere["runs"] == first["runs"]
    assert capsys.readouterr().out.count("in the ledger") == 1 + 2 * len(HOURS)
    # beside the ledger: the one model later runs start from, and nothing else
    state = Ledger(ledger_path).state_dir
    assert [p.relative_to(state).parts[0].split("-s")[0] for p in state.rglob("*.*")] == ["pretrain"]
    # one progressive run lost from the ledger: trained again from the carried helpers' model
    kept = [x for x in lines if not (json.loads(x)["strategy"] == "progressive"
                                     and json.loads(x)["hours"] == HOURS[0])]
    trained = []

    def fit(self, *args, **kwargs):
        trained.append(self.out.name.split("-s")[0])
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(asr.train.Trainer, "fit", fit)
    ledger_path.write_text("\n".join(kept) + "\n")
    again = run(cfg, tmp_path / "c")
    assert trained == [f"progressive-h{HOURS[0]:g}"]
    assert [r["strategy"] for r in again["runs"]] == [r["strategy"] for r in first["runs"]]
    # and without that model: the helpers' model is trained again too
    shutil.rmtree(state)
    ledger_path.write_text("\n".join(kept) + "\n")
    trained.clear()
    run(cfg, tmp_path / "d")
    assert sorted(trained) == ["pretrain", f"progressive-h{HOURS[0]:g}"]
    assert len(Ledger(ledger_path)) == 1 + 2 * len(HOURS)


def test_a_clone_without_the_data_reports_from_the_ledger_and_its_saved_plan(
        release, tmp_path, monkeypatch):
    """--report-only saves the planned keys and data facts beside the ledger; on a clone
    without the prepared data the same config and code report from them, never preparing
    the data, and leave out a ledger row the plan does not make; another config prepares."""
    import asr.experiment.study
    from asr.experiment.ledger import Ledger

    ledger_path = tmp_path / "docs" / "ledger.jsonl"
    cfg = write_config(tmp_path / "l.yaml", release, ledger=ledger_path)
    run(cfg, tmp_path / "a")
    assert not (ledger_path.parent / "plan.json").exists()  # saved by a report rebuild only
    rebuilt = run(cfg, tmp_path / "a", report_only=True)
    assert (ledger_path.parent / "plan.json").exists()
    ledger = Ledger(ledger_path)
    some = next(iter(ledger.runs.values()))
    ledger.add(dataclasses.replace(some, key="0123456789ab", test={}))  # another config's run

    def prepare(*args, **kwargs):
        pytest.fail("prepared the data")

    monkeypatch.setattr(asr.experiment.study, "prepare_experiment_data", prepare)
    clone = run(cfg, tmp_path / "clone", report_only=True)
    assert clone["runs"] == rebuilt["runs"] and len(clone["runs"]) == 1 + 2 * len(HOURS)
    assert ((tmp_path / "clone" / "results.md").read_text()
            == (tmp_path / "a" / "results.md").read_text())
    other = write_config(tmp_path / "m.yaml", release, ledger=ledger_path, patience=3)
    with pytest.raises(pytest.fail.Exception, match="prepared the data"):
        run(other, tmp_path / "other", report_only=True)


def test_dry_run_says_where_every_planned_run_stands(release, tmp_path, monkeypatch, capsys):
    """--dry-run trains nothing: each run is in the ledger, finished here, unfinished at the
    update of its last validation (here or in the carried state), or to train."""
    from asr.experiment.study import plan_status

    ledger_path = tmp_path / "docs" / "ledger.jsonl"
    cfg = write_config(tmp_path / "l.yaml", release, ledger=ledger_path)
    run(cfg, tmp_path / "a")
    lines = ledger_path.read_text().splitlines()
    ledger_path.write_text("\n".join(x for x in lines if json.loads(x)["strategy"] != "progressive")
                           + "\n")
    monkeypatch.setattr(asr.train.Trainer, "fit", lambda *a, **k: pytest.fail("trained"))
    exp = load_experiment_config(cfg)
    capsys.readouterr()
    here = {r["label"]: r["state"] for r in plan_status(exp, tmp_path / "a")}
    assert all(here[f"progressive {h:g} h seed 0"].startswith("finished here") for h in HOURS)
    assert sum(v.startswith("in the ledger") for v in here.values()) == 1 + len(HOURS)
    elsewhere = plan_status(exp, tmp_path / "b")  # another machine: no run folders
    states = {r["label"]: r["state"] for r in elsewhere}
    assert [states[f"progressive {h:g} h seed 0"] for h in HOURS] == ["to train"] * len(HOURS)
    unfinished = next(r for r in elsewhere if r["label"] == f"progressive {HOURS[0]:g} h seed 0")
    folder = Path(unfinished["run_dir"])
    folder.mkdir(parents=True)
    (folder / "train_state.safetensors").write_bytes(b"")
    (folder / "metrics.jsonl").write_text('{"kind": "valid", "step": 2}\n{"kind": "tr')
    states = {r["label"]: r["state"] for r in plan_status(exp, tmp_path / "b")}
    assert states[unfinished["label"]].startswith("unfinished here (at update 2:")
    out = capsys.readouterr().out
    assert out.rstrip().endswith(f"{1 + 2 * len(HOURS)} planned: {1 + len(HOURS)} in the ledger, "
                                 f"1 unfinished here, 1 to train")


def test_a_run_another_experiment_finished_is_taken_from_its_ledger(release, tmp_path,
                                                                    monkeypatch, capsys):
    """An experiment that plans a run another one finished (the same key) takes it from the
    other's ledger (`ledgers_from`) instead of training it, and restores the helpers' model
    its own new runs start from out of the other's carried state."""
    from asr.experiment.ledger import Ledger

    first_ledger = tmp_path / "docs" / "first" / "ledger.jsonl"
    cfg = write_config(tmp_path / "first.yaml", release)
    cfg.write_text(cfg.read_text() + f"ledger: {first_ledger}\n")
    run(cfg, tmp_path / "first", [f"target.hours=[{HOURS[0]}]"])
    assert len(Ledger(first_ledger)) == 3  # pretrain, target_only and progressive at HOURS[0]
    second_ledger = tmp_path / "docs" / "second" / "ledger.jsonl"
    other = write_config(tmp_path / "second.yaml", release)
    other.write_text(other.read_text().replace("name: tiny_transfer", "name: second")
                     + f"ledger: {second_ledger}\nledgers_from: [{first_ledger}]\n")
    trained, real_fit = [], asr.train.Trainer.fit

    def fit(self, *args, **kwargs):
        trained.append(self.out.name.split("-s")[0])
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(asr.train.Trainer, "fit", fit)
    capsys.readouterr()
    report = run(other, tmp_path / "second")
    assert sorted(trained) == sorted(f"{s}-h{HOURS[1]:g}" for s in ("target_only", "progressive"))
    assert capsys.readouterr().out.count(f"taken from {first_ledger}") == 3
    assert len(Ledger(second_ledger)) == len(report["runs"]) == 1 + 2 * len(HOURS)
    assert len(Ledger(first_ledger)) == 3  # read only
    bad = tmp_path / "bad.yaml"
    bad.write_text(other.read_text().replace(str(first_ledger), str(tmp_path / "nowhere.jsonl")))
    with pytest.raises(FileNotFoundError, match="nowhere.jsonl not found"):
        run(bad, tmp_path / "bad")
    bad.write_text(other.read_text().replace(f"ledger: {second_ledger}\n", ""))
    with pytest.raises(ConfigError, match="ledgers_from needs a ledger"):
        run(bad, tmp_path / "bad")


def test_an_unfinished_run_resumes_on_another_machine(release, tmp_path, monkeypatch):
    """An interrupted run's resume state, mirrored beside the ledger, lets a sweep on a machine
    without its run folder resume it (train seconds adding up) rather than start again; once
    finished, the mirror is dropped."""
    from asr.experiment import carry
    from asr.experiment.ledger import Ledger

    monkeypatch.setattr(carry, "CARRY_SECONDS", 0.0)
    one_point = [f"target.hours=[{HOURS[0]}]"]
    ledger_path = tmp_path / "docs" / "ledger.jsonl"
    cfg = write_config(tmp_path / "u.yaml", release, strategies=("target_only",),
                       ledger=ledger_path, max_steps=6, patience=5)
    resumed = crash_first_fit(monkeypatch)  # its state at step 2 is mirrored
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "a", one_point)
    state = Ledger(ledger_path).state_dir
    (carried,) = state.iterdir()
    assert (carried / "train_state.safetensors").exists() and len(Ledger(ledger_path)) == 0
    seconds = json.loads((carried / "timing.json").read_text())["train_seconds"]
    # the killed session's time is kept in the run folder too, for a resume on this machine
    assert json.loads((tmp_path / "a" / "runs" / carried.name / "timing.json").read_text()) == \
        json.loads((carried / "timing.json").read_text())
    report = run(cfg, tmp_path / "b", one_point)
    assert resumed == [False, True]
    (r,) = Ledger(ledger_path).runs.values()
    assert r.steps == 6 and report["runs"][0]["steps"] == 6 and r.train_seconds > seconds
    assert [p for p in state.iterdir()] == []  # finished, and nothing starts from it


def test_a_finished_run_keeps_every_model_a_later_run_may_start_from(tmp_path):
    """carry: a finished joint run that a fine-tuning starts from keeps both its models (the
    target's best and the best on every language) beside the ledger and nothing else; a
    machine without them gets both back, and one holding one of them gets the other."""
    from asr.experiment import carry

    run_dir, carried = tmp_path / "run", tmp_path / "state" / "run"
    run_dir.mkdir()
    files = {"model.safetensors": "target", "model_schedule_best.safetensors": "all",
             "train_state.safetensors": "state", "metrics.jsonl": "{}", "timing.json": "{}"}
    for name, text in files.items():
        (run_dir / name).write_text(text)
    assert carry.save_progress(run_dir, carried, {"train_seconds": 1.0, "sessions": 1})
    assert sorted(p.name for p in carried.iterdir()) == sorted(files)
    carry.keep_model(run_dir, carried)
    models = ["model.safetensors", "model_schedule_best.safetensors"]
    assert sorted(p.name for p in carried.iterdir()) == models
    elsewhere = tmp_path / "elsewhere"
    assert carry.restore(elsewhere, carried) == "model"
    assert {p.name: p.read_text() for p in elsewhere.iterdir()} == {
        m: files[m] for m in models}
    (elsewhere / models[1]).unlink()
    assert carry.restore(elsewhere, carried) == "model"
    assert carry.restore(elsewhere, carried) is None  # nothing missing
    assert (elsewhere / models[1]).read_text() == "all"


def test_report_quotes_no_ratio_from_a_capped_run():
    from asr.experiment.report import ratios

    def row(strategy, hours, cer, capped=False):
        return {"strategy": strategy, "name": strategy, "hours": hours, "actual_hours": hours,
                "cer": cer, "cer_lo": cer - 0.05, "cer_hi": cer + 0.05, "hit_cap": [capped]}

    rows = [row("target_only", 0.1, 0.8), row("target_only", 0.2, 0.6),
            row("target_only", 0.4, 0.4, capped=True), row("finetune", 0.1, 0.5),
            row("finetune", 0.2, 0.3, capped=True)]
    out = {(r["strategy"], r["hours"]): r for r in ratios(rows)}
    assert out[("finetune", 0.2)]["kind"] == "capped" and out[("finetune", 0.2)]["ratio"] is None
    # the capped 0.4 h baseline point is not on the curve: 0.5 beats every converged point
    assert out[("finetune", 0.1)]["kind"] == "above"
    assert out[("finetune", 0.1)]["equivalent_hours"] == 0.2


def test_forgetting_is_measured_against_the_model_a_run_started_from():
    """finetune against the helpers' model; joint_finetune against the model of its joint
    run that it starts from, the best on every language (not the joint model, the best on the
    target, nor the helpers' model); joint, trained from scratch, against the helpers' model."""
    from asr.experiment.report import forgetting
    from asr.experiment.results import Metric

    def scores(de_cer):
        return {"de": LocaleScores(1, {"cer": Metric(de_cer, (0.0, 1.0))}, ("u",), (1,), (1,))}

    def result(strategy, de_cer, run_dir, pretrain=None, hours=0.1, schedule_cer=None):
        return RunResult(key=run_dir, strategy=strategy, seed=0, hours=hours,
                         actual_hours=hours, unseen_char_rate=0.0, test=scores(de_cer),
                         parameters=1, trainable_parameters=1, train_seconds=1.0, steps=1,
                         best_step=1, stopped_early=True, max_steps=9, run_dir=run_dir,
                         pretrain=pretrain, dev_curve=((1, 0.5),), machine="test",
                         schedule_test=None if schedule_cer is None else scores(schedule_cer))

    results = [result("pretrain", 0.1, "exp/x/runs/pretrain-s0-a", hours=None),
               result("joint", 0.9, "exp/x/runs/joint-h0.1-s0-b", schedule_cer=0.2),
               result("joint_finetune", 0.5, "exp/x/runs/joint_finetune-h0.1-s0-c",
                      pretrain="/elsewhere/runs/joint-h0.1-s0-b"),  # matched by run name
               result("finetune", 0.6, "exp/x/runs/finetune-h0.1-s0-d",
                      pretrain="exp/x/runs/pretrain-s0-a")]
    rows = {f["strategy"]: f["de"] for f in forgetting(results, ["de"], "cer")}
    assert rows["joint"]["before"] == 0.1 and rows["finetune"]["before"] == 0.1
    assert rows["joint_finetune"]["before"] == 0.2
    assert math.isclose(rows["joint_finetune"]["change"], 0.3)


def test_joint_finetune_starts_from_the_joint_run_of_its_point(tmp_path, release):
    path = write_config(tmp_path / "j.yaml", release, strategies=("joint_finetune", "joint"))
    exp = load_experiment_config(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepare_experiment_data(exp, tmp_path / "out", run_config(exp, "joint", 0).features)
    jobs = plan_jobs(exp, tmp_path / "out")
    for j in (j for j in jobs if j.strategy == "joint_finetune"):
        assert j.starts_from.strategy == "joint" and j.starts_from.hours == j.hours
        assert j.locales == ["zh-CN"] and jobs.index(j.starts_from) < jobs.index(j)
    with pytest.raises(ConfigError, match="joint_finetune at .* starts from the joint run"):
        load_experiment_config(path, [f"grid.per_strategy={{joint: {{hours: [{HOURS[0]}]}}}}"])
    # trained: it starts from the joint run's best on every language's mean dev CER (not the
    # joint model, its best on zh-CN's), validated before the first update to compete for its
    # own best (train.validate_start); one checkpoint kept, so no average replaces that best
    run(path, tmp_path / "out", [f"target.hours=[{HOURS[1]}]", "run.overrides=[model.d_model=32, "
                                 "data.batch_frames=2000, train.keep_checkpoints=1]"])
    rows = {}
    for name in ("joint", "joint_finetune"):
        (run_dir,) = (tmp_path / "out" / "runs").glob(f"{name}-h*")
        rows[name] = [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text()
                                     .splitlines()) if r["kind"] == "valid"]
    mean_best = min(rows["joint"], key=lambda r: (r["scores"]["mean"]["cer"], -r["step"]))
    # that model is scored on the test sets too: the "before" of joint_finetune's forgetting
    (joint_dir,) = (tmp_path / "out" / "runs").glob("joint-h*")
    joint = RunResult.load(joint_dir / "result.json")
    assert sorted(joint.schedule_test) == sorted(joint.test) == ["de", "zh-CN"]
    assert (joint_dir / "schedule_test_de.jsonl").exists()
    start = rows["joint_finetune"][0]
    assert start["step"] == 0
    assert start["scores"]["zh-CN"] == pytest.approx(mean_best["scores"]["zh-CN"])


def test_two_sweeps_adding_to_one_ledger_keep_both_runs(tmp_path):
    from asr.experiment.ledger import Ledger

    def result(key: str, hours: float) -> RunResult:
        return RunResult(key=key, strategy="target_only", seed=0, hours=hours, actual_hours=hours,
                         unseen_char_rate=0.0, test={}, parameters=1, trainable_parameters=1,
                         train_seconds=1.0, steps=10, best_step=10, stopped_early=True,
                         max_steps=100, run_dir=f"runs/{key}", pretrain=None,
                         dev_curve=((10, 0.5),), machine="test")

    a, b = Ledger(tmp_path / "ledger.jsonl"), Ledger(tmp_path / "ledger.jsonl")
    a.add(result("aaa", 0.1))
    b.add(result("bbb", 0.2))  # b never saw a's run: the file still keeps it
    assert sorted(Ledger(tmp_path / "ledger.jsonl").runs) == ["aaa", "bbb"]
    assert not (tmp_path / ".asr.lock").exists()


def test_layout_kinds():
    from asr.experiment.config import layout_kind
    assert [layout_kind(x) for x in ((0, 4, 0), (0, 3, 1), (1, 2, 1), (0, 0, 4), (1, 3, 0))] == [
        "all shared", "shared bottom", "shared middle", "no sharing", "shared top"]


def test_layouts_are_a_sweep_dimension(tmp_path, release):
    """Sharing depth: each layout of joint and finetune is its own run (in its key, its folder
    and its result), finetune of a layout starts from the helpers' model of that layout, and
    the report shows the layouts side by side."""

    path = write_config(tmp_path / "lay.yaml", release, strategies=("target_only", "joint",
                                                                     "finetune"))
    layouts = "[[0, 1, 1], [0, 0, 2]]"
    overrides = ["run.overrides=[model.d_model=32, data.batch_frames=2000, 'model.layout=[0,2,0]']",
                 f"target.hours=[{HOURS[1]}]",
                 f"grid.per_strategy={{joint: {{layouts: {layouts}}}, "
                 f"finetune: {{layouts: {layouts}}}}}"]
    exp = load_experiment_config(path, overrides)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepare_experiment_data(exp, tmp_path / "out", run_config(exp, "joint", 0).features)
    jobs = plan_jobs(exp, tmp_path / "out")
    got = sorted((j.strategy, j.layout) for j in jobs)
    assert got == sorted([("pretrain", (0, 1, 1)), ("pretrain", (0, 0, 2)), ("target_only", None),
                          ("joint", (0, 1, 1)), ("joint", (0, 0, 2)),
                          ("finetune", (0, 1, 1)), ("finetune", (0, 0, 2))])
    for j in jobs:
        assert j.cfg.model.layout == (j.layout or (0, 2, 0))
        if j.starts_from is not None:
            assert j.starts_from.layout == j.layout
    assert len({j.key for j in jobs}) == len(jobs) and "-L0-1-1-" in str(jobs[0].run_dir) + "".join(
        str(j.run_dir) for j in jobs)
    with pytest.raises(ConfigError, match="progressive column keeps"):
        load_experiment_config(path, ["grid.strategies=[progressive]",
                                      f"grid.per_strategy={{progressive: {{layouts: {layouts}}}}}"])
    report = run(path, tmp_path / "out", overrides)
    names = {r["name"] for r in report["aggregate"]}
    assert names == {"target_only", "joint 0-1-1", "joint 0-0-2", "finetune 0-1-1",
                     "finetune 0-0-2"}
    md = (tmp_path / "out" / "results.md").read_text()
    assert "| finetune 0-0-2 |" in md and "| joint 0-1-1 |" in md
    assert {r["layout"] for r in csv.DictReader(open(tmp_path / "out" / "results.csv"))} == {
        "", "0-1-1", "0-0-2"}
    # the sharing-depth section: its table and figure, the no-sharing control named
    from asr.experiment.report import sharing_rows
    assert "## Sharing depth" in md and "| joint | " in md and "no sharing" in md
    assert (tmp_path / "out" / "cer_vs_shared_blocks.png").stat().st_size > 0
    assert {(r["strategy"], r["shared"], r["kind"]) for r in sharing_rows(report["aggregate"])} == {
        ("joint", 1, "shared bottom"), ("joint", 0, "no sharing"),
        ("finetune", 1, "shared bottom"), ("finetune", 0, "no sharing")}
    # forgetting compares each finetune layout with the helpers' model of that layout
    pre = {tuple(j.layout): RunResult.load(j.run_dir / "result.json")
           for j in jobs if j.strategy == "pretrain"}
    for f in report["forgetting_cer"]:
        if f["strategy"] == "finetune":
            layout = tuple(int(x) for x in f["name"].split()[1].split("-"))
            assert f["de"]["before"] == pre[layout].test["de"].rate("cer")


def test_an_option_added_at_its_neutral_value_keeps_every_run_key():
    """KEY_NEUTRAL: a run-config field added after the finished runs, at the value that
    computes what the code did before it, stays out of the key (the ledger keeps matching);
    set otherwise, it keys the run."""
    from asr.config import load_run_config
    from asr.experiment.plan import KEY_NEUTRAL, keyed_config

    plain = keyed_config(load_run_config("small"))
    for section, name in KEY_NEUTRAL:
        assert name not in plain[section]
    for option, value in (("validate_start", True), ("schedule_metric", "mean_cer"),
                          ("keep_schedule_best", True), ("fresh_heads", True)):
        # keep_schedule_best needs a schedule metric of its own, which keys the run too
        needs = ["train.schedule_metric=mean_cer", "train.select_metric=zh-CN_cer"]
        on = keyed_config(load_run_config("small", [f"train.{option}={value}", *needs]))
        off = keyed_config(load_run_config("small", needs))
        assert on["train"][option] == value
        assert {k: v for k, v in on["train"].items() if k != option} == {
            k: v for k, v in off["train"].items() if k != option}
