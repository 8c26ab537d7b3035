"""The transfer experiment's report: tables, the CER-vs-hours plot, data-efficiency ratios and
the forgetting table, from the runs' typed results (results.py). How a strategy is treated
(the baseline curve, a headline candidate, a control) is its record's role (strategies.py).

    results.csv       one row per run (programs)
    results.md        the headline sentence, the budget rule, aggregate, ratio, forgetting and
                      per-run tables, data facts, seeds and versions (people)
    cer_vs_hours.png  target CER against target hours (log x), one line per strategy, CI bands
    dev_cer_vs_updates.png  target dev CER against training updates per run: optimisation
                      speed, reported apart from data efficiency
    ratio_vs_hours.png  the data-efficiency ratio against target hours, with intervals and the
                      seed's ≈2x
    cer_vs_shared_blocks.png  a sharing-depth sweep's target CER against shared blocks

Intervals: per run, a percentile bootstrap over test utterances; per (strategy, hours), a
two-level bootstrap that resamples seeds and then utterances, so the seed-to-seed spread of
training widens the interval as much as the test set's sampling does.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from asr.experiment.config import layout_kind, layout_name
from asr.experiment.results import LocaleScores, RunResult
from asr.experiment.strategies import PRETRAIN, STRATEGIES, rank
from asr.fileio import atomic_write, write_json, write_text
from asr.languages import language

RESAMPLES = 1000
BASELINE = next(s.name for s in STRATEGIES.values() if s.role == "baseline")
# the known result this project sets out to reproduce: with European languages sharing the lower
# layers, ≈ 50 h of Mandarin reach the error rate of ≈ 100 h of Mandarin alone (converged models)
SEED_RATIO = 2.0
CONTROLS = tuple(s.name for s in STRATEGIES.values() if s.role == "control")  # never the headline


# ---- data-efficiency ratio ----------------------------------------------------------------
def equivalent_hours(curve: list[tuple[float, float]], cer: float) -> dict:
    """Hours of baseline data that reach `cer`, read off the baseline curve [(hours, cer)].

    The curve is walked from its fewest hours; the first segment that gets down to `cer` is
    interpolated linearly in log-hours. Outside the curve nothing is extrapolated:
    kind "below" (worse than the baseline's fewest hours: equivalent < curve's first hours),
    "above" (better than every baseline point: equivalent > its most hours), else "within".
    """
    pts = sorted(curve)
    if not pts:
        raise ValueError("no baseline points to compare with")
    (h0, c0) = pts[0]
    if cer > c0:
        return {"kind": "below", "hours": h0}
    if cer == c0:
        return {"kind": "within", "hours": h0}
    for (h1, c1), (h2, c2) in zip(pts, pts[1:], strict=False):
        if c2 <= cer < c1:
            t = (c1 - cer) / (c1 - c2)
            return {"kind": "within", "hours": math.exp(math.log(h1) + t * (math.log(h2) - math.log(h1)))}
    return {"kind": "above", "hours": pts[-1][0]}


def efficiency(curve: list[tuple[float, float]], hours: float, cer: float) -> dict:
    """{kind, equivalent_hours, ratio, text}: how many hours alone `hours` with helpers are worth."""
    eq = equivalent_hours(curve, cer)
    ratio = eq["hours"] / hours
    if eq["kind"] == "within":
        text = f"{hours:.3g} h with helpers is worth {eq['hours']:.3g} h alone = {ratio:.2f}x"
        label = f"{ratio:.2f}x"
    elif eq["kind"] == "above":
        text = (f"{hours:.3g} h with helpers beats target-only at its most data ({eq['hours']:.3g} h): "
                f">= {ratio:.2f}x (not extrapolated)")
        label = f">= {ratio:.2f}x"
    else:
        text = (f"{hours:.3g} h with helpers is worse than target-only at its least data "
                f"({eq['hours']:.3g} h): <= {ratio:.2f}x (not extrapolated)")
        label = f"<= {ratio:.2f}x"
    return {"kind": eq["kind"], "equivalent_hours": eq["hours"], "ratio": ratio, "label": label,
            "text": text}


# ---- intervals ----------------------------------------------------------------------------
def _error_matrix(runs: list[LocaleScores], ids: list[str]) -> np.ndarray:
    """(S, N) errors of each seed's run on the test utterances `ids`."""
    return np.array([[dict(zip(r.ids, r.errors, strict=True))[i] for i in ids] for r in runs],
                    dtype=np.float64)


def _units(run: LocaleScores, ids: list[str]) -> np.ndarray:
    """(N,) reference units of the test utterances `ids`."""
    return np.array([dict(zip(run.ids, run.units, strict=True))[i] for i in ids],
                    dtype=np.float64)


def pooled_interval(runs: list[LocaleScores], resamples: int = RESAMPLES, seed: int = 0,
                    level: float = 0.95) -> tuple[float, float]:
    """Two-level bootstrap of the seed-mean error rate: resample seeds, then utterances.

    runs: one seed's test scores each, on the same test set (aligned by id).
    """
    order = sorted(set(runs[0].ids).intersection(*(r.ids for r in runs[1:])))
    errors, units = _error_matrix(runs, order), _units(runs[0], order)  # (S, N), (N,)
    s, n = errors.shape
    if n == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    rates = np.empty(resamples)
    for b in range(resamples):
        seeds = rng.integers(0, s, size=s)
        utts = rng.integers(0, n, size=n)
        rates[b] = (errors[seeds][:, utts].sum(axis=1) / max(units[utts].sum(), 1)).mean()
    alpha = (1 - level) / 2
    return float(np.quantile(rates, alpha)), float(np.quantile(rates, 1 - alpha))


