"""The GPU scripts in bench/ are commands: each has a `main()` and an argparse `--help` that runs on any machine."""
import ast, json, os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p for p in (ROOT/'bench').glob('*.py') if p.name != 'enwik8_shape.py')   # that one is a shared module


@pytest.mark.parametrize('script', SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_script_has_main_and_help(script):
    tree = ast.parse(script.read_text(encoding='utf-8'))
    assert any(isinstance(n, ast.FunctionDef) and n.name == 'main' for n in tree.body), f'{script.name}: no main()'
    top = [n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.If))
           and not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)) and not isinstance(n, ast.Assign)]
    assert not top, f'{script.name}: work at import time: {[ast.unparse(n)[:60] for n in top]}'
    r = subprocess.run([sys.executable, str(script), '--help'], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.startswith('usage:'), r.stdout + r.stderr


def test_gpu_preset_dry_run(tmp_path):
    "bench/gpu_preset.py --dry runs its two commands on a tiny model and writes the JSON and the log it would on the GPU."
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'CUDA_VISIBLE_DEVICES': ''}
    r = subprocess.run([sys.executable, 'bench/gpu_preset.py', str(tmp_path), '--dry'], cwd=ROOT, capture_output=True,
                       text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((tmp_path/'gpu_preset.json').read_text())
    assert res['status'] == 'done' and res['preset'] == 'gpu' and res['steps'] == 3, res
    assert res['sample'].startswith('def ') and res['params'] > 0 and res['settings_line'].startswith('preset gpu ')
    for k in ('valid_bits', 'unigram_bits', 'train_wall_s', 'device', 'torch', 'triton', 'date', 'model_config', 'train_config'):
        assert k in res, k
    assert 'valid ' in (tmp_path/'gpu_preset.log').read_text()
