"""Executing the transfer experiment's runs (plan.py plans them): train or resume, score the
test sets, write result.json (results.py), and run the unfinished ones `workers` at a time.

A run is finished when its result.json holds the run's key; a finished run keeps only its
model, log, metrics and scores (the resume state and averaged checkpoints are dropped).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path

from asr.device import cpu_cores
from asr.experiment import carry
from asr.experiment.ledger import Ledger
from asr.experiment.plan import Job
from asr.experiment.results import LocaleScores, Metric, RunResult
from asr.fileio import write_json, write_jsonl
from asr.job_board import REFRESH_SECONDS, JobBoard, board_rows, eta_text
from asr.run_lock import FolderLock
from asr.runlog import read_jsonl_lenient
from asr.workers import watch_parent

# Set in pool workers (_init_worker): how many runs train at once right now, kept by the parent.
_RUNNING = None


def _init_worker(parent_pid: int, running) -> None:
    global _RUNNING
    watch_parent(parent_pid)
    _RUNNING = running


def share_cores() -> None:
    """Take this run's share of the CPU cores: all of them when it trains alone (the helpers'
    pretraining, the critical path, often does at the end), one each when every worker is busy.
    Called in the training thread: OpenMP's thread count belongs to the thread that sets it."""
    import torch

    threads = max(1, cpu_cores() // max(1, _RUNNING.value))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def train_job(job: Job, device: str, progress: bool, share: bool = False) -> None:
    """Train (or resume) a run until its summary.json exists; wall time adds up in timing.json.
    How the model starts and what is frozen come from the strategy's record. `share`:
    re-balance torch threads after every update (share_cores). Every CARRY_SECONDS the train
    seconds so far go to timing.json and, with `job.carried`, the resume state is mirrored
    there (carry.py)."""
    from asr.train import Trainer

    out = job.run_dir
    if (out / "summary.json").exists():
        return
    timing = _timing(out)
    s = job.record
    start = ({"helpers_model": "init", "joint_model": "init", "helpers_column": "base"}
             .get(s.start) if s else None)
    t0 = time.perf_counter()
    trainer = Trainer.from_data(job.cfg, job.data_dir, job.locales, out,
                                **({start: start_model(job)} if start else {}),
                                freeze=s.freeze if s else (),
                                resume=(out / "train_state.safetensors").exists(), device=device,
                                progress=progress)
    hooks = [share_cores] if share else []
    hooks.append(carry.Mirror(out, job.carried, timing))
    trainer.fit(each_step=lambda: [hook() for hook in hooks])
    write_json(out / "timing.json", {"train_seconds": timing["train_seconds"]
                                     + time.perf_counter() - t0,
                                     "sessions": timing["sessions"] + 1})


def start_model(job: Job) -> Path:
    """The model file a run starts from: its start run's model (the best on what that run
    selects), or for a joint model, the joint run's best on all its languages (its
    train.schedule_metric, kept by train.keep_schedule_best): the shared layers trained on
    every language, which the target's best may predate by thousands of updates."""
    from asr.package import MODEL_FILE, SCHEDULE_MODEL_FILE

    file = SCHEDULE_MODEL_FILE if job.record.start == "joint_model" else MODEL_FILE
    return job.starts_from.run_dir / file


def _timing(run_dir: Path) -> dict:
    """Wall time of a run's earlier sessions, as recorded at its end or, for a session killed
    before that, at its last mirror (carry.Mirror; the time since is lost, not the run)."""
    path = run_dir / "timing.json"
    timing = json.loads(path.read_text()) if path.exists() else {}
    return {"train_seconds": 0.0, "sessions": 0} | timing


def score_job(job: Job, device: str, model_file: str = "", prefix: str = "test"
              ) -> dict[str, LocaleScores]:
    """Greedy decoding of the run's test sets by its model (or `model_file` in its folder),
    scored with every metric of each language; writes <prefix>_<locale>.jsonl."""
    from asr.decode import Decoder
    from asr.device import resolve_device
    from asr.evaluate import decode_split
    from asr.metrics import score_texts
    from asr.package import load_package_model

    dev = resolve_device(device)
    model, package = load_package_model(job.run_dir / model_file, device=dev)
    decoder = Decoder(package.tokenizers)
    scores = {}
    for loc in job.eval_locales:
        rows = decode_split(model, package, job.data_dir, loc, "test", decoder, dev)["rows"]
        write_jsonl(job.run_dir / f"{prefix}_{loc}.jsonl", rows)
        m = score_texts([r["reference"] for r in rows], [r["hypothesis"] for r in rows], loc)
        scores[loc] = LocaleScores(
            utterances=len(rows),
            metrics={name: Metric(x["rate"], tuple(x["ci95"])) for name, x in m.items()},
            ids=tuple(r["id"] for r in rows),
            errors=tuple(int(e) for e in m["cer"]["per_utterance_errors"]),
            units=tuple(int(u) for u in m["cer"]["per_utterance_units"]))
    return scores


def dev_curve(run_dir: Path, metric: str) -> tuple[tuple[int, float], ...]:
    """(update, `metric`) at each validation of a run, from its metrics.jsonl."""
    from asr.evaluate import metric_value

    return tuple((r["step"], metric_value(r["scores"], metric))
                 for r in read_jsonl_lenient(run_dir / "metrics.jsonl")
                 if r["kind"] == "valid" and r["scores"])


def finish_job(job: Job, device: str, facts: dict) -> RunResult:
    """Score a trained run and write its result.json (whose presence marks it finished)."""
    from asr.package import SCHEDULE_MODEL_FILE

    summary = json.loads((job.run_dir / "summary.json").read_text())
    described = json.loads((job.run_dir / "run.json").read_text())
    point = ({} if job.hours is None
             else facts["points"].get(f"s{job.seed}/h{job.hours:g}", {}))
    result = RunResult(
        key=job.key, strategy=job.strategy, seed=job.seed, hours=job.hours,
        actual_hours=point.get("actual_hours"), unseen_char_rate=point.get("unseen_char_rate"),
        test=score_job(job, device),
        schedule_test=(score_job(job, device, SCHEDULE_MODEL_FILE, "schedule_test")
                       if job.cfg.train.keep_schedule_best else None),
        # the recogniser's: a fine-tuned model's frozen LID reference is language ID's alone
        parameters=described["parameters"] - described.get("lid_reference_parameters", 0),
        trainable_parameters=described["trainable_parameters"],
        train_seconds=_timing(job.run_dir)["train_seconds"], steps=summary["steps"],
        best_step=summary["best_step"], stopped_early=summary["stopped_early"],
        max_steps=job.cfg.train.max_steps, run_dir=str(job.run_dir),
        pretrain=str(job.starts_from.run_dir) if job.starts_from else None,
        dev_curve=dev_curve(job.run_dir, job.cfg.train.select_metric),
        machine=described["machine"], layout=job.layout,
        lid_fit_seconds=(summary.get("language_id") or {}).get("fit_seconds", 0.0))
    result.save(job.run_dir / "result.json")
    _tidy(job.run_dir)
    return result


def _tidy(run_dir: Path) -> None:
    """A finished run needs only its model: drop the resume state and the averaged
    checkpoints (again after a kill that came between result.json and this)."""
    (run_dir / "train_state.safetensors").unlink(missing_ok=True)
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)