def ratio_intervals(results: list[RunResult], target: str, ratio_rows: list[dict],
                    resamples: int = RESAMPLES, seed: int = 0,
                    level: float = 0.95) -> dict[tuple[str, float], tuple[float, float]]:
    """95% interval of every quoted data-efficiency ratio, {(name, hours): (low, high)}.

    One bootstrap for the whole table: each resample draws the test utterances once (every
    run is scored on the same test set, so the draw is paired across runs), and the seeds of
    every (strategy, hours) anew; it rebuilds the target-only curve from the resampled seed
    means and reads each strategy's resampled CER off it. A resample that falls beyond the
    curve gives no number, only a side: +inf above its most hours, 0 below its fewest, so an
    end of the interval is infinite (or 0) when more than 2.5% of the resamples leave the
    curve on that side. Rows without a ratio (stopped by the cap) get none."""
    quoted = {(r["name"], r["hours"]) for r in ratio_rows if r["ratio"] is not None}
    groups: dict[tuple[str, float], list[RunResult]] = {}
    for r in results:
        if r.strategy != PRETRAIN and target in r.test:
            groups.setdefault((r.variant, r.hours), []).append(r)
    base = {k: rs for k, rs in groups.items()
            if rs[0].strategy == BASELINE and not any(r.hit_cap for r in rs)}
    # in sorted order: the draws go to the rows in this order, and a set's order changes with
    # each process's string hashing, so the same ledger would give other intervals
    wanted = {k: groups[k] for k in sorted(quoted) if k in groups}
    if not base or not wanted:
        return {}
    everything = [r.test[target] for rs in (*base.values(), *wanted.values()) for r in rs]
    ids = sorted(set(everything[0].ids).intersection(*(t.ids for t in everything[1:])))
    if not ids:
        return {}
    units = _units(everything[0], ids)  # (N,)
    errors = {k: _error_matrix([r.test[target] for r in rs], ids)
              for k, rs in (base | wanted).items()}  # (S, N) each
    hours = {k: float(np.mean([r.actual_hours for r in rs])) for k, rs in (base | wanted).items()}
    rng = np.random.default_rng(seed)
    draws = {k: np.empty(resamples) for k in wanted}

    def cer(e: np.ndarray, utts: np.ndarray) -> float:
        """Seed-mean CER of one resample: seeds of `e` (S, N) redrawn, utterances `utts`."""
        picked = e[rng.integers(0, len(e), size=len(e))][:, utts]
        return float((picked.sum(axis=1) / max(units[utts].sum(), 1.0)).mean())

    for b in range(resamples):
        utts = rng.integers(0, len(ids), size=len(ids))
        curve = [(hours[k], cer(errors[k], utts)) for k in base]
        for k in wanted:
            eq = equivalent_hours(curve, cer(errors[k], utts))
            draws[k][b] = {"within": eq["hours"], "above": math.inf, "below": 0.0}[eq["kind"]] / hours[k]
    alpha = (1 - level) / 2
    # no interpolation between resamples: an end is a resample's ratio (or a side)
    return {k: (float(np.quantile(d, alpha, method="lower")),
                float(np.quantile(d, 1 - alpha, method="higher"))) for k, d in draws.items()}


def ratio_interval_text(low: float | None, high: float | None, curve_hours: tuple[float, float],
                        hours: float) -> str:
    """"9.1-20.3x"; an end beyond the target-only curve as the bound it is ("> 8x", "< 1x"),
    "9.1x to > 16x" when only one end is."""
    if low is None:
        return "-"
    if all(0 < x < math.inf for x in (low, high)):
        return f"{low:.3g}-{high:.3g}x"

    def end(x: float) -> str:
        if math.isinf(x):
            return f"> {curve_hours[1] / hours:.3g}x"
        if x == 0:
            return f"< {curve_hours[0] / hours:.3g}x"
        return f"{x:.3g}x"

    return end(low) if end(low) == end(high) else f"{end(low)} to {end(high)}"


# ---- tables -------------------------------------------------------------------------------
def own_metrics(results: list[RunResult], target: str) -> list[str]:
    """The target language's metrics besides CER and WER (zh-CN: "ser", toned pinyin)."""
    names = {m for r in results if target in r.test for m in r.test[target].metrics}
    return sorted(names - {"cer", "wer"})


def aggregate(results: list[RunResult], target: str, helpers: list[str]) -> list[dict]:
    """One row per (strategy, layout, hours): seed means, pooled interval, stopping steps.
    "name" is what the tables show: the strategy, with its layout in a sharing-depth sweep."""
    groups: dict[tuple[str, float], list[RunResult]] = {}
    for r in results:
        if r.strategy != PRETRAIN:
            groups.setdefault((r.variant, r.hours), []).append(r)
    own = own_metrics(results, target)
    rows = []
    for (name, hours), runs in sorted(groups.items(), key=lambda kv: _order_run(kv[1][0])):
        runs = sorted(runs, key=lambda r: r.seed)
        t = [r.test[target] for r in runs]
        lo, hi = pooled_interval(t)
        row = {"strategy": runs[0].strategy, "layout": runs[0].layout, "name": name,
               "hours": hours, "seeds": [r.seed for r in runs],
               "actual_hours": float(np.mean([r.actual_hours for r in runs])),
               "cer": float(np.mean([x.rate("cer") for x in t])), "cer_lo": lo, "cer_hi": hi,
               "own": {m: float(np.mean([x.rate(m) for x in t])) for m in own},
               "unseen_char_rate": float(np.mean([r.unseen_char_rate for r in runs])),
               "steps": [r.steps for r in runs], "hit_cap": [r.hit_cap for r in runs],
               "train_seconds": float(np.mean([r.train_seconds for r in runs])),
               "parameters": runs[0].parameters,
               "trainable_parameters": runs[0].trainable_parameters}
        for loc in helpers:
            row[f"{loc}_wer"] = (float(np.mean([r.test[loc].rate("wer") for r in runs]))
                                 if all(loc in r.test for r in runs) else None)
        scored = all(loc in r.test for r in runs for loc in helpers) and helpers
        row["helper_cer"] = (float(np.mean([r.test[loc].rate("cer") for r in runs
                                            for loc in helpers])) if scored else None)
        rows.append(row)
    return rows


