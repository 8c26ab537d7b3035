"""Which training recipe lets a from-scratch model converge: dev CER against updates.

Usage:
    python scripts/recipe_curves.py [--recipes cosine plateau plateau_masks2] [--hours 0.1 1.0]
                                    [--out exp/recipe] [--jobs 1] [--report-only]

Each recipe is the target_only strategy of `transfer_full.yaml` (same corpus, subsets, model
and dev set) under its own schedule and budget, run through `asr experiment` into
<out>/<recipe>/, so finished runs are skipped and interrupted ones resumed. Then the dev CER
of every run against its updates goes into one plot and a table:

    docs/results/recipe/curves.png   dev CER (%) against updates, one panel per hours point
    docs/results/recipe/recipe.md    per run: steps, why it stopped, best dev CER, test CER
    docs/results/recipe/runs.json    the curves and figures, for programs
    docs/results/recipe/<recipe>.ledger.jsonl   each finished run (asr/experiment/ledger.py)
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asr.experiment.ledger import Ledger  # noqa: E402
from asr.experiment.runs import dev_curve  # noqa: E402
from asr.experiment.study import load_experiment_config, run_experiment  # noqa: E402
from asr.fileio import atomic_write, write_json, write_text  # noqa: E402

BASE = "transfer_full"
PINNED = ["corpus.root=corpora/cv-synth-full",
          "corpus.synth.hours={de: 2.0, fr: 2.0, es: 2.0, it: 2.0, zh-CN: 2.1}",
          "corpus.synth.eval_hours=0.42", "corpus.synth.zh_inventory_size=150",
          "run.base=small", "budget.per_language=true", "budget.max_steps=1000",
          "budget.valid_every=100", "budget.patience=3", "budget.min_steps=400"]
PINNED_RUN = ["train.log_every=50"]
# name: (what it is, experiment overrides); every recipe trains target_only alone
RECIPES = {
    "cosine": ("today's recipe: cosine decay to 5% at the 1000-update cap, 10 time masks",
               []),
    "plateau": ("warmup, hold, halve the lr after 3 validations without improvement, stop "
                "below 5% of the peak; cap 20000 as a safety net; 10 time masks",
                ["budget.max_steps=20000", "+train.schedule=plateau"]),
    "plateau_masks2": ("as plateau, with 2 time masks instead of 10 (NeMo's advice for small "
                       "models and short clips)",
                       ["budget.max_steps=20000", "+train.schedule=plateau",
                        "+features.time_masks=2"]),
}


def experiment_overrides(recipe: str, hours: list[float]) -> list[str]:
    """`asr experiment --set` values of a recipe: target_only only, no helpers, and every
    setting the recipes share pinned here (transfer_full's values when they were measured),
    so a later change to transfer_full.yaml leaves these runs and their keys alone. A leading
    `+` in a recipe's list marks a run-config override (appended to run.overrides)."""
    out = ["grid.strategies=[target_only]", "grid.per_strategy={}", "helpers.locales=[]",
           "grid.seeds=[0]", f"target.hours=[{','.join(f'{h:g}' for h in hours)}]", *PINNED]
    run_overrides = list(PINNED_RUN)
    for item in RECIPES[recipe][1]:
        if item.startswith("+"):
            run_overrides.append(item[1:])
        else:
            out.append(item)
    return out + [f"run.overrides=[{','.join(run_overrides)}]"]


def curves(ledger_path: Path, exp_dir: Path) -> list[dict]:
    """The recipe's runs: finished ones from its ledger, runs still training from their logs."""
    out = []
    for r in Ledger(ledger_path).runs.values():
        out.append({"run": Path(r.run_dir).name, "hours": r.hours, "curve": list(r.dev_curve),
                    "finished": True, "steps": r.steps, "max_steps": r.max_steps,
                    "stopped_early": r.stopped_early,
                    "best_dev_cer": min((c for _, c in r.dev_curve), default=None),
                    "test_cer": r.test["zh-CN"].rate("cer"), "train_seconds": r.train_seconds,
                    "machine": r.machine})
    done = {x["run"] for x in out}
    for run in sorted((exp_dir / "runs").glob("target_only-*")):
        if run.name in done or not (run / "metrics.jsonl").exists():
            continue
        valid = list(dev_curve(run, "mean_cer"))
        out.append({"run": run.name, "hours": float(run.name.split("-h")[1].split("-s")[0]),
                    "curve": valid, "finished": False, "steps": valid[-1][0] if valid else 0,
                    "max_steps": None, "stopped_early": None,
                    "best_dev_cer": min((c for _, c in valid), default=None), "test_cer": None,
                    "train_seconds": None, "machine": None})
    return out


def plot(rows: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hours = sorted({r["hours"] for runs in rows.values() for r in runs})
    fig, axes = plt.subplots(1, len(hours), figsize=(6 * len(hours), 4.2), dpi=110, squeeze=False)
    for ax, h in zip(axes[0], hours, strict=True):
        for k, (recipe, runs) in enumerate(rows.items()):
            for r in (r for r in runs if r["hours"] == h and r["curve"]):
                x, y = zip(*r["curve"], strict=True)
                ax.plot(x, [100 * c for c in y], color=f"C{k}", label=recipe)  # same colour per recipe
        ax.set_title(f"zh-CN target-only, {h:g} h")
        ax.set_xlabel("updates")
        ax.set_ylabel("dev CER (%)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def table(rows: dict[str, list[dict]]) -> str:
    lines = ["| recipe | hours | steps | stopped by | best dev CER | test CER | train s |",
             "|---|---|---|---|---|---|---|"]
    for recipe, runs in rows.items():
        for r in sorted(runs, key=lambda r: r["hours"]):
            how = ("running" if not r["finished"] else
                   "convergence" if r["stopped_early"] else "the cap")
            seconds = "-" if r["train_seconds"] is None else f"{r['train_seconds']:.0f}"
            lines.append(f"| {recipe} | {r['hours']:g} | {r['steps']} | {how} | "
                         f"{_pct(r['best_dev_cer'])} | {_pct(r['test_cer'])} | {seconds} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES),
                   help="recipes to run, in this order")
    p.add_argument("--hours", nargs="+", type=float, default=[0.1, 1.0],
                   help="zh-CN training hours (subsets of transfer_full's pool)")
    p.add_argument("--out", type=Path, default=Path("exp/recipe"), help="experiment dirs")
    p.add_argument("--results", type=Path, default=ROOT / "docs/results/recipe",
                   help="where the plot and tables go")
    p.add_argument("--jobs", type=int, default=1, help="runs trained at once")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--report-only", action="store_true", help="plot what has finished so far")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    for recipe in args.recipes:
        if args.report_only:
            break
        exp = load_experiment_config(BASE, experiment_overrides(recipe, args.hours))
        # its own committed ledger, so the runs carry over to the next session or machine
        exp = dataclasses.replace(exp, ledger=str(args.results / f"{recipe}.ledger.jsonl"))
        run_experiment(exp, args.out / recipe, progress=False, workers=args.jobs,
                       threads=args.threads)
    rows = {recipe: curves(args.results / f"{recipe}.ledger.jsonl", args.out / recipe)
            for recipe in args.recipes}
    args.results.mkdir(parents=True, exist_ok=True)
    plot(rows, args.results / "curves.png")
    text = "\n".join(f"- **{name}**: {RECIPES[name][0]}" for name in args.recipes)
    write_text(args.results / "recipe.md", f"# Training recipes: zh-CN target-only\n\n{text}\n\n"
               f"{table(rows)}\n")
    write_json(args.results / "runs.json", rows)
    print(table(rows))
    print(f"{time.perf_counter() - t0:.0f} s; plot {args.results / 'curves.png'}")


if __name__ == "__main__":
    main()
