import dataclasses

import pytest

from asr.config import (
    CONFIG_DIR,
    ConfigError,
    TrainConfig,
    apply_overrides,
    from_dict,
    load_run_config,
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