def ratios(rows: list[dict]) -> list[dict]:
    """Data-efficiency ratio of every non-baseline (strategy, hours) against the baseline curve,
    and whether its CER interval lies clearly below the baseline's at the same hours.

    Only converged runs count: a baseline point any of whose seeds was stopped by the update
    cap is left out of the curve, and a row stopped by the cap gets no ratio (kind "capped"):
    a ratio read off an unconverged curve measures optimisation speed, not data."""
    converged = [r for r in rows if not any(r["hit_cap"])]
    curve = [(r["actual_hours"], r["cer"]) for r in converged if r["strategy"] == BASELINE]
    if not curve:
        return []
    base = {r["hours"]: r for r in rows if r["strategy"] == BASELINE}
    out = []
    for r in rows:
        if r["strategy"] == BASELINE:
            continue
        b = base.get(r["hours"])
        row = {"strategy": r["strategy"], "name": r["name"], "hours": r["hours"], "cer": r["cer"],
               "seeds": len(r.get("seeds", ())),
               "clearly_better": None if b is None else r["cer_hi"] < b["cer_lo"],
               "clearly_worse": None if b is None else r["cer_lo"] > b["cer_hi"]}
        if any(r["hit_cap"]):
            out.append(row | {"kind": "capped", "equivalent_hours": None, "ratio": None,
                              "label": "not quoted: stopped by the cap",
                              "text": f"{r['hours']:g} h: stopped by the update cap"})
        else:
            out.append(row | efficiency(curve, r["actual_hours"], r["cer"]))
    return out


def with_intervals(ratio_rows: list[dict], results: list[RunResult], rows: list[dict],
                   target: str) -> list[dict]:
    """The ratio rows with their bootstrap interval: "ratio_interval" (text, bounds where the
    target-only curve ends), "ratio_low"/"ratio_high" (None where beyond the curve or not
    computed) and "ratio_beyond" ({end: side} for the ends beyond the curve: "above" its most
    hours or "below" its fewest)."""
    curve = [r["actual_hours"] for r in rows if r["strategy"] == BASELINE and not any(r["hit_cap"])]
    found = ratio_intervals(results, target, ratio_rows)
    actual = {(r["name"], r["hours"]): r["actual_hours"] for r in rows}  # what ratios divide by
    out = []
    for r in ratio_rows:
        key = (r["name"], r["hours"])
        low, high = found.get(key, (None, None))
        text = ("-" if low is None or not curve
                else ratio_interval_text(low, high, (min(curve), max(curve)), actual[key]))
        beyond = {end: "above" if math.isinf(x) else "below"
                  for end, x in (("low", low), ("high", high))
                  if x is not None and (math.isinf(x) or x == 0)}
        finite = [None if x is None or math.isinf(x) or x == 0 else x for x in (low, high)]
        out.append(r | {"ratio_low": finite[0], "ratio_high": finite[1], "ratio_beyond": beyond,
                        "ratio_interval": text})
    return out


def forgetting(results: list[RunResult], helpers: list[str], metric: str = "wer") -> list[dict]:
    """Helper error rate (`metric`: wer or cer) before and after each run; means over seeds
    per (strategy, hours), and the largest change of any seed. Before: the model the run
    started from (the helpers' model for finetune and progressive; for a start from a joint
    model, the joint run's best on every language, its schedule_test); for a run trained from
    scratch (joint), the helpers' pretrained model. Only strategies whose model knows the
    helpers have a row."""
    pretrains = [r for r in results if r.strategy == PRETRAIN]
    by_dir = {Path(r.run_dir).name: r for r in results}  # run dir names carry the run key

    def before(r: RunResult) -> RunResult | None:
        """The model the run started from; else the helpers' model of the run's seed and
        layout; else of its layout (one for every seed: helpers.model_per_seed false); else of
        its seed; else the only one."""
        if r.pretrain and Path(r.pretrain).name in by_dir:
            return by_dir[Path(r.pretrain).name]
        for match in (lambda p: p.seed == r.seed and p.layout == r.layout,
                      lambda p: p.layout == r.layout,
                      lambda p: p.seed == r.seed and p.layout is None,
                      lambda p: len(pretrains) == 1):
            found = [p for p in pretrains if match(p)]
            if found:
                return found[0]
        return None

    def before_scores(r: RunResult) -> dict[str, LocaleScores] | None:
        b = before(r)
        if b is None:
            return None
        return b.schedule_test if STRATEGIES[r.strategy].start == "joint_model" else b.test

    groups: dict[tuple[str, float], list[RunResult]] = {}
    for r in results:
        if (r.strategy in STRATEGIES and STRATEGIES[r.strategy].scored_on_helpers
                and before_scores(r) is not None):
            groups.setdefault((r.variant, r.hours), []).append(r)
    rows = []
    for (name, hours), runs in sorted(groups.items(), key=lambda kv: _order_run(kv[1][0])):
        row = {"strategy": runs[0].strategy, "name": name, "hours": hours,
               "seeds": sorted(r.seed for r in runs)}
        changes = []
        for loc in helpers:
            b = [before_scores(r)[loc].rate(metric) for r in runs]
            a = [r.test[loc].rate(metric) for r in runs]
            changes += [y - x for x, y in zip(b, a, strict=True)]
            row[loc] = {"before": float(np.mean(b)), "after": float(np.mean(a)),
                        "change": float(np.mean(a) - np.mean(b))}
        row["max_abs_change"] = max(abs(c) for c in changes)
        rows.append(row)
    return rows