def execute_job(job: Job, device: str, facts: dict, progress: bool = True, threads: int = 0,
                log: bool = False) -> RunResult:
    """Train (or resume) and score one run; with `log`, its output goes to <run>/train.log."""
    import torch

    # a fixed thread count keeps a rerun bit-identical; shared cores follow the load
    share = not threads and _RUNNING is not None
    if threads:
        torch.set_num_threads(threads)
    elif share:
        share_cores()
    job.run_dir.mkdir(parents=True, exist_ok=True)
    write_json(job.run_dir / "job.json", {"strategy": job.strategy, "seed": job.seed,
                                          "hours": job.hours, "key": job.key,
                                          "locales": job.locales,
                                          # absolute: read by scripts run from anywhere
                                          "data": str(job.data_dir.resolve())})
    with contextlib.ExitStack() as stack:
        # one writer per run folder: scoring and tidying too, not only the Trainer's part
        stack.enter_context(FolderLock(job.run_dir, "run folder"))
        if job.carried is not None and carry.restore(job.run_dir, job.carried) == "resume":
            print(f"{job.label}: resuming from the state carried in {job.carried}", flush=True)
        if log:
            f = stack.enter_context(open(job.run_dir / "train.log", "a", encoding="utf-8"))
            stack.enter_context(contextlib.redirect_stdout(f))
            stack.enter_context(contextlib.redirect_stderr(f))
        train_job(job, device, progress and not log, share)
        return finish_job(job, device, facts)


