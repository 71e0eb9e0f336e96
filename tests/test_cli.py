"""The `ste` console script, run as a user runs it: help, one-line errors, a 3-step training run, sampling."""
import os, subprocess, sys
from pathlib import Path
import pytest
import torch

STE = str(Path(sys.executable).with_name("ste"))
TINY = ["--max-bytes", "50000", "--n-layer", "1", "--d-model", "32", "--n-head", "2", "--context", "64",
        "--stride", "8", "--c", "2", "--batch-size", "4", "--eval-batches", "2", "--no-progress"]

def ste(*args, cwd=None, env=None):
    env = {**os.environ, "MPLBACKEND": "Agg", **(env or {})}
    return subprocess.run([STE, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)

def one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for n in needles: assert n in lines[0], (n, lines[0])

@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["sample", "--help"], ["patterns", "--help"]])
def test_help(args):
    r = ste(*args)
    assert r.returncode == 0 and "usage: ste" in r.stdout

def test_no_command_prints_help():
    r = ste()
    assert r.returncode == 2 and "train" in r.stdout

def test_context_not_multiple_of_stride(tmp_path):
    one_line_error(ste("train", "--context", "100", "--stride", "16", cwd=tmp_path), "context=100", "stride=16")

def test_missing_enwik8_says_how_to_get_it(tmp_path):
    one_line_error(ste("train", "--data", "enwik8", "--data-dir", tmp_path / "none", cwd=tmp_path), "enwik8 not found", "download")

def test_missing_data_file(tmp_path):
    one_line_error(ste("train", "--data", tmp_path / "nope.txt", cwd=tmp_path), "not found")

def test_missing_and_corrupt_checkpoint(tmp_path):
    one_line_error(ste("sample", "--checkpoint", tmp_path / "none.pt"), "does not exist")
    for name, head in (("junk.pt", b""), ("proto.pt", b"\x80\xb1")):   # the second opens like a pickle of protocol 177
        (tmp_path / name).write_bytes(head + os.urandom(4096))
        one_line_error(ste("sample", "--checkpoint", tmp_path / name), "corrupt")
    (tmp_path / "cut.pt").write_bytes(b"PK\x03\x04" + os.urandom(100))
    one_line_error(ste("train", "--resume", "--out", tmp_path / "cut.pt"), "corrupt")

@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_bench_without_gpu():
    one_line_error(ste("bench"), "no CUDA GPU")

def test_train_sample_resume(tmp_path):
    r = ste("train", "--steps", "3", *TINY, "--out", "tiny.pt", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "bits/byte (unigram baseline" in r.stdout.strip().splitlines()[-1]
    r = ste("sample", "--checkpoint", "tiny.pt", "--prompt", "def ", "--length", "16", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("def ")
    r = ste("train", "--resume", "--steps", "4", "--max-bytes", "50000", "--no-progress", "--out", "tiny.pt", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    ck = torch.load(tmp_path / "tiny.pt", weights_only=True)
    assert ck["step"] == 4 and len(ck["history"]["loss"]) == 4
    ck["model_config"]["d_model"] = 64
    torch.save(ck, tmp_path / "bad.pt")
    one_line_error(ste("sample", "--checkpoint", "bad.pt", cwd=tmp_path), "incompatible")

def test_patterns_writes_figures(tmp_path):
    r = ste("patterns", "--out", tmp_path / "figs", "--n", "64", "--stride", "8", "--c", "2")
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert names == ["connectivity_compare.png", "connectivity_dense.png", "connectivity_fixed.png", "connectivity_strided.png"]
    one_line_error(ste("patterns", "--n", "60", "--stride", "8", "--out", tmp_path / "f2"), "--n=60")

CPU = {"CUDA_VISIBLE_DEVICES": ""}   # processes over gloo, also on a machine with GPUs

def test_nproc_errors_before_starting(tmp_path):
    one_line_error(ste("train", *TINY, "--nproc", "2", "--batch-size", "5", cwd=tmp_path, env=CPU), "batch_size=5", "multiple of 2")
    one_line_error(ste("train", "--nproc", "0", *TINY, cwd=tmp_path, env=CPU), "nproc=0")
    one_line_error(ste("train", "--nproc", "2", "--shard", "--precision", "fp16", *TINY, cwd=tmp_path, env=CPU), "fp16")
    assert not list(tmp_path.iterdir())