def _order(strategy: str, hours: float | None, layout: tuple | None = None) -> tuple:
    """Strategies in the order of their table (strategies.py), then layouts, then hours."""
    return (rank(strategy), layout or (), hours or 0.0)


def _order_run(r: RunResult) -> tuple:
    return _order(r.strategy, r.hours, r.layout)


def metric_description(metric: str, locale: str) -> str:
    """A metric's name for people: "SER, the toned syllable error rate (pinyin)"."""
    rom = language(locale).romanisation
    if rom is not None and rom.metric == metric:
        return f"{metric.upper()}, the {rom.unit} error rate ({rom.kind})"
    return metric.upper()


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _table(header: list[str], lines: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(cells) + " |" for cells in lines])


def run_rows(results: list[RunResult], target: str, helpers: list[str]) -> list[dict]:
    """The per-run table (results.csv)."""
    own = own_metrics(results, target)
    out = []
    for r in sorted(results, key=lambda r: (*_order_run(r), r.seed)):
        t = r.test.get(target)
        ci = t.metrics["cer"].ci95 if t else (None, None)
        row = {"strategy": r.strategy, "target_hours": r.hours, "actual_hours": r.actual_hours,
               "seed": r.seed, "cer": t.rate("cer") if t else None, "cer_ci_low": ci[0],
               "cer_ci_high": ci[1]}
        row |= {f"{target}_{m}": t.rate(m) if t else None for m in own}
        row["unseen_char_rate"] = r.unseen_char_rate
        for m in ("wer", "cer"):
            row |= {f"{loc}_{m}": r.test[loc].rate(m) if loc in r.test else None
                    for loc in helpers}
        row |= {k: getattr(r, k) for k in ("parameters", "trainable_parameters", "train_seconds",
                                           "lid_fit_seconds", "steps", "best_step",
                                           "stopped_early", "max_steps", "run_dir")}
        row["layout"] = layout_name(r.layout)
        row["machine"] = r.machine  # the CPU (or GPU) it trained on
        out.append(row)
    return out


def headline(ratio_rows: list[dict], target: str, capped: list[float] = (),
             baseline: bool = True) -> str:
    """One plain sentence for the top of results.md, with cautions where the intervals overlap
    or the target-only curve it is read from was cut short by the update cap. `baseline`:
    whether any target-only run is reported at all."""
    main = [r for r in ratio_rows
            if STRATEGIES[r["strategy"]].role == "transfer" and r["kind"] in ("within", "above")]
    if not ratio_rows and capped:
        return (f"Target-only training was stopped by the update cap at every amount "
                f"({', '.join(f'{h:g}' for h in capped)} h), not by convergence, so no "
                "data-efficiency ratio is quoted: one read off an unconverged curve measures how "
                "much faster a model trains, not how much data it saves. Compare the CERs at equal "
                "hours below, or train to convergence (train.schedule=plateau, a higher "
                "budget.max_steps).")
    if not ratio_rows and baseline:
        return ("No run with the helper languages is finished yet: the target-only curve below "
                "is what their data-efficiency ratios will be read from.")
    if not ratio_rows:
        return "No target-only runs: no data-efficiency ratio can be computed."
    if not main:
        return (f"No strategy with helper languages reached the CER of target-only training at "
                f"its fewest hours: no data-efficiency gain was measured for {target}.")
    best = max(main, key=lambda r: (r["ratio"], r["kind"] == "within"))
    interval = best.get("ratio_interval", "-")
    interval = "" if interval == "-" else f" (95% interval {interval}, seeds and utterances)"
    if best["kind"] == "within":
        text = (f"With the helper languages ({best['name']}), {best['hours']:g} h of {target} "
                f"reach the CER ({100 * best['cer']:.1f}%) that {best['equivalent_hours']:.3g} h "
                f"of {target} alone reach: a data-efficiency ratio of {best['ratio']:.2f}x"
                f"{interval}.")
    else:
        text = (f"With the helper languages ({best['name']}), {best['hours']:g} h of {target} "
                f"({100 * best['cer']:.1f}% CER) beat target-only training at every amount "
                f"measured (up to {best['equivalent_hours']:.3g} h): a ratio of at least "
                f"{best['ratio']:.2f}x{interval}.")
    if best.get("seeds") == 1:
        text += " It rests on one seed, and seeds differ a lot at small amounts of data."
    if best["clearly_better"] is False:
        text += (f" Caution: its 95% interval overlaps target-only's at {best['hours']:g} h, so "
                 "this difference is within the noise of this test set and these seeds.")
    if capped:
        text += (f" Caution: target-only training at {', '.join(f'{h:g}' for h in capped)} h was "
                 "stopped by the update cap, not by convergence, so those points are left out of "
                 "the target-only curve the ratios are read from: raise budget.max_steps.")
    return text


def headline_of(rows: list[dict], ratio_rows: list[dict], target: str) -> str:
    """`headline` for the aggregate rows: the capped target-only points and whether any exist."""
    return headline(ratio_rows, target, baseline_capped(rows),
                    any(r["strategy"] == BASELINE for r in rows))