def last_step(folder: Path) -> int | None:
    """The update an unfinished run's resume state in `folder` (a run folder, or its carried
    state) was saved at, by its validations so far; None when it holds no resume state."""
    if not (folder / "train_state.safetensors").exists():
        return None
    log = folder / "metrics.jsonl"
    rows = read_jsonl_lenient(log) if log.exists() else []  # a run may be writing it now
    return max((r["step"] for r in rows if r.get("kind") == "valid"), default=0)


def finished_result(job: Job) -> RunResult | None:
    """The run's result when it finished under exactly this key, else None."""
    done = job.run_dir / "result.json"
    if done.exists():
        key = json.loads(done.read_text()).get("key")
        if key == job.key:
            return RunResult.load(done)
    return None


def run_jobs(jobs: list[Job], facts: dict, target: str, device: str = "auto",
             progress: bool = True, workers: int = 1, threads: int = 0,
             ledger: Ledger | None = None) -> list[RunResult]:
    """Run every unfinished job, `workers` at a time, each after the model it starts from.

    A job is finished when its run directory holds its result, or the `ledger` does; each
    job that finishes here is added to the ledger. With a ledger, state outlives the machine
    (carry.py): an unfinished run resumes from the state carried beside the ledger, and a
    model that pending runs start from, recorded only in the ledger, is taken from there (or,
    when it was not kept, trained again here).

    Prints one line per run started and finished (k/N, strategy, hours, seed, ETA); with
    workers > 1 on a terminal, also a live line per running run (job_board.py); at the end, a
    table of the runs."""
    number = {id(j): k for k, j in enumerate(jobs, 1)}
    board = JobBoard(live=None if progress else False)
    results = {}
    starts = {id(j.starts_from) for j in jobs if j.starts_from is not None}
    if ledger is not None:
        for job in jobs:
            job.carried = ledger.carried_dir(job.key, job.run_dir)
    for job in jobs:
        if (r := finished_result(job)) is not None:
            results[id(job)] = r
            with FolderLock(job.run_dir, "run folder"):  # also recovers a killed run's lock
                _tidy(job.run_dir)
            board.say(f"[{number[id(job)]}/{len(jobs)}] {job.label}: finished earlier "
                      f"({job.run_dir.name})")
            if ledger is not None and job.key not in ledger:
                ledger.add(r)
                if id(job) in starts:
                    carry.keep_model(job.run_dir, job.carried)
        elif ledger is not None and (r := ledger.get(job.key)) is not None:
            results[id(job)] = r
            board.say(f"[{number[id(job)]}/{len(jobs)}] {job.label}: in the ledger "
                      f"(trained on {r.machine})")
    for job in jobs:  # a model this machine lacks, needed by a run still to train
        if id(job) not in results and job.starts_from is not None:
            start = job.starts_from
            if start.carried is not None and carry.restore(start.run_dir, start.carried):
                board.say(f"{start.label}: model taken from {start.carried}")
            if not start_model(job).exists():
                results.pop(id(start), None)  # trained again here
    pending = [j for j in jobs if id(j) not in results]
    began: dict[int, float] = {}
    durations: list[float] = []  # wall seconds of the runs finished in this call

    def started(job: Job) -> None:
        began[id(job)] = time.perf_counter()
        eta = ""
        if durations:  # the mean run so far, for what is left, shared among the workers
            left = len(pending) + len(running) + 1
            eta = f", ETA {eta_text(sum(durations) / len(durations) * left / max(1, workers))}"
        state = "resuming" if (job.run_dir / "train_state.safetensors").exists() else "training"
        board.say(f"[{number[id(job)]}/{len(jobs)}] {job.label}: {state} in {job.run_dir}{eta}")

    def ended(job: Job, r: RunResult) -> None:
        results[id(job)] = r
        if ledger is not None:
            ledger.add(r)
            if id(job) in starts:  # later runs, here or elsewhere, start from its model
                carry.keep_model(job.run_dir, job.carried)
            else:
                carry.drop(job.carried)
        durations.append(time.perf_counter() - began[id(job)])
        board.say(f"[{number[id(job)]}/{len(jobs)}] {job.label}: {_score(r, target)}, stopped "
                  f"at step {r.steps} of {r.max_steps}, {r.train_seconds:.0f} s")

    def live_rows() -> list[str]:
        active = [(f"[{number[id(j)]}/{len(jobs)}] {j.label}", j.cfg.train.max_steps, j.run_dir,
                   j.cfg.train.select_metric, began[id(j)]) for j in running.values()]
        return board_rows(active, sum(j.cfg.train.max_steps for j in pending), workers)

    def ready(job: Job) -> bool:
        return job.starts_from is None or id(job.starts_from) in results

    running: dict = {}
    if workers <= 1:
        while pending:
            job = pending.pop(0)
            started(job)
            ended(job, execute_job(job, device, facts, progress, threads))
        return _finished(jobs, results, target)

    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch threads
    # threads=0: each run takes cores / (runs training now), re-read after every update
    count = ctx.Value("i", 0)
    # a worker whose parent was killed exits instead of training on beside the rerun
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(os.getpid(), count)) as pool:
        while pending or running:
            for job in [j for j in pending if ready(j)][:workers - len(running)]:
                pending.remove(job)
                started(job)
                running[pool.submit(execute_job, job, device, facts, False, threads, True)] = job
            count.value = len(running)
            if not running:
                raise RuntimeError("no job can start: a helpers' model is missing from the plan")
            done = set()
            while not done:
                done, _ = wait(running, timeout=REFRESH_SECONDS if board.live else None,
                               return_when=FIRST_COMPLETED)
                if not done:
                    board.draw(live_rows())
            for future in done:
                ended(running.pop(future), future.result())
            count.value = len(running)
    board.done()
    return _finished(jobs, results, target)


def _score(r: RunResult, target: str) -> str:
    if target in r.test:
        return f"{target} test CER {100 * r.test[target].rate('cer'):.1f}%"
    return ("helpers' mean test CER "
            f"{100 * sum(t.rate('cer') for t in r.test.values()) / len(r.test):.1f}%")


def _finished(jobs: list[Job], results: dict, target: str) -> list[RunResult]:
    """Every job's result, after printing them as one table."""
    out = [results[id(j)] for j in jobs]
    print("\n| run | test score | stopped at | train s |\n|---|---|---|---|", flush=True)
    for job, r in zip(jobs, out, strict=True):
        how = "cap" if r.hit_cap else "early stop"
        print(f"| {job.label} | {_score(r, target)} | {r.steps} of {r.max_steps} ({how}) | "
              f"{r.train_seconds:.0f} |", flush=True)
    return out
