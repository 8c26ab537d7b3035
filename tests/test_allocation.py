"""Files whose headers would drive allocation: checked against what the file holds first.

    model files     a layout of a million blocks, d_model 4096, a vocabulary size that is not
                    the head's, a truncated tensor, languages without tokenizers: refused in
                    one line naming the file, in memory bounded by the file's size (measured
                    in a child process)
    feature caches  an index claiming 10^12 frames, or absurd mel bins: refused at open
    ARPA LMs        a header claiming 10^12 n-grams: refused before KenLM sizes its tables
    devices         --device cuda without CUDA: one line naming it and what is available
"""

from __future__ import annotations

import contextlib
import io
import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from asr import checkpoint as ckpt
from asr.checkpoint import CheckpointError
from asr.cli import main
from asr.device import resolve_device
from asr.feature_cache import FeatureCache, FeatureCacheError
from asr.package import load_package_model
from asr.prepare import feature_dir, tokenizer_path

ROOT = Path(__file__).resolve().parent.parent
MIB = 2**20
# Peak memory a refused file may cost beyond loading the genuine model: a few MB of Python
# objects. Building what the headers below claim would take gigabytes.
SLACK_BYTES = 48 * MIB
CHILD_SECONDS = 90  # a refusal takes about a second; building a million blocks takes minutes
CHILD_ADDRESS_SPACE = 3 * 2**30  # bytes; importing torch and loading the tiny model map ~0.7 GB

_CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
outcome = "ok"
try:
    if sys.argv[2] == "model":
        from asr.package import load_package_model
        load_package_model(sys.argv[3])
    else:
        from asr.decode import BeamSearchDecoder, DecodeConfig
        from asr.tokenizer import Tokenizer
        BeamSearchDecoder(Tokenizer.load(sys.argv[4]), DecodeConfig(beam_size=4, lm_path=sys.argv[3]))
except Exception as e:
    outcome = f"{type(e).__name__}: {e}"
print(json.dumps({"outcome": outcome, "peak": peak()}))
"""


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_ADDRESS_SPACE, CHILD_ADDRESS_SPACE))


def child(*argv) -> dict:
    """Run _CHILD in a fresh interpreter: {"outcome", "peak" (VmHWM bytes)}; fails on a hang.
    Its address space is capped, so a file that is not refused fails fast instead of taking
    the machine's memory."""
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT), *map(str, argv)],
                              capture_output=True, text=True, timeout=CHILD_SECONDS,
                              env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
                              preexec_fn=_limit_address_space)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {CHILD_SECONDS} s: {argv}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, proc.stderr[-2000:]
    return json.loads(lines[-1])


def rewrite(src: Path, dst: Path, change) -> Path:
    """A copy of model file `src` whose metadata `change(meta)` edited, with valid digests:
    what a careless (or hostile) writer produces, not a damaged file."""
    tensors, meta = ckpt.load_package(src)
    change(meta, tensors)
    ckpt.save_package(dst, tensors, meta)
    return dst


def _set_model(key, value):
    def change(meta, tensors):
        meta["config"]["model"][key] = value
    return change


def _vocab(meta, tensors):
    meta["vocab_sizes"]["de"] += 7


def _languages(meta, tensors):
    meta["languages"] = [*meta["languages"], "fr"]
    meta["vocab_sizes"]["fr"] = 10**9


def _head_tensor(meta, tensors):
    name = next(k for k in tensors if k.startswith("model.heads.") and k.endswith("weight"))
    tensors[name] = tensors[name][:-1]


MODEL_CASES = {
    "million_blocks": (_set_model("layout", [0, 1_000_000, 0]), "Conformer blocks, more than"),
    "wide": (_set_model("d_model", 4096), "does not match the tensors"),
    "vocab_size": (_vocab, "does not match the tensors"),
    "language_without_tokenizer": (_languages, "without its tokenizer"),
    "head_tensor_cut": (_head_tensor, "does not match the tensors"),
}


@pytest.fixture(scope="module")
def model_file(tiny_run) -> Path:
    return tiny_run / "model.safetensors"


@pytest.fixture(scope="module")
def genuine_peak(model_file) -> int:
    result = child("model", model_file)
    assert result["outcome"] == "ok", result
    return result["peak"]


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_model_metadata_is_checked_before_allocation(model_file, genuine_peak, tmp_path, case):
    change, words = MODEL_CASES[case]
    bad = rewrite(model_file, tmp_path / "model.safetensors", change)
    if case in ("million_blocks", "wide"):  # in a child first: building them would take GBs
        result = child("model", bad)
        assert words in result["outcome"], result
        assert result["peak"] < genuine_peak + SLACK_BYTES, (result["peak"] / MIB, genuine_peak / MIB)
    with pytest.raises(CheckpointError) as e:
        load_package_model(bad)
    msg = str(e.value)
    assert msg.startswith(f"{bad}: ") and words in msg and "\n" not in msg


