import pickle

import pytest
import torch

from asr.checkpoint import (
    CheckpointError,
    load_optimizer_state,
    load_package,
    optimizer_state,
    save_package,
)


def test_round_trip(tmp_path):
    path = tmp_path / "m.safetensors"
    save_package(path, {"w": torch.randn(3, 4), "b": torch.arange(5, dtype=torch.uint8)},
                 {"config": {"a": [1, 2]}, "name": "zh-CN"})
    tensors, meta = load_package(path)
    assert meta == {"config": {"a": [1, 2]}, "name": "zh-CN"}
    assert tensors["w"].shape == (3, 4)


@pytest.mark.parametrize("damage", ["truncate", "flip", "pickle", "missing", "empty"])
def test_damaged_files_are_refused_with_their_name(tmp_path, damage):
    path = tmp_path / "m.safetensors"
    save_package(path, {"w": torch.randn(64)}, {"x": 1})
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        data[-5] ^= 0x10
        path.write_bytes(data)
    elif damage == "pickle":
        path.write_bytes(pickle.dumps({"w": [1, 2, 3]}))
    elif damage == "missing":
        path.unlink()
    else:
        path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="m.safetensors"):
        load_package(path)


def test_optimizer_state_round_trip():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    tensors, meta = optimizer_state(opt)
    opt2 = torch.optim.AdamW(model.parameters(), lr=0.5)
    load_optimizer_state(opt2, tensors, meta)
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for k in a["state"]:
        for name, v in a["state"][k].items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(b["state"][k][name]))


def test_header_length_starting_with_pickle_byte_loads(tmp_path):
    """A header length whose low byte is 0x80 (pickle's magic) is still a safetensors file."""
    path = tmp_path / "m.safetensors"
    for pad in range(300):
        save_package(path, {"w": torch.ones(2)}, {"pad": "x" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    assert path.read_bytes()[0] == 0x80
    assert load_package(path)[1]["pad"]
