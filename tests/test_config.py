import dataclasses

import pytest
import yaml

from asr.config import (
    CONFIG_DIR,
    ConfigError,
    FeatureConfig,
    FeatureMismatchError,
    RunConfig,
    TrainConfig,
    apply_overrides,
    check_features,
    check_input_bins,
    from_dict,
    load_run_config,
    load_yaml,
    run_config_from_dict,
    run_config_to_dict,
)


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="train.lrr"):
        run_config_from_dict({"train": {"lrr": 1.0}})


def test_unknown_section_is_named():
    with pytest.raises(ConfigError, match="trian"):
        run_config_from_dict({"trian": {}})


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match="train.max_steps"):
        from_dict(TrainConfig, {"max_steps": "many"}, prefix="train.")
    with pytest.raises(ConfigError, match="train.precision"):
        from_dict(TrainConfig, {"precision": "fp8"}, prefix="train.")


def test_int_accepted_for_float():
    assert from_dict(TrainConfig, {"lr": 1}).lr == 1.0


def test_overrides_parse_yaml_values():
    data = apply_overrides({"train": {"lr": 1e-3}}, ["train.lr=5e-4", "data.alpha=0",
                                                     "model.layout=[0, 4, 2]"])
    assert data == {"train": {"lr": 5e-4}, "data": {"alpha": 0}, "model": {"layout": [0, 4, 2]}}
    with pytest.raises(ConfigError, match="section.key=value"):
        apply_overrides({}, ["lr=1"])


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_loads_and_round_trips(path):
    cfg = load_run_config(path)
    again = run_config_from_dict(run_config_to_dict(cfg))
    assert again == cfg
    assert dataclasses.is_dataclass(cfg.model)


def test_missing_config_lists_shipped():
    with pytest.raises(ConfigError, match="default"):
        load_run_config("no-such-config")


def test_feature_identity_is_checked_with_one_line_naming_both():
    model = FeatureConfig(hop_ms=20.0)
    stored = {"n_mels": 80, "win_ms": 25, "hop_ms": 10.0, "sample_rate": 16000, "dtype": "float16"}
    with pytest.raises(FeatureMismatchError) as e:
        check_features(model, stored, where="data/de/feats/train")
    assert str(e.value) == (
        "data/de/feats/train: features were computed with hop_ms=10.0 but the model uses "
        "hop_ms=20.0; prepare the data again with the model's settings or drop the override")
    assert isinstance(e.value, ValueError)
    check_features(FeatureConfig(), stored, where="x")  # 25 (int, from JSON) is 25.0 ms
    check_features(FeatureConfig(), FeatureConfig(freq_masks=0), where="x")  # SpecAugment: not identity
    with pytest.raises(FeatureMismatchError, match=r"^base: .*n_mels=40, win_ms=20.0 but the model "
                                                   r"uses n_mels=80, win_ms=25.0;"):
        check_features(FeatureConfig(), FeatureConfig(n_mels=40, win_ms=20.0), where="base")
    with pytest.raises(FeatureMismatchError, match="hop_ms=None"):  # a malformed index
        check_features(FeatureConfig(), {"n_mels": 80, "win_ms": 25.0}, where="x")


def test_input_bins_must_agree():
    check_input_bins(FeatureConfig(n_mels=40), model_n_mels=40, stats_bins=40, where="m")
    for model_n_mels, stats_bins in ((80, 40), (40, 80)):
        with pytest.raises(FeatureMismatchError, match=r"^m\.safetensors: features have n_mels=40 "):
            check_input_bins(FeatureConfig(n_mels=40), model_n_mels, stats_bins, where="m.safetensors")


def test_retired_speed_factors():
    """Old model files and run folders say speed_factors: [1.0] (off); anything else is refused."""
    cfg = run_config_from_dict({"features": {"speed_factors": [1.0], "hop_ms": 10}})
    assert cfg.features == FeatureConfig()
    with pytest.raises(ConfigError, match="speed_factors.*removed"):
        run_config_from_dict({"features": {"speed_factors": [0.9, 1.0, 1.1]}})


def test_code_defaults_are_default_yaml():
    """default.yaml spells out every setting with the dataclasses' own default, so a user
    reading it reads what `RunConfig()` does: the two cannot drift apart."""
    shipped = load_yaml("default")
    assert run_config_from_dict(shipped) == RunConfig()
    for section, values in run_config_to_dict(RunConfig()).items():
        if section in shipped:  # progressive: only for `train --strategy progressive`
            spelled = {k for k, v in values.items() if v is not None}
            assert set(shipped[section]) == spelled, section


def test_experiment_model_is_a_named_config():
    """An experiment's model is a shipped config (small.yaml for the synthetic sweeps), never
    model overrides copied into each recipe."""
    from asr.experiment.config import EXPERIMENT_DIR

    for path in EXPERIMENT_DIR.glob("*.yaml"):
        run = yaml.safe_load(path.read_text())["run"]
        assert (CONFIG_DIR / f"{run['base']}.yaml").exists(), path.name
        assert not [o for o in run.get("overrides", []) if o.startswith("model.")], path.name


@pytest.mark.parametrize("override, key, allowed", [
    ("train.accum_steps=0", "train.accum_steps", ">= 1"),
    ("train.max_steps=0", "train.max_steps", ">= 1"),
    ("train.max_steps=-5", "train.max_steps", ">= 1"),
    ("train.valid_every=0", "train.valid_every", ">= 1"),
    ("train.log_every=0", "train.log_every", ">= 1"),
    ("train.lr=0", "train.lr", "in (0, 10]"),
    ("train.lr=.nan", "train.lr", "finite"),
    ("train.grad_clip=-1", "train.grad_clip", "> 0"),
    ("train.keep_checkpoints=0", "train.keep_checkpoints", ">= 1"),
    ("train.decay_factor=1", "train.decay_factor", "in (0, 1)"),
    ("train.final_lr_ratio=0", "train.final_lr_ratio", "in (0, 1]"),
    ("data.batch_frames=0", "data.batch_frames", ">= 1"),
    ("data.alpha=-1", "data.alpha", ">= 0"),
    ("data.alpha=.inf", "data.alpha", "finite"),
    ("data.max_utterance_seconds=0", "data.max_utterance_seconds", "> 0"),
    ("data.loss_weights={de: -1}", "data.loss_weights.de", ">= 0"),
    ("features.hop_ms=0", "features.hop_ms", "in (0, 1000]"),
    ("features.n_mels=100000", "features.n_mels", "in [1, 512]"),
    ("features.frames_per_time_mask=0", "features.frames_per_time_mask", ">= 1"),
    ("features.time_mask_max_ratio=1.5", "features.time_mask_max_ratio", "in [0, 1]"),
    ("train.select_metric=best", "train.select_metric", "mean_cer"),
])
def test_values_outside_their_range_are_refused_at_load(override, key, allowed):
    """Every numeric setting has a range, checked when the config loads: the error names the
    key, the allowed range and the value, on one line."""
    with pytest.raises(ConfigError) as e:
        load_run_config("tiny", [override])
    message = str(e.value)
    assert message.startswith(key) and allowed in message and "\n" not in message


def test_every_numeric_setting_has_a_range():
    """A new numeric field without a range would accept anything: the table must grow with it."""
    from asr.config import DataConfig, FeatureConfig

    for cls in (FeatureConfig, DataConfig, TrainConfig):
        for f in dataclasses.fields(cls):
            if f.type in ("int", "float"):
                assert "range" in f.metadata, f"{cls.__name__}.{f.name} has no range"
