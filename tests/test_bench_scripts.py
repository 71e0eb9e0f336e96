"""The GPU scripts in bench/ are commands: each has a `main()` and an argparse `--help` that runs on any machine."""
import ast, subprocess, sys
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
