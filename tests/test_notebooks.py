"""Run every notebook's test cells through nbdev_test, one pytest case per notebook.

STE_TEST_FLAGS (space separated, e.g. "cuda slow") is passed on as nbdev_test --flags."""
import os, subprocess
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
NBS = sorted(p.name for p in (ROOT/"nbs").glob("*.ipynb") if not p.name.startswith("_"))

@pytest.mark.parametrize("nb", NBS)
def test_notebook(nb):
    flags = os.environ.get("STE_TEST_FLAGS", "").split()
    cmd = ["nbdev_test", "--path", f"nbs/{nb}", "--do_print"]
    if flags: cmd += ["--flags", " ".join(flags)]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    assert r.returncode == 0, f"{nb} failed:\n{r.stdout[-6000:]}\n{r.stderr[-6000:]}"
