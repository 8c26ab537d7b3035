"""The model: subsampling arithmetic, padding invariance, sharing layouts, configs, heads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from asr.config import from_dict, to_dict
from asr.model import (
    MIN_INPUT_FRAMES,
    SUBSAMPLING,
    ConformerBlock,
    Conv2dSubsampling,
    ModelConfig,
    MultilingualCTC,
    count_parameters,
    ctc_loss,
    lengths_to_mask,
)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "asr" / "configs"
VOCAB = {"de": 11, "fr": 9, "zh-CN": 23}
N_MELS = 20


def tiny_config(layout=(0, 2, 0), dropout=0.0) -> ModelConfig:
    return ModelConfig(n_mels=N_MELS, d_model=16, n_heads=2, ff_mult=2, conv_kernel=5,
                       subsampling_channels=4, dropout=dropout, layout=layout)


def tiny_model(layout=(0, 2, 0), vocab=None, seed=0) -> MultilingualCTC:
    torch.manual_seed(seed)
    return MultilingualCTC(tiny_config(layout), dict(vocab or VOCAB)).eval()


def batch(lens, seed=0, pad_value=None):
    g = torch.Generator().manual_seed(seed)
    lens = torch.tensor(lens)
    feats = torch.randn(len(lens), int(lens.max()), N_MELS, generator=g)
    if pad_value is not None:
        feats = feats.masked_fill(~lengths_to_mask(lens, feats.shape[1])[..., None], pad_value)
    return feats, lens


# ---- subsampling ------------------------------------------------------------------------------
def test_subsampled_lengths_match_conv_output():
    sub = Conv2dSubsampling(n_mels=N_MELS, d_model=8, channels=2)
    for t in range(MIN_INPUT_FRAMES, 200):
        expected = int(Conv2dSubsampling.subsampled_lengths(torch.tensor([t])))
        assert sub(torch.zeros(1, t, N_MELS)).shape[1] == expected, t
        assert expected >= 1, t
        assert expected == ((t - 1) // 2 - 1) // 2
    assert int(Conv2dSubsampling.subsampled_lengths(torch.tensor([MIN_INPUT_FRAMES - 1]))) < 1


def test_subsampling_factor_is_the_front_ends():
    sub = Conv2dSubsampling(n_mels=N_MELS, d_model=8, channels=2)
    strides = [m.stride for m in sub.conv if isinstance(m, torch.nn.Conv2d)]
    assert all(s[0] == s[1] for s in strides) and torch.tensor([s[0] for s in strides]).prod() == SUBSAMPLING
    t = 4000  # frames: the output rate converges on input rate / SUBSAMPLING
    assert abs(int(Conv2dSubsampling.subsampled_lengths(torch.tensor([t]))) - t / SUBSAMPLING) <= 2


def test_subsampling_real_frames_never_read_padding():
    sub = Conv2dSubsampling(n_mels=N_MELS, d_model=8, channels=2)
    feats, lens = batch([23], seed=1)
    padded = torch.cat([feats, torch.full((1, 9, N_MELS), 1e3)], dim=1)
    n = int(Conv2dSubsampling.subsampled_lengths(lens))
    torch.testing.assert_close(sub(padded)[:, :n], sub(feats)[:, :n])


def test_too_short_input_is_a_clear_error():
    model = tiny_model()
    feats, lens = batch([MIN_INPUT_FRAMES - 1, 12])
    with pytest.raises(ValueError, match="feat_lens"):
        model(feats, lens, "de")


# ---- padding invariance ----------------------------------------------------------------------
def test_conformer_block_ignores_padding():
    torch.manual_seed(0)
    block = ConformerBlock(d_model=16, n_heads=2, ff_mult=2, conv_kernel=5, dropout=0.0).eval()
    x = torch.randn(1, 9, 16)
    garbage = torch.cat([x, 100 * torch.randn(1, 6, 16)], dim=1)
    mask = lengths_to_mask(torch.tensor([9]), 15)
    torch.testing.assert_close(block(garbage, mask)[:, :9], block(x, torch.ones(1, 9, dtype=torch.bool)),
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("layout", [(0, 2, 0), (1, 1, 1)])
def test_padding_never_changes_real_frames(layout):
    model = tiny_model(layout)
    short, short_len = batch([37], seed=1)
    long, long_len = batch([61], seed=2)
    padded = torch.cat([short, torch.full((1, 24, N_MELS), 7.0)], dim=1)  # nonzero padding on purpose
    both = torch.cat([padded, long]), torch.cat([short_len, long_len])
    with torch.no_grad():
        alone = model(short, short_len, "zh-CN")
        batched = model(*both, "zh-CN")
    n = int(alone["out_lens"][0])
    assert int(batched["out_lens"][0]) == n
    for key in ("log_probs", "shared"):
        torch.testing.assert_close(batched[key][:1, :n], alone[key], atol=1e-5, rtol=1e-5)
    if not layout[0]:  # language ID pools real frames only (a fitted-looking head: random)
        torch.nn.init.normal_(model.lid.proj.weight)
        lid_alone = model.lid_logits(model.encode_shared(short, short_len, statistics=True)[2])
        lid_batched = model.lid_logits(model.encode_shared(*both, statistics=True)[2])
        torch.testing.assert_close(lid_batched[:1], lid_alone, atol=1e-5, rtol=1e-5)


def test_a_lid_reference_is_frozen_read_by_lid_alone_and_ignores_padding():
    """A fine-tuned model's LID reference: a frozen copy of the start's language-independent
    path; CTC output unchanged, LID statistics doubled (reference first), padding-blind, kept in
    eval mode, and rebuilt by a package from its metadata."""
    model = tiny_model()
    short, short_len = batch([37], seed=1)
    with torch.no_grad():
        before = model(short, short_len, "de")["log_probs"]
        own = model.encode_shared(short, short_len, statistics=True)[2]
    start = {k: v.clone() for k, v in model.shared.state_dict().items()}
    model.keep_lid_reference()
    with torch.no_grad():
        for p in model.shared.parameters():  # fine-tuning moves the model's own blocks
            p.add_(0.1 * torch.randn_like(p))
    assert all(not p.requires_grad for p in model.lid_reference.parameters())
    assert model.train().lid_reference.training is False
    model.eval()
    for k, v in model.lid_reference.shared.state_dict().items():
        torch.testing.assert_close(v, start[k])
    long, long_len = batch([61], seed=2)
    padded = torch.cat([short, torch.full((1, 24, N_MELS), 7.0)], dim=1)
    with torch.no_grad():
        stats = model.encode_shared(short, short_len, statistics=True)[2]
        batched = model.encode_shared(torch.cat([padded, long]), torch.cat([short_len, long_len]),
                                      statistics=True)[2]
    assert stats.shape[-1] == model.lid_statistics == 2 * own.shape[-1]
    torch.testing.assert_close(stats[:, :own.shape[-1]], own)  # the start's statistics, first
    torch.testing.assert_close(batched[:1], stats, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(model(short, short_len, "de")["log_probs"], before)
    clone = MultilingualCTC(model.config, VOCAB)
    clone.keep_lid_reference()
    clone.load_state_dict(model.state_dict())  # the names a package stores
    other = tiny_model(layout=(0, 3, 0))
    with pytest.raises(ValueError, match="front end and shared"):
        tiny_model().keep_lid_reference(other)
    with pytest.raises(ValueError, match="shared front end"):
        tiny_model(layout=(1, 1, 0)).keep_lid_reference()
    # a progressive column on it: the column is frozen, so LID reads it and the copy goes
    from asr.model.progressive import ProgressiveCTC

    progressive = ProgressiveCTC(model)
    assert model.lid_reference is None and model.lid.proj.in_features == own.shape[-1]
    assert not any(k.startswith("columns.0.lid_reference.") for k in progressive.state_dict())


# ---- heads and outputs ------------------------------------------------------------------------
def test_each_head_has_its_vocab_size_and_normalised_log_probs():
    model = tiny_model()
    feats, lens = batch([30, 21])
    for locale, vocab_size in VOCAB.items():
        out = model(feats, lens, locale)
        t_out = int(Conv2dSubsampling.subsampled_lengths(lens.max()))
        assert out["log_probs"].shape == (2, t_out, vocab_size)
        assert out["log_probs"].shape[:2] == out["shared"].shape[:2]
        assert out["log_probs"].dtype == torch.float32
        torch.testing.assert_close(out["log_probs"].exp().sum(-1), torch.ones(2, out["log_probs"].shape[1]))
        assert out["out_lens"].tolist() == Conv2dSubsampling.subsampled_lengths(lens).tolist()
    assert model.languages == list(VOCAB)
    assert "heads.zh-CN.weight" in model.state_dict()


def test_unknown_locale_is_a_clear_error():
    model = tiny_model()
    feats, lens = batch([30])
    with pytest.raises(KeyError, match="not in this model"):
        model(feats, lens, "pt")


def test_state_dict_round_trip_rebuilds_from_config_and_vocab():
    model = tiny_model((1, 1, 1))
    clone = MultilingualCTC(model.config, VOCAB).eval()
    clone.load_state_dict(model.state_dict())
    feats, lens = batch([30, 25])
    torch.testing.assert_close(clone(feats, lens, "zh-CN")["log_probs"], model(feats, lens, "zh-CN")["log_probs"])


def test_ctc_loss_reductions_and_impossible_targets():
    log_probs = torch.randn(2, 10, 5).log_softmax(-1)
    targets = torch.tensor([[1, 2, 3], [4, 0, 0]])
    in_lens, tgt_lens = torch.tensor([10, 8]), torch.tensor([3, 1])
    per = ctc_loss(log_probs, targets, in_lens, tgt_lens, reduction="none")
    assert per.shape == (2,)
    torch.testing.assert_close(ctc_loss(log_probs, targets, in_lens, tgt_lens), per.mean())
    torch.testing.assert_close(ctc_loss(log_probs, targets, in_lens, tgt_lens, reduction="mean_per_token"),
                               (per / tgt_lens).mean())
    impossible = ctc_loss(log_probs[:1], torch.tensor([[1, 1, 1]]), torch.tensor([2]), torch.tensor([3]))
    assert impossible.item() == 0.0


# ---- sharing layouts --------------------------------------------------------------------------
LAYOUTS = [(0, 3, 0), (0, 2, 1), (0, 0, 3), (1, 1, 1)]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layouts_build_run_and_share_as_declared(layout):
    model = tiny_model(layout).train()
    feats, lens = batch([40, 33])
    out = model(feats, lens, "zh-CN")
    targets = torch.randint(1, VOCAB["zh-CN"], (2, 3))
    ctc_loss(out["log_probs"], targets, out["out_lens"], torch.tensor([3, 2])).backward()

    def grads(prefix):
        return [p.grad for n, p in model.named_parameters() if n.startswith(prefix)]

    for other in ("de", "fr"):  # another language's own parameters are never touched
        for prefix in (f"heads.{other}.", f"below.{other}.", f"above.{other}.", f"frontends.{other}."):
            assert all(g is None for g in grads(prefix)), prefix
    assert all(g is None for g in grads("lid."))  # fitted after training, never trained
    for prefix in ("heads.zh-CN.", "shared.", "below.zh-CN.", "above.zh-CN.",
                   "frontend." if layout[0] == 0 and layout[1] > 0 else "frontends.zh-CN."):
        assert all(g is not None for g in grads(prefix)), prefix

    below, shared, above = layout
    assert len(model.shared) == shared
    assert all(len(model.below[loc]) == below for loc in VOCAB) if below else not model.below
    assert all(len(model.above[loc]) == above for loc in VOCAB) if above else not model.above
    # per-language blocks are distinct copies, not one module under several names
    block = count_parameters(model._new_block())
    n_blocks = sum(isinstance(m, ConformerBlock) for m in model.modules())
    assert n_blocks == shared + len(VOCAB) * (below + above)
    head = sum(16 * v + v for v in VOCAB.values())
    frontend = count_parameters(model._new_frontend()) * (1 if model.frontend is not None else len(VOCAB))
    lid = 2 * 16 * max(shared, 1) * len(VOCAB) + len(VOCAB)  # mean, std of each shared block
    assert count_parameters(model) == block * n_blocks + head + frontend + lid


def test_language_id_without_a_language():
    shared_bottom = tiny_model((0, 2, 1))
    feats, lens = batch([40, 33])
    shared, out_lens = shared_bottom.encode_shared(feats, lens)
    torch.testing.assert_close(shared, shared_bottom(feats, lens, "de")["shared"])
    _, _, stats = shared_bottom.encode_shared(feats, lens, statistics=True)
    assert stats.shape == (2, 2 * 16 * 2)  # mean and std of each of the 2 shared blocks
    assert shared_bottom.lid_logits(stats).shape == (2, len(VOCAB))
    torch.testing.assert_close(shared_bottom.ctc_log_probs(shared, out_lens, "fr"),
                               shared_bottom(feats, lens, "fr")["log_probs"])
    for layout in [(1, 1, 1), (0, 0, 2)]:
        model = tiny_model(layout)
        assert model.lid_needs_locale
        with pytest.raises(ValueError, match="need the language"):
            model.encode_shared(feats, lens)


# ---- add_language -----------------------------------------------------------------------------
@pytest.mark.parametrize("init_from", [None, "de"])
def test_add_language_keeps_old_outputs(init_from):
    model = tiny_model((1, 1, 1))
    feats, lens = batch([40, 33])
    before = {loc: model(feats, lens, loc) for loc in VOCAB}
    model.add_language("it", 13, init_from=init_from)
    assert model.languages == [*VOCAB, "it"]
    for loc in VOCAB:
        after = model(feats, lens, loc)
        torch.testing.assert_close(after["log_probs"], before[loc]["log_probs"])
    new = model(feats, lens, "it")
    assert new["log_probs"].shape[-1] == 13
    if init_from:  # copied values, separate tensors
        torch.testing.assert_close(new["shared"], before["de"]["shared"])
        assert model.above["it"][0].ff1.net[1].weight.data_ptr() != model.above["de"][0].ff1.net[1].weight.data_ptr()
    with pytest.raises(ValueError, match="already"):
        model.add_language("it", 13)


# ---- configs ----------------------------------------------------------------------------------
def test_from_dict_rejects_unknown_keys_and_coerces_lists():
    with pytest.raises(ValueError, match="d_modle"):
        from_dict(ModelConfig, {"d_modle": 128}, prefix="model.")
    cfg = from_dict(ModelConfig, {"layout": [1, 2, 3], "d_model": 32, "n_heads": 2}, prefix="model.")
    assert cfg.layout == (1, 2, 3)
    assert from_dict(ModelConfig, to_dict(cfg), prefix="model.") == cfg
    assert to_dict(cfg)["layout"] == [1, 2, 3]
    for bad in ({"layout": [0, 0, 0]}, {"layout": [1, 2]}, {"d_model": 30, "n_heads": 4},
                {"conv_kernel": 4}, {"dropout": 1.0}):
        with pytest.raises(ValueError, match="model."):
            from_dict(ModelConfig, bad, prefix="model.")


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_builds(path):
    cfg = from_dict(ModelConfig, yaml.safe_load(path.read_text())["model"], prefix="model.")
    vocab = {"de": 256, "fr": 256, "es": 256, "it": 256, "en": 256, "zh-CN": 3000}
    with torch.device("meta"):  # shapes only: no memory, no init time for the large config
        model = MultilingualCTC(cfg, vocab)
    assert count_parameters(model) > 10_000
    assert model.languages == list(vocab)


def test_shipped_configs_exist():
    assert {p.stem for p in CONFIG_DIR.glob("*.yaml")} >= {"default", "large"}


# ---- precision --------------------------------------------------------------------------------
def test_backward_under_bf16_autocast():
    model = tiny_model((0, 1, 1)).train()
    feats, lens = batch([40, 33])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(feats, lens, "de")
    assert out["log_probs"].dtype == torch.float32
    loss = ctc_loss(out["log_probs"], torch.tensor([[1, 2], [3, 0]]), out["out_lens"], torch.tensor([2, 1]))
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for n, p in model.named_parameters() if p.requires_grad and not n.startswith(
        ("heads.fr", "heads.zh-CN", "above.fr", "above.zh-CN"))]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_conv_module_finishes_under_bf16_autocast_on_two_threads():
    """oneDNN's bf16 depthwise kernel never finished compiling for (B=1, T=56) on 2 threads
    (AMD EPYC Zen 4): a training run hung. Run in a child process, so a hang fails the test."""
    import subprocess
    import sys

    code = ("import torch\nfrom asr.model.encoder import ConvModule\ntorch.set_num_threads(2)\n"
            "m = ConvModule(144, 15, 0.0)\n"
            "for t in (56, 64):\n"
            "    x = torch.randn(1, t, 144, requires_grad=True)\n"
            "    with torch.autocast('cpu', dtype=torch.bfloat16):\n"
            "        y = m(x, torch.ones(1, t, dtype=torch.bool))\n"
            "    y.float().sum().backward()\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