def baseline_capped(rows: list[dict]) -> list[float]:
    """Target hours at which a target-only run was stopped by the update cap, not early stopping."""
    return sorted(r["hours"] for r in rows if r["strategy"] == BASELINE and any(r["hit_cap"]))


def glance(rows: list[dict]) -> list[str]:
    """A strategy x hours table of mean CER with intervals, the best of each column in bold."""
    hours = sorted({r["hours"] for r in rows})
    order = {r["name"]: _order(r["strategy"], None, r["layout"]) for r in rows}
    strategies = sorted(order, key=order.get)
    cell = {(r["name"], r["hours"]): r for r in rows}
    best = {h: min(r["cer"] for r in rows if r["hours"] == h) for h in hours}

    def show(r: dict | None) -> str:
        if r is None:
            return ""
        text = f"{_pct(r['cer'])} ({_pct(r['cer_lo'])}-{_pct(r['cer_hi'])})"
        return f"**{text}**" if r["cer"] == best[r["hours"]] else text

    return _table(["strategy", *[f"{h:g} h" for h in hours]],
                  [[s, *[show(cell.get((s, h))) for h in hours]] for s in strategies])


def markdown(exp, rows, ratio_rows, forget, forget_cer, per_run, facts, rule, target,
             helpers) -> str:
    own = list(rows[0]["own"]) if rows else []
    lines = [f"# Transfer experiment `{exp.name}`: {target} CER against hours", "",
             headline_of(rows, ratio_rows, target), "",
             f"**Training budget (one rule for every run).** {rule} The helpers' model is "
             "trained once per seed and shared by every target-hours point; its cost is not "
             "charged to the runs built on it. A run whose steps equal the cap was stopped by "
             "the cap, not by early stopping (marked *).", "",
             f"## At a glance: {target} test CER (%) by strategy and hours", "",
             "Means over seeds, 95% intervals in brackets, the best of each column in bold; "
             "details below.", "", *glance(rows), "",
             "![CER against hours](cer_vs_hours.png)", "",
             "How fast each strategy learns is a separate benefit from how much data it saves: "
             "dev CER against training updates, every run (x: stopped by the cap).", "",
             "![dev CER against updates](dev_cer_vs_updates.png)", "",
             f"## {target} test results (mean over seeds)", "",
             "CER with a 95% interval (bootstrap over seeds and test utterances)"
             + "".join(f", {metric_description(m, target)}" for m in own)
             + ", the share of test characters never seen in that point's training text, "
             "helper WER on the helpers' test sets. Rates in %.", ""]
    header = ["strategy", "hours", "CER", "95% CI", *[m.upper() for m in own], "unseen chars",
              *[f"{h} WER" for h in helpers], "stopped at step", "train s"]
    lines += _table(header, [[r["name"], f"{r['hours']:g}", _pct(r["cer"]),
                              f"{_pct(r['cer_lo'])}-{_pct(r['cer_hi'])}",
                              *[_pct(r["own"][m]) for m in own],
                              _pct(r["unseen_char_rate"]), *[_pct(r[f"{h}_wer"]) for h in helpers],
                              ", ".join(f"{s}{'*' if cap else ''}"
                                        for s, cap in zip(r["steps"], r["hit_cap"], strict=True)),
                              f"{r['train_seconds']:.0f}"] for r in rows])
    lines += ["", "## Data-efficiency ratio", "",
              f"Hours of {target}-only data that reach the same CER, interpolated in log-hours on "
              "the target-only curve (seed means); outside its range only a bound is given. The "
              "interval is a bootstrap that redraws the test utterances (paired across runs) and "
              "every point's seeds, rebuilds the target-only curve and reads the ratio off it "
              "again; an end the curve cannot reach is given as a bound. With one seed, the "
              "interval holds the test set's sampling and the target-only curve's seeds, not the "
              "strategy's own seed-to-seed spread. The seed's known result, "
              f"for converged models on real Common Voice, is ≈{SEED_RATIO:g}x (50 h of Mandarin "
              "with European helpers ≈ 100 h alone). The last column says whether the 95% CER "
              "intervals of the strategy and of target-only at the same hours are apart or "
              "overlap.", "", "![ratio against hours](ratio_vs_hours.png)", ""]
    lines += _table(["strategy", "hours", "seeds", "CER", f"equivalent {target}-only hours",
                     "ratio", "95% interval", "vs target-only at the same hours"],
                    [[r["name"], f"{r['hours']:g}", str(r["seeds"]), _pct(r["cer"]),
                      ("-" if r["kind"] == "capped" else
                       f"{r['equivalent_hours']:.3g}" if r["kind"] == "within" else
                       f"> {r['equivalent_hours']:.3g}" if r["kind"] == "above"
                       else f"< {r['equivalent_hours']:.3g}"), r["label"],
                      r.get("ratio_interval", "-"),
                      "-" if r["clearly_better"] is None else "better (intervals apart)"
                      if r["clearly_better"] else "worse (intervals apart)" if r["clearly_worse"]
                      else "intervals overlap"] for r in ratio_rows])
    if sharing_rows(rows):
        lines += ["", f"## Sharing depth: {target} CER against the number of shared blocks", "",
                  "Layout [below, shared, above]: per-language blocks under the shared ones "
                  "(with their own front end), shared blocks, per-language blocks over them. "
                  "Means over seeds with 95% intervals (seeds and utterances); the helpers' CER "
                  "is the mean over the helper languages' test sets; parameters of the whole "
                  "model (every language's blocks).", "", *sharing_table(rows, target), "",
                  "![CER against shared blocks](cer_vs_shared_blocks.png)"]
    lines += ["", f"## Forgetting: helper error rates before and after adding {target}", "",
              "Before: the model the run started from: the helpers' pretrained model for "
              "finetune and progressive; for joint_finetune (and joint_finetune_fresh), the model "
              "of the joint run of the same hours and seed that it starts from, the one best on every language's mean dev "
              "CER (not the joint row's model, the best on the target's). After: the run's model. Joint runs are trained from scratch, so "
              "for them the change is against the helpers' model: two models rather than one "
              "model twice. "
              "Progressive columns are frozen, so their change must be exactly 0. Rates in %, "
              "means over seeds; changes in percentage points. CER first: a small model's WER "
              "sits near 100% and hides how much is lost.", ""]
    for metric, table in (("CER", forget_cer), ("WER", forget)):
        lines += _table(["strategy", "hours",
                         *[f"{h} {metric} before → after (change)" for h in helpers],
                         "largest change, any seed"],
                        [[f["name"], f"{f['hours']:g}",
                          *[f"{_pct(f[h]['before'])} → {_pct(f[h]['after'])} "
                            f"({'+' if f[h]['change'] >= 0 else ''}{100 * f[h]['change']:.2f})"
                            for h in helpers],
                          "0 (exactly)" if f["max_abs_change"] == 0
                          else f"{100 * f['max_abs_change']:.2f}"] for f in table])
        lines += [""]
    machines = sorted({r["machine"] for r in per_run})
    lines += ["## Cost: what each strategy's runs took", "",
              "Wall seconds of training on "
              f"{'; '.join(machines)}, and apart from it the language-ID fit at its end "
              "(models of several languages; '-' where a run did not record it, and its train "
              "seconds then include it); scoring apart. The helpers' model is paid once and "
              "shared by every run that starts from it. Means over the strategy's finished "
              "runs; parameters of its models (the trainable ones are what its updates change).",
              ""]
    lines += _table(["strategy", "runs", "updates per run", "train s per run",
                     "LID fit s per run", "train h, all runs", "parameters", "trainable"],
                    [[c["name"], str(c["runs"]), f"{c['updates']:.0f}", f"{c['train_seconds']:.0f}",
                      "-" if c["lid_fit_seconds"] is None else f"{c['lid_fit_seconds']:.0f}",
                      f"{c['train_hours_total']:.1f}", f"{c['parameters']:,}",
                      f"{c['trainable_parameters']:,}"] for c in costs(per_run)])
    lines += ["", "## Every run", ""]
    lines += _table(["strategy", "hours", "seed", "CER", "95% CI", *[m.upper() for m in own],
                     "parameters",
                     "trainable", "steps", "best step", "train s", "run"],
                    [[r["strategy"] + (f" {r['layout']}" if r["layout"] else ""),
                      "-" if r["target_hours"] is None else f"{r['target_hours']:g}",
                      str(r["seed"]), _pct(r["cer"]),
                      "-" if r["cer"] is None else f"{_pct(r['cer_ci_low'])}-{_pct(r['cer_ci_high'])}",
                      *[_pct(r[f"{target}_{m}"]) for m in own], f"{r['parameters']:,}", f"{r['trainable_parameters']:,}",
                      str(r["steps"]), str(r["best_step"]), f"{r['train_seconds']:.0f}",
                      f"`{Path(r['run_dir']).name}`"] for r in per_run])
    t = facts["target"]
    lines += ["", "## Data", "",
              f"- {target}: training pool {t['pool_hours']:.3f} h; test {t['test_utterances']} "
              f"utterances ({t['test_hours']:.3f} h) from {t['test_speakers']} speakers, "
              f"{t['test_speakers_in_train']} of whom also speak in the training pool.",
              *[f"- {loc}: {f['train_hours']:.3f} h of training data, {f['test_utterances']} test "
                "utterances" for loc, f in facts["helpers"].items()],
              *[f"- point {k}: {p['actual_hours']:.4f} h, {p['utterances']} utterances, "
                f"{p['speakers']} speakers" for k, p in facts["points"].items()],
              "", "## Reproduce", "",
              f"Seeds {list(exp.grid.seeds)}. The full experiment config is `experiment.yaml`, "
              "every run's config is `runs/<run>/config.json`, installed package versions are in "
              "`versions.txt`. Rerun with `asr experiment --config experiment.yaml --out <dir>`.", ""]
    return "\n".join(lines)