def test_a_truncated_tensor_is_refused(model_file, tmp_path):
    data = model_file.read_bytes()
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(data[:len(data) - 1000])
    with pytest.raises(CheckpointError, match=f"^{bad}: .*truncated"):
        load_package_model(bad)


def test_transcribe_names_a_model_with_impossible_metadata(model_file, tmp_path):
    bad = rewrite(model_file, tmp_path / "model.safetensors", _set_model("d_model", 4096))
    try:  # a child, capped: before the check, building this model took gigabytes
        proc = subprocess.run([sys.executable, "-m", "asr.cli", "transcribe", "--model", str(bad),
                               str(model_file), "--lang", "de"], cwd=ROOT, capture_output=True,
                              text=True, timeout=CHILD_SECONDS, preexec_fn=_limit_address_space,
                              env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {CHILD_SECONDS} s")
    assert proc.returncode == 2 and str(bad) in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1 and "does not match the tensors" in proc.stderr


# ---- feature caches --------------------------------------------------------------------------

def _claim(doc):
    doc["utterances"][0]["frames"] = 10**12


def _claim_offset(doc):
    doc["utterances"][-1]["offset"] = 10**12


def _claim_mels(doc):
    doc["config"]["n_mels"] = 10**9


def _claim_shard(doc):
    doc["utterances"][0]["shard"] = 10**6


CACHE_CASES = {"frames": _claim, "offset": _claim_offset, "n_mels": _claim_mels,
               "shard": _claim_shard}


@pytest.mark.parametrize("case", sorted(CACHE_CASES))
def test_cache_index_claims_are_bounded_by_its_shards(fake_data, tmp_path, case):
    import shutil

    cache_dir = tmp_path / "cache"
    shutil.copytree(feature_dir(fake_data, "de", "train"), cache_dir)
    doc = json.loads((cache_dir / "index.json").read_text())
    CACHE_CASES[case](doc)
    (cache_dir / "index.json").write_text(json.dumps(doc))
    with pytest.raises(FeatureCacheError) as e:
        FeatureCache.open(cache_dir)
    assert str(e.value).startswith(str(cache_dir)) and "\n" not in str(e.value)


# ---- ARPA language models --------------------------------------------------------------------

def write_arpa(path: Path, claimed: int) -> Path:
    """A bigram ARPA of 5 unigrams and 1 bigram whose header claims `claimed` unigrams."""
    words = ["<unk>", "<s>", "</s>", "a", "b"]
    lines = ["\\data\\", f"ngram 1={claimed}", "ngram 2=1", "", "\\1-grams:"]
    lines += [f"-1.0\t{w}\t0.0" if w != "</s>" else f"-1.0\t{w}" for w in words]
    lines += ["", "\\2-grams:", "-0.5\t<s> a"]
    path.write_text("\n".join([*lines, "", "\\end\\", ""]))
    return path


def test_arpa_claiming_more_ngrams_than_it_holds_is_refused(fake_data, tmp_path):
    from asr.lm import check_arpa_header

    assert check_arpa_header(write_arpa(tmp_path / "ok.arpa", 5)) == [5, 1]
    bad = write_arpa(tmp_path / "huge.arpa", 10**12)
    with pytest.raises(ValueError, match=f"^{bad}: ARPA header declares 1000000000001 n-grams"):
        check_arpa_header(bad)
    pytest.importorskip("flashlight.lib.text")
    result = child("lm", bad, tokenizer_path(fake_data, "de"))
    assert "more than its" in result["outcome"], result


def test_arpa_claim_costs_no_memory_in_the_beam_decoder(fake_data, tmp_path):
    pytest.importorskip("flashlight.lib.text")
    tok = tokenizer_path(fake_data, "de")
    small = child("lm", write_arpa(tmp_path / "ok.arpa", 5), tok)
    assert small["outcome"] == "ok", small
    big = child("lm", write_arpa(tmp_path / "big.arpa", 30_000_000), tok)  # tables of ~1 GB
    assert "more than its" in big["outcome"], big
    assert big["peak"] < small["peak"] + SLACK_BYTES, (big["peak"] / MIB, small["peak"] / MIB)


# ---- devices ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["cuda", "cuda:7", "tpu"])
def test_an_unavailable_device_is_one_line_naming_it(monkeypatch, name):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(ValueError) as e:
        resolve_device(name)
    assert repr(name) in str(e.value) and "available: cpu" in str(e.value)
    assert resolve_device("auto") == torch.device("cpu")


def test_transcribe_on_a_missing_gpu_is_one_line(tiny_run, model_file):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["transcribe", "--model", str(tiny_run), str(model_file), "--lang", "de",
                     "--device", "cuda"])
    text = err.getvalue()
    assert code == 2 and "'cuda'" in text and "available: cpu" in text and text.count("\n") == 1
