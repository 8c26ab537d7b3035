"""Model files and training state as safetensors plus JSON metadata: loading never unpickles.

A package is one `.safetensors` file. Its header metadata holds JSON values (the full run
config, the languages, normalisation statistics), a SHA-256 of all tensor bytes and one of
that metadata, so a truncated or altered file is refused with a message naming it. Tokenizers ride along as
uint8 tensors, so a model file needs no sidecar files.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from asr.fileio import SpecialFileError, refuse_special, write_bytes

FORMAT = "polyglot-asr/1"


class CheckpointError(Exception):
    """A model or state file that cannot be used; the message names the file."""


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _meta_digest(header: dict[str, str]) -> str:
    """SHA-256 of the metadata strings (config, statistics...) other than the digests."""
    plain = {k: v for k, v in header.items() if k not in ("sha256", "meta_sha256")}
    return hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()


def save_package(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write tensors and JSON-able `meta` atomically to one safetensors file."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    header = {k: json.dumps(v, ensure_ascii=False) for k, v in meta.items()}
    header["format"] = FORMAT
    header["sha256"] = _digest(tensors)
    header["meta_sha256"] = _meta_digest(header)
    write_bytes(path, st_save(tensors, metadata=header))


def load_package(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read and verify a package written by `save_package`; returns (tensors, meta)."""
    path = Path(path)
    try:
        refuse_special(path)
    except SpecialFileError as e:
        raise CheckpointError(str(e)) from None
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    data = path.read_bytes()
    # A safetensors file starts with an 8-byte header length and then a JSON header; anything
    # else (a pickle, a torch.save zip) is refused before any parser sees its bytes.
    if len(data) < 9 or data[8:9] != b"{":
        kind = "pickle/zip (torch.save)" if data[:1] == b"\x80" or data[:2] == b"PK" else "unknown"
        raise CheckpointError(f"{path}: not a safetensors file ({kind} content, or truncated); "
                              "refusing to load it")
    try:
        header = _header(data)
        tensors = st_load(data)
    except (SafetensorError, ValueError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not a valid safetensors file (truncated or damaged?): {e}") from None
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a polyglot-asr file (format {header.get('format')!r})")
    # files written before meta_sha256 existed carry the tensor digest only
    if header.get("sha256") != _digest(tensors) or (
            "meta_sha256" in header and header["meta_sha256"] != _meta_digest(header)):
        raise CheckpointError(f"{path}: checksum mismatch: the file was altered or damaged")
    try:
        meta = {k: json.loads(v) for k, v in header.items()
                if k not in ("format", "sha256", "meta_sha256")}
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable metadata ({e})") from None
    return tensors, meta


def _header(data: bytes) -> dict:
    """The `__metadata__` of a safetensors byte string."""
    if len(data) < 8:
        raise ValueError("file shorter than the 8-byte header length")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise ValueError("header length beyond the end of the file")
    meta = json.loads(data[8 : 8 + n]).get("__metadata__") or {}
    if not isinstance(meta, dict):
        raise ValueError("__metadata__ is not a mapping")
    return meta


def optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state_dict into tensors and JSON (no pickle)."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"optim.{idx}.{key}"] = val
            else:
                scalars[f"{idx}.{key}"] = val
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict[int, dict] = {}
    for name, val in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = val
    for name, val in meta["scalars"].items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = val
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
