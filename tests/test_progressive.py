"""Progressive networks: frozen columns, laterals, parameter growth, no forgetting, CLI, packaging."""

from __future__ import annotations

import json

import pytest
import torch

from asr.cli import main
from asr.config import ConfigError, ProgressiveConfig, from_dict, load_run_config, to_dict
from asr.data import LanguageData, collate
from asr.model import ModelConfig, MultilingualCTC, count_parameters
from asr.model.progressive import ProgressiveCTC, add_column
from asr.package import load_package_model, save_model
from asr.prepare import feature_dir
from asr.train import Trainer, TrainingError

N_MELS, D = 20, 16


def tiny_config(dropout=0.0, layout=(0, 2, 0)) -> ModelConfig:
    return ModelConfig(n_mels=N_MELS, d_model=D, n_heads=2, ff_mult=2, conv_kernel=5,
                       subsampling_channels=4, dropout=dropout, layout=layout)


def two_columns(dropout=0.0, **settings) -> tuple[MultilingualCTC, ProgressiveCTC]:
    torch.manual_seed(0)
    base = MultilingualCTC(tiny_config(dropout), {"de": 11, "fr": 9}).eval()
    snapshot = {k: v.clone() for k, v in base.state_dict().items()}
    model = add_column(base, {"zh-CN": 23}, ProgressiveConfig(**settings))
    reference = MultilingualCTC(tiny_config(dropout), {"de": 11, "fr": 9}).eval()
    reference.load_state_dict(snapshot)  # the base as it was, untouched by anything below
    return reference, model


def batch(lens, seed=0):
    g = torch.Generator().manual_seed(seed)
    lens = torch.tensor(lens)
    return torch.randn(len(lens), int(lens.max()), N_MELS, generator=g), lens


# ---- the model ----------------------------------------------------------------------------
def test_old_languages_run_their_own_column_bit_identically():
    base, model = two_columns(dropout=0.1)
    model.train()  # dropout active in the new column only
    feats, lens = batch([40, 31])
    for locale in ("de", "fr"):
        out = model(feats, lens, locale)
        assert torch.equal(out["log_probs"], base(feats, lens, locale)["log_probs"])
        assert out["shared"].shape[-1] == D  # column 0 only: later columns never run
    assert model(feats, lens, "zh-CN")["shared"].shape[-1] == 2 * D


def test_frozen_columns_get_no_gradient_and_stay_in_eval_mode():
    _, model = two_columns(dropout=0.1)
    model.train()
    assert all(not m.training for m in model.columns[0].modules())
    assert all(m.training for m in model.columns[1].modules())
    assert not any(p.requires_grad for p in model.columns[0].parameters())
    feats, lens = batch([40, 31])
    model(feats, lens, "zh-CN")["log_probs"].sum().backward()
    assert all(p.grad is None for p in model.columns[0].parameters())
    assert all(p.grad is not None for p in model.laterals[1].parameters())
    assert model.columns[1].shared[0].attn.qkv.weight.grad is not None
    model.eval().train()  # eval() goes through train(False); back to train keeps column 0 frozen
    assert not model.columns[0].training and model.columns[1].training


def test_lateral_scale_starts_small_and_copy_init_copies():
    _, model = two_columns(init="copy", lateral_scale_init=0.01)
    assert sorted(model.laterals[1]) == ["0", "1", "2"]  # inputs of blocks 0, 1 and the output
    for adapter in model.laterals[1].values():
        assert torch.equal(adapter.scale, torch.full((1,), 0.01))
    old, new = model.columns[0], model.columns[1]
    for part in ("frontend", "shared"):
        a, b = getattr(old, part).state_dict(), getattr(new, part).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert new.languages == ["zh-CN"] and model.languages == ["de", "fr", "zh-CN"]


def test_laterals_carry_old_features_and_the_ablation_cuts_them():
    feats, lens = batch([40, 31])
    for blocks, connected in ((None, True), ([], False)):
        _, model = two_columns(adapter_blocks=blocks)
        before = model(feats, lens, "zh-CN")["log_probs"]
        with torch.no_grad():
            model.columns[0].shared[1].ff1.net[1].weight.mul_(3.0)
        after = model(feats, lens, "zh-CN")["log_probs"]
        assert torch.equal(before, after) != connected, blocks
    assert count_parameters(model.laterals[1]) == 0


