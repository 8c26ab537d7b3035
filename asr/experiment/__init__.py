"""The transfer experiment: target-language CER against hours of target data, with and
without helper languages, one row per strategy (asr/experiment/strategies.py).

`study.run_experiment` (what `asr experiment` calls)

    1. synthesises the corpus if the config says how and it is missing;
    2. prepares data once (data.py): the helpers, the target's pool (its fixed dev and test
       sets), and per (seed, hours) point a nested, seeded subset of the target's pool with
       its own tokenizer and features;
    3. plans every run of the grid (plan.py) and trains the unfinished ones (runs.py),
       `workers` at a time in separate processes;
    4. scores each run's test sets and writes the report (report.py) from the runs' typed
       results (results.py).

Dependencies point one way: config, strategies → data → plan → runs → report → study.
This file imports nothing, so reading a strategy's record stays cheap (`asr --help`). This
package is the recipe layer, the one part of `asr` below the CLI that may import data_prep.
"""
