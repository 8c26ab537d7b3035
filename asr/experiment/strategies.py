"""The strategies of the transfer experiment: one frozen record each, in one table.

A strategy's whole meaning lives in its record: how its model starts, what is frozen, which
data it trains on, which run-config settings are its own, and how the report treats it. The
planner, the run executor and the report read these fields; no code matches a strategy by its
name, so a new strategy is one new row here.

    start        "scratch"        a fresh model (torch.manual_seed(train.seed))
                 "helpers_model"  the helpers' pretrained model of the same seed, fine-tuned
                                  with a new head for the target (Trainer init)
                 "helpers_column" the helpers' model as a frozen column, a new column for the
                                  target with lateral adapters (Trainer base)
                 "joint_model"    the joint run of the same seed and hours, fine-tuned on the
                                  target alone (Trainer init; joint must be in the grid there),
                                  from its checkpoint best on all its languages (mean dev CER,
                                  train.keep_schedule_best), not its best on the target
    freeze       parameter-name prefixes frozen on top of what `start` freezes
                 ("encoder" = everything but the heads); a progressive column's earlier
                 columns are always frozen
    with_helpers the helpers' training data is in the run (joint training)
    helper_text  "true" or "shuffled": the helpers' transcripts permuted among utterances of
                 similar length (same audio, broken supervision)
    overrides    run-config settings of its own (`section.key=value`, after run.overrides)
    role         "baseline"  the target-only curve every ratio is read from
                 "transfer"  a way to use the helpers: a candidate for the headline
                 "control"   an ablation that separates transfer from its side effects; shown,
                             never the headline
"""

from __future__ import annotations

import dataclasses
import typing

Start = typing.Literal["scratch", "helpers_model", "helpers_column", "joint_model"]
Role = typing.Literal["baseline", "transfer", "control"]


@dataclasses.dataclass(frozen=True)
class Strategy:
    name: str
    summary: str  # one line, for the docs and the report
    start: Start = "scratch"
    freeze: tuple[str, ...] = ()
    with_helpers: bool = False
    helper_text: typing.Literal["true", "shuffled"] = "true"
    overrides: tuple[str, ...] = ()
    role: Role = "transfer"

    @property
    def needs_model(self) -> bool:
        """Starts from another run's model (the helpers' or a joint run's), so waits for it."""
        return self.start != "scratch"

    @property
    def scored_on_helpers(self) -> bool:
        """Its model knows the helper languages, so their test sets measure forgetting."""
        return self.with_helpers or self.start != "scratch"

    def languages(self, helpers: list[str], target: str) -> list[str]:
        """The languages the run trains on."""
        return [*helpers, target] if self.with_helpers else [target]


TABLE = (
    Strategy("target_only", "the target language alone", role="baseline"),
    Strategy("joint", "helpers + target in one model, languages drawn p ∝ hours^alpha",
             with_helpers=True),
    Strategy("joint_shuffled", "as joint, with the helpers' transcripts shuffled among "
             "utterances of similar length (does transfer need correct supervision?)",
             with_helpers=True, helper_text="shuffled", role="control"),
    Strategy("finetune", "the helpers' model fine-tuned on the target with a new head",
             start="helpers_model"),
    # the joint model already has a trained target head, and a fine-tuning re-warmed to the
    # peak learning rate can end below it: its start is validated and kept if dev prefers it
    Strategy("joint_finetune", "the joint model of the same hours fine-tuned on the target "
             "(shared hidden layers, then target adaptation; the joint model itself kept "
             "where the target's dev set prefers it)", start="joint_model",
             overrides=("train.validate_start=true",)),
    # the joint model's target head has learned its minutes by heart (training CTC loss ~0.01
    # per utterance): fine-tuned from it, 0.05 h stayed at 91-94% dev CER and 0.1 h never beat
    # its start (docs/results/transfer_full). A new head puts the target's loss back
    Strategy("joint_finetune_fresh", "as joint_finetune with a new target head (the joint "
             "model's encoder, not its target head)", start="joint_model",
             overrides=("train.fresh_heads=true",)),
    Strategy("progressive", "the helpers' model as a frozen column, a new column for the "
             "target with lateral adapters", start="helpers_column"),
    Strategy("progressive_copy", "as progressive, the new column starting as a copy of the "
             "helpers' column", start="helpers_column", overrides=("progressive.init=copy",)),
    # Rusu et al.'s learned scale alpha exists "to adjust for the different scales of the
    # different inputs"; initialised small (0.1), a fresh column's laterals reach it at ~8% of
    # the RMS of its own stream (every block ends in a LayerNorm: RMS ~1), and after training
    # on 0.05 h the top one had grown to match it (measured on transfer_full's progressive run).
    # Starting at 1 took 0.05 h of zh-CN from 91.6% test CER to 60.6% (seed 0; without
    # laterals 93.6%, fine-tuned 71.9%; docs/results/transfer_full)
    Strategy("progressive_alpha1", "as progressive, the laterals' scales starting at 1 "
             "(the earlier column's features as loud as the new column's own from the start)",
             start="helpers_column", overrides=("progressive.lateral_scale_init=1.0",)),
    Strategy("progressive_nolateral", "as progressive without lateral adapters (the new "
             "column trained alone)", start="helpers_column",
             overrides=("progressive.adapter_blocks=[]",), role="control"),
)
STRATEGIES: dict[str, Strategy] = {s.name: s for s in TABLE}
NAMES = tuple(STRATEGIES)  # the table's order is the report's order
PRETRAIN = "pretrain"  # the helpers' model of a seed: a run of the plan, not a strategy


def strategy(name: str) -> Strategy:
    """The record of `name`; an unknown name is an error listing the known ones."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(NAMES)}") from None


def rank(name: str) -> int:
    """Position in the table (the pretraining first), for ordering rows."""
    return NAMES.index(name) if name in STRATEGIES else -1


def describe() -> str:
    """The table as text lines `name: summary`, for --help and docs."""
    return "\n".join(f"    {s.name:<22} {s.summary}" for s in TABLE)