def costs(per_run: list[dict]) -> list[dict]:
    """Per strategy (and layout), in report order: its finished runs, their mean updates,
    train seconds (the language-ID fit taken out where it was recorded) and LID-fit seconds
    (None when some run did not record it), the train hours of them all, and the parameters
    of its models."""
    groups: dict[tuple, list[dict]] = {}
    for r in per_run:
        groups.setdefault((r["strategy"], r["layout"] or ""), []).append(r)
    out = []
    for (name, layout), rs in groups.items():
        train = [r["train_seconds"] - (r["lid_fit_seconds"] or 0.0) for r in rs]
        fits = [r["lid_fit_seconds"] for r in rs]
        out.append({"name": name + (f" {layout}" if layout else ""), "runs": len(rs),
                    "updates": sum(r["steps"] for r in rs) / len(rs),
                    "train_seconds": sum(train) / len(rs),
                    "lid_fit_seconds": None if None in fits else sum(fits) / len(rs),
                    "train_hours_total": sum(train) / 3600, "parameters": rs[0]["parameters"],
                    "trainable_parameters": rs[0]["trainable_parameters"]})
    return out


def plot(rows: list[dict], path: Path, target: str) -> None:
    """CER (%) against target hours, log x, one line per strategy with its interval band."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    order = {r["name"]: _order(r["strategy"], None, r["layout"]) for r in rows}
    for name in sorted(order, key=order.get):
        pts = sorted((r for r in rows if r["name"] == name), key=lambda r: r["hours"])
        x = [r["actual_hours"] for r in pts]
        line, = ax.plot(x, [100 * r["cer"] for r in pts], marker="o",
                        lw=2.5 if pts[0]["strategy"] == BASELINE else 1.5, label=name)
        ax.fill_between(x, [100 * r["cer_lo"] for r in pts], [100 * r["cer_hi"] for r in pts],
                        color=line.get_color(), alpha=0.15)
    ax.set_xscale("log")
    # ticks where the points sit (the hours a subset holds), labelled with the hours asked for
    ticks = dict(sorted((r["actual_hours"], r["hours"]) for r in rows
                        if r["name"] == min(order, key=order.get)))
    ax.set_xticks(list(ticks), [f"{h:g}" for h in ticks.values()])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel(f"{target} training hours (log scale)")
    ax.set_ylabel(f"{target} test CER (%)")
    ax.set_title(f"{target} CER against hours of {target} data (95% intervals)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)


def plot_ratios(ratio_rows: list[dict], path: Path, target: str) -> None:
    """Data-efficiency ratio against target hours (log-log), one line per strategy with its
    95% interval, the seed's ≈2x and "no gain" (1x) marked. A ratio beyond the target-only
    curve is drawn as the bound it is: an open triangle pointing the way it is unbounded."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in ratio_rows if r["ratio"] is not None]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    order = {r["name"]: _order(r["strategy"], None) for r in rows}
    names = sorted(order, key=order.get)
    top = max([r["ratio"] for r in rows] + [r.get("ratio_high") or 0 for r in rows]
              + [SEED_RATIO]) * 2
    bottom = min([r["ratio"] for r in rows] + [r.get("ratio_low") or 1 for r in rows] + [1.0]) / 2
    for i, name in enumerate(names):
        pts = sorted((r for r in rows if r["name"] == name), key=lambda r: r["hours"])
        control = STRATEGIES[pts[0]["strategy"]].role == "control"
        shift = 1 + 0.05 * (i - (len(names) - 1) / 2)  # side by side at each hours point
        x = [r["hours"] * shift for r in pts]
        line, = ax.plot(x, [r["ratio"] for r in pts], ls="--" if control else "-", lw=1.4,
                        label=name)
        for xi, r in zip(x, pts, strict=True):
            ax.plot(xi, r["ratio"], marker={"within": "o", "above": "^", "below": "v"}[r["kind"]],
                    color=line.get_color(), mfc="white" if r["kind"] != "within" else None)
            # an end beyond the curve: to the plot's edge on its side, or only to the bound
            edge = {"above": top, "below": bottom}
            beyond = r.get("ratio_beyond", {})
            low = (r["ratio"] if beyond.get("low") == "above"
                   else edge[beyond["low"]] if "low" in beyond else r.get("ratio_low"))
            high = (r["ratio"] if beyond.get("high") == "below"
                    else edge[beyond["high"]] if "high" in beyond else r.get("ratio_high"))
            if low is not None and high is not None:
                ax.plot([xi, xi], [low, high], color=line.get_color(), lw=1, alpha=0.6)
    ax.axhline(SEED_RATIO, color="black", ls=":", lw=1.2,
               label=f"seed's ≈{SEED_RATIO:g}x (converged, 50 h vs 100 h)")
    ax.axhline(1.0, color="grey", lw=0.8, label="1x: no gain")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(bottom, top)
    hours = sorted({r["hours"] for r in rows})
    ax.set_xticks(hours, [f"{h:g}" for h in hours])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel(f"{target} training hours with the helpers (log scale)")
    ax.set_ylabel(f"{target}-only hours needed / hours used")
    ax.set_title("Data-efficiency ratio (95% intervals; open triangles: bounds)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)


def sharing_rows(rows: list[dict]) -> list[dict]:
    """The aggregate rows of a sharing-depth sweep (those with a layout), by strategy, hours and
    shared blocks (most first), with "shared" (blocks) and "kind" (layout_kind)."""
    out = [r | {"shared": r["layout"][1], "kind": layout_kind(r["layout"])}
           for r in rows if r["layout"]]
    return sorted(out, key=lambda r: (rank(r["strategy"]), r["hours"], -r["shared"],
                                      r["layout"]))


def sharing_table(rows: list[dict], target: str) -> list[str]:
    return _table(["strategy", "hours", "layout", "shares", "shared blocks",
                   f"{target} CER (95% CI)", "helpers' mean CER", "seeds", "parameters", "train s"],
                  [[r["strategy"], f"{r['hours']:g}", layout_name(r["layout"]), r["kind"],
                    str(r["shared"]), f"{_pct(r['cer'])} ({_pct(r['cer_lo'])}-{_pct(r['cer_hi'])})",
                    _pct(r["helper_cer"]), str(len(r["seeds"])), f"{r['parameters']:,}",
                    f"{r['train_seconds']:.0f}"] for r in sharing_rows(rows)])


def plot_sharing(rows: list[dict], path: Path, target: str) -> None:
    """Target CER (%) against the number of shared blocks, a panel per strategy, a line per
    target budget through the shared-bottom layouts (all shared ... none shared), other layouts
    (a shared middle) as their own markers at their shared count, 95% intervals as bars, the
    no-sharing control marked, the target trained alone (the baseline, if run) dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sr = sharing_rows(rows)
    names = sorted({r["strategy"] for r in sr}, key=rank)
    budgets = sorted({r["hours"] for r in sr})
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 4.2), dpi=120,
                             squeeze=False, sharey=True)
    marker = {"all shared": "o", "shared bottom": "o", "no sharing": "s", "shared middle": "D",
              "shared top": "^"}
    for ax, name in zip(axes.flat, names, strict=True):
        for i, h in enumerate(budgets):
            pts = [r for r in sr if r["strategy"] == name and r["hours"] == h]
            colour = f"C{i}"
            alone = [r for r in rows if r["strategy"] == BASELINE and r["hours"] == h]
            if alone:  # the target language trained alone: what sharing is measured against
                ax.axhline(100 * alone[0]["cer"], color=colour, ls="--", lw=1,
                           label=f"{h:g} h, {target} alone ({BASELINE})")
            line = sorted((r for r in pts if r["layout"][0] == 0), key=lambda r: r["shared"])
            ax.plot([r["shared"] for r in line], [100 * r["cer"] for r in line], color=colour,
                    lw=1.5, label=f"{h:g} h of {target} (shared bottom)")
            for r in pts:
                x = r["shared"] + (0.08 if r["kind"] == "shared middle" else 0)
                ax.errorbar(x, 100 * r["cer"], yerr=[[100 * (r["cer"] - r["cer_lo"])],
                                                     [100 * (r["cer_hi"] - r["cer"])]],
                            color=colour, marker=marker[r["kind"]], capsize=3,
                            mfc="white" if r["kind"] == "no sharing" else colour,
                            label=(f"{h:g} h, {r['kind']} {layout_name(r['layout'])}"
                                   if r["kind"] in ("shared middle", "shared top") else None))
                if r["kind"] == "no sharing":
                    ax.annotate("no sharing", (x, 100 * r["cer"]), textcoords="offset points",
                                xytext=(6, 6), fontsize=7, color=colour)
        ax.set_xticks(range(0, max(r["shared"] for r in sr) + 1))
        ax.set_title(name)
        ax.set_xlabel("shared blocks (of the encoder's)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes.flat[0].set_ylabel(f"{target} test CER (%)")
    fig.suptitle(f"{target} CER against sharing depth (95% intervals)")
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)


def plot_curves(results: list[RunResult], path: Path, target: str) -> None:
    """Dev CER (%) of the target against updates, one panel per target hours, one line per
    strategy and seed: how fast each strategy learns, apart from where it ends."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in results if r.strategy != PRETRAIN and r.dev_curve]
    hours = sorted({r.hours for r in runs})
    cols = min(3, len(hours))
    rows_n = -(-len(hours) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(5 * cols, 3.6 * rows_n), dpi=110,
                             squeeze=False)
    names = sorted({r.variant: _order_run(r) for r in runs}.items(), key=lambda kv: kv[1])
    colour = {name: f"C{i % 10}" for i, (name, _) in enumerate(names)}
    for ax, h in zip(axes.flat, hours, strict=False):
        for r in sorted((r for r in runs if r.hours == h), key=lambda r: (*_order_run(r), r.seed)):
            steps, cer = zip(*r.dev_curve, strict=True)
            ax.plot(steps, [100 * c for c in cer], color=colour[r.variant], lw=1.2,
                    label=r.variant if r.seed == min(x.seed for x in runs
                                                     if x.variant == r.variant) else None)
            if r.hit_cap:
                ax.plot(steps[-1], 100 * cer[-1], marker="x", color=colour[r.variant])
        ax.set_title(f"{h:g} h of {target}")
        # log: a joint run's 30,000 updates and a fine-tuning's 2,000 both readable; linear
        # below 100, where a fine-tuning's validated start (update 0) sits
        ax.set_xscale("symlog", linthresh=100, linscale=0.3)
        ax.set_xlabel("updates (log scale)")
        ax.set_ylabel(f"{target} dev CER (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(hours):]:
        ax.set_visible(False)
    fig.suptitle("Dev CER against training updates (x: stopped by the cap)")
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)


def write_report(exp, root: Path, results: list[RunResult], facts: dict, rule: str) -> dict:
    """results.csv, results.md, cer_vs_hours.png and report.json in `root`; returns the numbers."""
    target, helpers = exp.target.locale, list(exp.helpers.locales)
    rows = aggregate(results, target, helpers)
    ratio_rows = with_intervals(ratios(rows), results, rows, target)
    forget, forget_cer = forgetting(results, helpers), forgetting(results, helpers, "cer")
    per_run = run_rows(results, target, helpers)
    buf = io.StringIO()
    if per_run:
        w = csv.DictWriter(buf, fieldnames=list(per_run[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(per_run)
    write_text(root / "results.csv", buf.getvalue())
    write_text(root / "results.md", markdown(exp, rows, ratio_rows, forget, forget_cer, per_run,
                                             facts, rule, target, helpers))
    if rows:
        plot(rows, root / "cer_vs_hours.png", target)
        plot_curves(results, root / "dev_cer_vs_updates.png", target)
    if any(r["ratio"] is not None for r in ratio_rows):
        plot_ratios(ratio_rows, root / "ratio_vs_hours.png", target)
    if sharing_rows(rows):
        plot_sharing(rows, root / "cer_vs_shared_blocks.png", target)
    report = {"headline": headline_of(rows, ratio_rows, target), "budget_rule": rule, "aggregate": rows,
              "ratios": ratio_rows, "forgetting": forget, "forgetting_cer": forget_cer,
              "costs": costs(per_run), "runs": per_run}
    write_json(root / "report.json", report)
    return report