def test_parameter_growth_report():
    _, model = two_columns(adapter_dim=8, adapter_blocks=[0, 2])
    rows = model.parameter_report()
    per_adapter = 1 + D * 8 + 8 + 8 * D + D  # scale, down (D -> 8), up (8 -> D)
    assert rows[1]["lateral"] == 2 * per_adapter
    assert rows[1]["parameters"] == count_parameters(model.columns[1]) + 2 * per_adapter
    # everything trains but the column's own language-ID head (unused: the model's reads all)
    own_lid = count_parameters(model.columns[1].lid)
    assert rows[1]["trainable"] == rows[1]["parameters"] - own_lid and rows[0]["trainable"] == 0
    assert (rows[0]["parameters"] + rows[1]["parameters"] + count_parameters(model.lid)
            == count_parameters(model))
    assert rows[1]["heads"] == (D + 1) * 23  # its CTC head (language ID is the model's)
    # A third column reads two earlier columns: its adapters' down projections take 2 * D.
    model.add_column({"it": 7}, ProgressiveConfig(adapter_dim=8, adapter_blocks=[0, 2]))
    assert model.parameter_report()[2]["lateral"] == 2 * (2 + 2 * D * 8 + 8 + 8 * D + D)
    assert [r["trainable"] > 0 for r in model.parameter_report()] == [False, False, True]


def test_three_columns_keep_earlier_outputs_and_lid_reads_every_column():
    base, model = two_columns()
    feats, lens = batch([40, 31])
    zh_before = model(feats, lens, "zh-CN")["log_probs"]
    model.add_column({"it": 7, "es": 5}, ProgressiveConfig(adapter_dim=4))
    model.train()
    assert not model.columns[1].training and not model.laterals[1].training
    assert torch.equal(model(feats, lens, "zh-CN")["log_probs"], zh_before)
    assert torch.equal(model(feats, lens, "de")["log_probs"], base(feats, lens, "de")["log_probs"])
    assert not model.lid_needs_locale
    shared, out_lens, stats = model.encode_shared(feats, lens, None, statistics=True)
    assert shared.shape[-1] == 3 * D  # all three columns
    n_shared = model.config.layout[1]
    assert stats.shape == (2, 3 * n_shared * 2 * D)  # mean, std of every column's shared blocks
    assert model.lid_logits(stats).shape == (2, 5)  # de fr zh-CN it es
    torch.testing.assert_close(model.ctc_log_probs(shared, out_lens, "zh-CN"), zh_before)
    with pytest.raises(ValueError, match="reads all 3 columns"):
        model.lid_logits(model.encode_shared(feats, lens, "de", statistics=True)[2])


def test_new_column_ignores_padding():
    _, model = two_columns()
    feats, lens = batch([23], seed=1)
    padded = torch.cat([feats, 50 * torch.randn(1, 17, N_MELS)], dim=1)
    alone = model(feats, lens, "zh-CN")
    batched = model(padded, lens, "zh-CN")
    n = int(alone["out_lens"][0])
    torch.testing.assert_close(batched["log_probs"][:, :n], alone["log_probs"], atol=1e-5, rtol=1e-5)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="out of range"):
        two_columns(adapter_blocks=[3])
    with pytest.raises(ValueError, match="new languages"):
        add_column(two_columns()[1], {"fr": 9}, ProgressiveConfig())
    with pytest.raises(ValueError, match="language-independent"):
        ProgressiveCTC(MultilingualCTC(tiny_config(layout=(1, 1, 0)), {"de": 5}))
    with pytest.raises(ConfigError, match="progressive.init"):
        load_run_config("tiny", ["progressive.init=clone"])
    cfg = load_run_config("tiny", ["progressive.adapter_blocks=[2, 0]", "progressive.adapter_dim=8"])
    assert cfg.progressive == ProgressiveConfig(adapter_dim=8, adapter_blocks=(0, 2))
    assert from_dict(ProgressiveConfig, to_dict(cfg.progressive)) == cfg.progressive


# ---- training on fake data ----------------------------------------------------------------
def tiny(*overrides):
    return load_run_config("tiny", list(overrides))


def dev_batch(data_dir, locale, tokenizer, stats):
    data = LanguageData(locale, data_dir / locale / "dev.jsonl", feature_dir(data_dir, locale, "dev"),
                        tokenizer, features=tiny().features)
    return collate(data, list(range(len(data))), stats)


