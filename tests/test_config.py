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
