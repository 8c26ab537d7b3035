"""Training: one loop for joint multilingual training, fine-tuning, progressive columns and
resume, over parts built elsewhere (asr/start.py: the model, tokenizers, statistics, data).

Single process or DistributedDataParallel under torchrun (gloo on CPU, NCCL on GPUs): every
rank draws the same language and takes its share of each global batch; only rank 0 writes.
Randomness (dropout, SpecAugment, batch order) is a function of (seed, step), so a resumed
run repeats exactly what an uninterrupted one would have done.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from asr import checkpoint as ckpt
from asr.config import RunConfig, run_config_to_dict
from asr.data import LanguageData
from asr.device import Dist, choose_precision, keep_freed_memory, machine_name, resolve_device
from asr.evaluate import format_scores, metric_value, validate
from asr.features import FeatureStats, spec_augment
from asr.fileio import copy_file, write_json
from asr.lid import LidSplit, fit_language_id
from asr.model.heads import ctc_loss
from asr.model.multilingual import count_parameters
from asr.model.progressive import ProgressiveCTC
from asr.package import MODEL_FILE, SCHEDULE_MODEL_FILE, save_model
from asr.run_lock import FolderLock
from asr.runlog import RunLog
from asr.start import StartError, build_run
from asr.tokenizer import Tokenizer


class TrainingError(RuntimeError):
    pass


def lr_lambda(cfg) -> callable:
    """The learning rate at an update as a share of the peak: linear warmup, then (cosine) a
    cosine decay to `final_lr_ratio` at max_steps, or (plateau) the peak, which the Trainer
    scales down on dev plateaus."""

    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "plateau":
            return 1.0
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
        return cfg.final_lr_ratio + (1 - cfg.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def average_states(paths: list[Path]) -> dict[str, torch.Tensor]:
    """Element-wise mean of the model tensors of several checkpoints."""
    total = None
    for p in paths:
        tensors, _ = ckpt.load_package(p)
        tensors = {k: v.double() if v.is_floating_point() else v for k, v in tensors.items()}
        total = tensors if total is None else {
            k: total[k] + v if v.is_floating_point() else v for k, v in tensors.items()}
    return {k: (v / len(paths)).float() if v.is_floating_point() else v for k, v in total.items()}


class Trainer:
    """Trains the parts it is given (asr/start.py builds them) into a run directory."""

    def __init__(self, cfg: RunConfig, model: torch.nn.Module, tokenizers: dict[str, Tokenizer],
                 stats: FeatureStats, batches, dev: dict[str, LanguageData],
                 out_dir: str | Path, resume: bool = False, device: str = "auto",
                 progress: bool = True, lid: dict[str, LidSplit] | None = None):
        """`batches`: a TrainingBatches (asr/data.py) or any object with its methods; `dev`:
        validation sets by locale; `cfg.model` must be the model's own config; `lid`: the
        language-ID data of every language of the model (asr/lid.py), fitted into the final
        model; without it (or with a language missing) the head is left unfitted."""
        self.dist = Dist.from_env()
        self.device = resolve_device(device, self.dist.local_rank)
        if self.dist.world_size > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.out = Path(out_dir)
        self.progress = progress and self.dist.main
        self.cfg, self.model, self.tokenizers, self.stats = cfg, model, tokenizers, stats
        self.batches, self.dev_data, self.lid_splits = batches, dev, lid or {}
        if dev:  # a metric naming no dev set would only fail at the first validation
            dummy = {loc: {"cer": 1.0, "wer": 1.0} for loc in [*dev, "mean"]}
            for field in ("select_metric", "schedule_metric"):
                try:
                    if metric := getattr(cfg.train, field):
                        metric_value(dummy, metric)
                except ValueError as e:
                    raise TrainingError(f"train.{field}: {e}") from None
        self.model.to(self.device).train()  # a loaded package comes back in eval mode
        params = [p for p in self.model.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        # fused: one kernel over all parameters instead of ~10 small ops per tensor (measured
        # 17 -> 6 ms per update for the 1.4 M-parameter model on one CPU core)
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.train.weight_decay},
             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.train.lr, fused=True)
        self.lr_share = lr_lambda(cfg.train)  # step -> share of the peak
        self.lr_scale = 1.0  # plateau decays so far (1, decay_factor, decay_factor^2, ...)
        self.precision = choose_precision(cfg.train.precision, self.device, cfg.model.d_model)
        self.amp = self.precision.autocast_dtype
        if self.device.type == "cpu":
            keep_freed_memory()
        self.scaler = torch.amp.GradScaler(enabled=self.amp == torch.float16)
        self.ddp = (torch.nn.parallel.DistributedDataParallel(
            self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
            find_unused_parameters=True) if self.dist.world_size > 1 else self.model)
        self.step, self.best, self.best_step, self.bad_validations = 0, math.inf, -1, 0
        self.schedule_best = math.inf  # best value of train.patience_metric so far
        self.checkpoints: list[str] = []
        self.resumed = resume
        # one process writes a run folder (rank 0 under DDP); released when fit() ends
        self.lock = FolderLock(self.out, "run folder", enabled=self.dist.main).acquire()
        if not resume and self._state_path().exists():
            raise TrainingError(f"{self.out} already holds a run; pass --resume to continue it "
                                "or choose another --out")
        if resume:
            self._resume()
        self.log = RunLog(self.out, enabled=self.dist.main)

    @classmethod
    def from_data(cls, cfg: RunConfig, data_dir: str | Path, locales: list[str],
                  out_dir: str | Path, init: str | Path | None = None,
                  base: str | Path | None = None, freeze=(), resume: bool = False,
                  device: str = "auto", progress: bool = True) -> Trainer:
        """A Trainer for prepared data (`data_dir/<locale>/...`): build_run, then train those
        parts. init: fine-tune a model file; base: a progressive column on it; freeze:
        parameter-name prefixes to keep fixed."""
        try:
            parts = build_run(cfg, data_dir, locales, init=init, base=base, freeze_prefixes=freeze)
        except StartError as e:
            raise TrainingError(str(e)) from None
        return cls(parts.cfg, parts.model, parts.tokenizers, parts.stats, parts.batches,
                   parts.dev, out_dir, resume=resume, device=device, progress=progress,
                   lid=parts.lid)

    def _state_path(self) -> Path:
        return self.out / "train_state.safetensors"

    def _resume(self) -> None:
        path = self._state_path()
        if not path.exists():
            raise TrainingError(f"--resume: {path} not found (nothing to resume in {self.out})")
        tensors, meta = ckpt.load_package(path)
        model_t = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        own = self.model.state_dict()
        if any(k.startswith("lid_reference.") for k in own) and not any(
                k.startswith("lid_reference.") for k in model_t):
            # saved before fine-tuning kept a LID reference: the copy is the start model's
            # path as built, and the LID head stays unfitted until training ends
            model_t = {k: v for k, v in model_t.items() if not k.startswith("lid.")} | {
                k: v for k, v in own.items() if k.startswith(("lid.", "lid_reference."))}
        try:
            self.model.load_state_dict(model_t)
            ckpt.load_optimizer_state(self.optimizer, tensors, meta["optimizer"])
            self.batches.load_state_dict(meta["sampler"])
        except (KeyError, ValueError, RuntimeError) as e:
            raise TrainingError(f"--resume: {path} belongs to another model (other --locales, "
                                f"config or --init?): {str(e).splitlines()[0]}") from None
        self.step, self.best, self.best_step = meta["step"], meta["best"], meta["best_step"]
        self.lr_scale = meta["lr_scale"]
        self.bad_validations, self.checkpoints = meta["bad_validations"], meta["checkpoints"]
        # a state saved before schedule_metric existed followed select_metric
        follow = meta.get("schedule_best")
        self.schedule_best = self.best if follow is None else follow

    def _save_state(self) -> None:
        opt_t, opt_meta = ckpt.optimizer_state(self.optimizer)
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()} | opt_t
        ckpt.save_package(self._state_path(), tensors, {
            "optimizer": opt_meta, "lr_scale": self.lr_scale,
            "sampler": self.batches.state_dict(), "step": self.step, "best": self.best,
            "best_step": self.best_step, "bad_validations": self.bad_validations,
            "schedule_best": self.schedule_best,
            "checkpoints": self.checkpoints})

    # ---- one update ---------------------------------------------------------------------
    def _loss(self, batch, generator) -> tuple[torch.Tensor, dict]:
        feats = batch.feats
        if self.cfg.train.spec_augment:
            feats = spec_augment(feats, self.cfg.features, generator=generator,
                                 lengths=batch.feat_lens)
        with torch.autocast(self.device.type, dtype=self.amp or torch.float32,
                            enabled=self.amp is not None):
            out = self.ddp(feats, batch.feat_lens, locale=batch.locale)
        per_utt = ctc_loss(out["log_probs"], batch.targets, out["out_lens"], batch.target_lens,
                           reduction="none")  # (B,)
        # Sum over this rank's utterances / global batch size: DDP's gradient mean over ranks
        # then equals the single-process mean over the whole batch, however it was split.
        global_b = len(batch.ids) * self.dist.world_size
        weight = (self.cfg.data.loss_weights or {}).get(batch.locale, 1.0)
        ctc = per_utt.sum() * self.dist.world_size / max(global_b, 1)
        return weight * ctc, {"ctc": ctc.item()}

    def update(self) -> dict:
        """One optimizer update (accum_steps batches); returns loss parts and audio seconds."""
        tc = self.cfg.train
        torch.manual_seed(tc.seed * 1_000_003 + self.step * 101 + self.dist.rank)  # dropout
        gen = torch.Generator(device=self.device).manual_seed(tc.seed + 7919 * self.step)
        self.optimizer.zero_grad(set_to_none=True)
        stats = {"loss": 0.0, "ctc": 0.0, "audio_seconds": 0.0, "finite": True}
        for _ in range(tc.accum_steps):
            batch = self.batches.next_batch().to(self.device)
            loss, parts = self._loss(batch, gen)
            loss = loss / tc.accum_steps
            if not torch.isfinite(loss):
                stats["finite"] = False
                continue
            self.scaler.scale(loss).backward()
            stats["loss"] += loss.item()
            stats["ctc"] += parts["ctc"] / tc.accum_steps
            stats["audio_seconds"] += (batch.feat_lens.sum().item() * self.cfg.features.hop_ms
                                       / 1000 * self.dist.world_size)  # frames x s per frame
            stats["locale"] = batch.locale
        if stats["finite"]:
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr()
            self.scaler.unscale_(self.optimizer)
            stats["grad_norm"] = torch.nn.utils.clip_grad_norm_(
                self.model.parameters(), tc.grad_clip).item()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.step += 1
        return stats

    def lr(self) -> float:
        """The learning rate of the current update."""
        return self.cfg.train.lr * self.lr_share(self.step) * self.lr_scale

    # ---- validation and checkpoints -----------------------------------------------------
    def _validate_and_save(self) -> bool:
        """Validate, save a checkpoint and the train state; True when training should stop."""
        scores = validate(self.model, self.dev_data, self.tokenizers, self.stats, self.device,
                          autocast_dtype=self.amp)
        tc = self.cfg.train
        value = metric_value(scores, tc.select_metric) if scores else -self.step
        follow = metric_value(scores, tc.patience_metric) if scores else -self.step
        # Ties go to the later checkpoint (it has trained longer), but only a strict improvement
        # (of the patience metric) resets the early-stopping patience, so a plateau still ends
        # training.
        improved = value <= self.best
        follow_improved = follow <= self.schedule_best
        self.bad_validations = 0 if follow < self.schedule_best else self.bad_validations + 1
        self.schedule_best = min(self.schedule_best, follow)
        if improved:
            self.best, self.best_step = value, self.step
        if self.dist.main:
            self.log.validation(self.step, scores)
            tqdm.write(format_scores(scores, self.step) if scores else f"step {self.step}")
            path = self.out / "checkpoints" / f"step{self.step:07d}.safetensors"
            self._save_model(path)
            self.checkpoints = [*self.checkpoints, str(path)]
            for old in self.checkpoints[:-self.cfg.train.keep_checkpoints]:
                if Path(old).exists():
                    os.unlink(old)
            self.checkpoints = self.checkpoints[-self.cfg.train.keep_checkpoints:]
            if improved:
                copy_file(path, self.out / MODEL_FILE)
            if follow_improved and tc.keep_schedule_best:
                copy_file(path, self.out / SCHEDULE_MODEL_FILE)
            self._save_state()
        return self._plateau()

    def _patience_spent(self) -> bool:
        """`patience` validations without improvement, past min_steps."""
        patience = self.cfg.train.patience
        return bool(patience and self.bad_validations >= patience
                    and self.step >= self.cfg.train.min_steps)

    def _converged(self) -> bool:
        """Whether training should stop now: patience spent and (cosine) that is all, or
        (plateau) the next decay would take the learning rate below its floor."""
        tc = self.cfg.train
        floor = self.lr_scale * tc.decay_factor < tc.final_lr_ratio
        return self._patience_spent() and (tc.schedule == "cosine" or floor)

    def _plateau(self) -> bool:
        """After a validation: True when training should stop; on a plateau that is not yet
        the end (plateau schedule), the learning rate decays instead."""
        if self._converged() or not self._patience_spent():
            return self._converged()
        self.lr_scale *= self.cfg.train.decay_factor
        self.bad_validations = 0
        self.log.event(self.step, "lr_decay", lr_scale=self.lr_scale)
        if self.dist.main:
            self._save_state()  # the decay survives a kill
        return False

    def _save_model(self, path: Path, step: int | None = None, lid: dict | None = None) -> None:
        save_model(path, self.model, self.cfg, self.tokenizers, self.stats, lid=lid,
                   extra={"step": self.step if step is None else step})

    def _fit_language_id(self, path: Path) -> dict:
        """Fit the language-ID head of the final model at `path` on its frozen encoder and
        write it back with the held-out accuracy; returns the summary's entry. Without data
        for every language the head is left unfitted (an --init model's head is stale now)."""
        if len(self.model.languages) < 2:
            return {"fitted": False, "reason": "one language"}
        tensors, meta = ckpt.load_package(path)
        self.model.load_state_dict({k[len("model."):]: v for k, v in tensors.items()
                                    if k.startswith("model.")})
        missing = [loc for loc in self.model.languages if loc not in self.lid_splits]
        reason = (f"layout {list(self.model.config.layout)} has per-language input blocks: the "
                  "language must be known before the encoder runs"
                  if self.model.lid_needs_locale else
                  f"no training data for {', '.join(missing)}" if missing else None)
        if reason:
            tqdm.write(f"language ID not fitted: {reason}"
                       + ("; fit it later with asr lid-fit" if missing else ""))
            self.model.lid.reset()
            self._save_model(path, step=meta["step"])
            return {"fitted": False, "reason": reason}
        t0 = time.perf_counter()
        record = fit_language_id(self.model, self.lid_splits, self.stats, self.device,
                                 progress=tqdm.write if self.progress else None)
        self._save_model(path, step=meta["step"], lid=record.to_dict())
        tqdm.write("language ID on held-out speakers: " + ", ".join(
            f"{loc} {100 * a:.1f}%" for loc, a in record.accuracy.items()))
        return {"fitted": True, "fit_seconds": round(time.perf_counter() - t0, 1), **record.to_dict()}

    # ---- the loop -----------------------------------------------------------------------
    def fit(self, stop_at: int | None = None, each_step=None) -> dict:
        """Train (see _fit) holding the run folder's lock, released however this ends."""
        with self.lock:
            return self._fit(stop_at, each_step)

    def _fit(self, stop_at: int | None = None, each_step=None) -> dict:
        """Train until max_steps or early stopping; `stop_at` simulates a crash (tests);
        `each_step()`, when given, runs in this thread after every update (the experiment
        uses it to take up cores that other runs have freed)."""
        tc = self.cfg.train
        self.out.mkdir(parents=True, exist_ok=True)
        if self.dist.main:
            self.log.start(run_config_to_dict(self.cfg), self._describe(),
                           resume_step=self.step if self.resumed else None)
        bar = tqdm(total=tc.max_steps, initial=self.step, disable=not self.progress,
                   desc="train", unit="step", dynamic_ncols=True)
        t0, audio, bad_in_row = time.perf_counter(), 0.0, 0
        # A run killed after it decided to stop early (state saved, summary not yet written)
        # must stop again on --resume, not train on.
        stopped_early = self.resumed and self._converged()
        if tc.validate_start and self.step == 0:
            self._validate_and_save()  # the start competes for the best checkpoint
        while self.step < tc.max_steps and not stopped_early:
            if stop_at is not None and self.step >= stop_at:
                return {"stopped_at": self.step}
            s = self.update()
            if each_step is not None:
                each_step()
            audio += s["audio_seconds"]
            bad_in_row = 0 if s["finite"] else bad_in_row + 1
            if not s["finite"]:
                self.log.count("non_finite_steps", self.step)
                if bad_in_row >= tc.max_bad_steps:
                    raise TrainingError(f"{bad_in_row} non-finite losses in a row at step "
                                        f"{self.step}: lower train.lr or check the data")
            bar.update(1)
            if self.step % tc.log_every == 0 or self.step == tc.max_steps:
                elapsed = time.perf_counter() - t0
                row = {"loss": s["loss"], "ctc": s["ctc"],
                       "lr": self.lr(), "grad_norm": s.get("grad_norm"),
                       "audio_seconds_per_second": audio / elapsed, "locale": s.get("locale")}
                self.log.train(self.step, row)
                bar.set_postfix(loss=f"{s['loss']:.3f}", lr=f"{row['lr']:.1e}",
                                aps=f"{row['audio_seconds_per_second']:.0f}")
            if self.step % tc.valid_every == 0 or self.step == tc.max_steps:
                if self._validate_and_save():
                    stopped_early = True
                    break
        bar.close()
        return self._finish(stopped_early)

    def _finish(self, stopped_early: bool) -> dict:
        summary = {"steps": self.step, "stopped_early": stopped_early, "best_step": self.best_step,
                   "final_lr": self.lr(),
                   f"best_{self.cfg.train.select_metric}": self.best,
                   f"best_{self.cfg.train.patience_metric}": self.schedule_best,
                   "non_finite_steps": self.log.counts["non_finite_steps"],  # skipped updates
                   **self.precision.to_dict()}
        paths = [Path(p) for p in self.checkpoints if Path(p).exists()]
        if self.dist.main and len(paths) > 1:
            self.model.load_state_dict(
                {k[len("model."):]: v for k, v in average_states(paths).items()
                 if k.startswith("model.")})
            scores = validate(self.model, self.dev_data, self.tokenizers, self.stats, self.device,
                              autocast_dtype=self.amp)
            tc = self.cfg.train
            value = metric_value(scores, tc.select_metric) if scores else math.inf
            summary["averaged_checkpoints"] = len(paths)
            summary[f"averaged_{tc.select_metric}"] = value
            tqdm.write(f"average of last {len(paths)} checkpoints:\n" + format_scores(scores))
            summary["model"] = "average" if value < self.best else "best"
            if value < self.best:
                self._save_model(self.out / MODEL_FILE)
            if tc.keep_schedule_best:
                follow = metric_value(scores, tc.patience_metric) if scores else math.inf
                summary["schedule_model"] = "average" if follow < self.schedule_best else "best"
                if follow < self.schedule_best:
                    self._save_model(self.out / SCHEDULE_MODEL_FILE)
        summary["model_path"] = str(self.out / MODEL_FILE)
        if self.cfg.train.keep_schedule_best:  # a start for fine-tuning: language ID not fitted
            summary["schedule_model_path"] = str(self.out / SCHEDULE_MODEL_FILE)
        if self.dist.main and Path(summary["model_path"]).exists():
            summary["language_id"] = self._fit_language_id(Path(summary["model_path"]))
        if self.dist.main:
            write_json(self.out / "summary.json", summary)
            self.log.close()
        return summary

    def _describe(self) -> dict:
        return {"parameters": count_parameters(self.model),
                "trainable_parameters": sum(p.numel() for p in self.model.parameters()
                                            if p.requires_grad),
                **self.batches.describe(),
                "device": str(self.device), "machine": machine_name(self.device),
                "world_size": self.dist.world_size,
                "threads": torch.get_num_threads()} | self.precision.to_dict() | (
                    {"columns": self.model.parameter_report()}
                    if isinstance(self.model, ProgressiveCTC) else {}) | (
                    # counted in "parameters": the frozen copy that only language ID reads
                    {"lid_reference_parameters": count_parameters(self.model.lid_reference)}
                    if getattr(self.model, "lid_reference", None) is not None else {})