@pytest.fixture(scope="module")
def de_base(fake_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("prog") / "de"
    Trainer.from_data(tiny("train.max_steps=4", "train.valid_every=4", "model.dropout=0.1"), fake_data,
            ["de"], out, progress=False).fit()
    return out


def test_no_forgetting_through_training_and_save_load(fake_data, de_base, tmp_path):
    base, pkg = load_package_model(de_base)
    de = dev_batch(fake_data, "de", pkg.tokenizers["de"], pkg.stats)
    with torch.no_grad():
        before = base(de.feats, de.feat_lens, "de")["log_probs"]
    # 3 validations -> the last 3 checkpoints are averaged at the end, frozen tensors included.
    cfg = tiny("train.max_steps=6", "train.valid_every=2", "progressive.init=copy")
    trainer = Trainer.from_data(cfg, fake_data, ["zh-CN"], tmp_path / "prog", base=de_base, progress=False)
    model = trainer.model
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not optimised & {id(p) for p in model.columns[0].parameters()}
    assert optimised == {id(p) for p in model.parameters() if p.requires_grad}
    assert trainer.stats.to_dict() == pkg.stats.to_dict()  # the base's normalisation
    assert model.config.dropout == 0.1  # the base's dimensions, whatever the run config says
    modes = []  # (column 0 in train mode anywhere, column 1 in train mode) at each forward
    model.columns[1].frontend.register_forward_pre_hook(lambda m, args: modes.append(
        (any(x.training for x in model.columns[0].modules()), m.training)))
    start = {k: v.clone() for k, v in model.columns[1].state_dict().items()}
    summary = trainer.fit()
    assert summary["averaged_checkpoints"] == 3
    assert {old for old, _ in modes} == {False} and {new for _, new in modes} == {True, False}
    assert any(not torch.equal(start[k], v) for k, v in model.columns[1].state_dict().items())
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(de.feats, de.feat_lens, "de")["log_probs"], before)
    trained, pkg2 = load_package_model(tmp_path / "prog")  # best or averaged: column 0 as it was
    assert isinstance(trained, ProgressiveCTC) and trained.languages == ["de", "zh-CN"]
    assert pkg2.meta["architecture"] == "progressive" and pkg2.stats.to_dict() == pkg.stats.to_dict()
    save_model(tmp_path / "again.safetensors", model, trainer.cfg, trainer.tokenizers, trainer.stats)
    loaded, _ = load_package_model(tmp_path / "again.safetensors")
    assert loaded.spec() == model.spec() == trained.spec()
    zh = dev_batch(fake_data, "zh-CN", pkg2.tokenizers["zh-CN"], pkg2.stats)
    old = base.state_dict()
    for m in (model, trained, loaded):
        assert all(torch.equal(old[k], v) for k, v in m.columns[0].state_dict().items())
    with torch.no_grad():
        for m in (trained, loaded):
            assert torch.equal(m(de.feats, de.feat_lens, "de")["log_probs"], before)
        assert torch.equal(loaded(zh.feats, zh.feat_lens, "zh-CN")["log_probs"],
                           model(zh.feats, zh.feat_lens, "zh-CN")["log_probs"])


def test_cli_progressive_end_to_end(fake_data, de_base, tmp_path, capsys):
    out = tmp_path / "prog"
    argv = ["train", "--config", "tiny", "--data", str(fake_data), "--locales", "zh-CN",
            "--out", str(out), "--strategy", "progressive", "--base", str(de_base),
            "--set", "train.max_steps=2", "--set", "train.valid_every=2",
            "--set", "progressive.adapter_dim=8"]
    assert main(argv) == 0
    model, pkg = load_package_model(out)
    assert model.languages == ["de", "zh-CN"] and set(pkg.tokenizers) == {"de", "zh-CN"}
    assert pkg.config.progressive.adapter_dim == 8
    columns = json.loads((out / "run.json").read_text())["columns"]
    assert [c["languages"] for c in columns] == [["de"], ["zh-CN"]]
    assert columns[0]["trainable"] == 0 and columns[1]["lateral"] > 0
    out_zh = model(torch.randn(1, 50, model.config.n_mels), torch.tensor([50]), "zh-CN")
    assert torch.isfinite(out_zh["log_probs"]).all()
    # The misuses are one-line errors.
    assert main(argv[:-8] + ["--set", "train.max_steps=2"]) == 2  # --strategy without --base
    assert "go together" in capsys.readouterr().err
    with pytest.raises(TrainingError, match="already has de"):
        Trainer.from_data(tiny(), fake_data, ["de"], tmp_path / "x", base=de_base, progress=False)


def test_progressive_run_resumes_exactly(fake_data, de_base, tmp_path):
    cfg = tiny("train.max_steps=4", "train.valid_every=2", "train.log_every=1")
    Trainer.from_data(cfg, fake_data, ["zh-CN"], tmp_path / "a", base=de_base, progress=False).fit()
    Trainer.from_data(cfg, fake_data, ["zh-CN"], tmp_path / "b", base=de_base, progress=False).fit(stop_at=3)
    Trainer.from_data(cfg, fake_data, ["zh-CN"], tmp_path / "b", base=de_base, resume=True,
            progress=False).fit()

    def losses(run):
        rows = (run / "metrics.jsonl").read_text().splitlines()
        return {r["step"]: r["loss"] for r in map(json.loads, rows) if r["kind"] == "train"}

    a, b = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert sorted(a) == sorted(b) == [1, 2, 3, 4]
    assert all(a[s] == pytest.approx(b[s], rel=1e-5) for s in a)
