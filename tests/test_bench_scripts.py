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


def test_table2_dry_run(tmp_path):
    "bench/table2.py --dry trains two patterns on a tiny model and writes each one's curve, as it would on the GPU."
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'CUDA_VISIBLE_DEVICES': ''}
    r = subprocess.run([sys.executable, 'bench/table2.py', '6', str(tmp_path), '--dry', '--kinds', 'dense', 'strided',
                        '--evals', '3'], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for kind in ('dense', 'strided'):
        res = json.loads((tmp_path/f'table2_{kind}_s0.json').read_text())
        curve = res['curve']
        assert res['kind'] == kind and len(curve) == 3 and curve[-1]['step'] == res['steps'] > 8, res
        assert [p['seconds'] for p in curve] == sorted(p['seconds'] for p in curve) and curve[-1]['seconds'] >= 3
        assert all(0 < p['valid_bits'] < 9 for p in curve) and res['unigram_bits'] > 3


def test_natural_sweep_dry_run(tmp_path):
    "bench/natural_sweep.py --dry times two natural-pass tiles through the interpreter; their gradients match the default plan's."
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'CUDA_VISIBLE_DEVICES': '', 'TRITON_INTERPRET': '1'}
    r = subprocess.run([sys.executable, 'bench/natural_sweep.py', str(tmp_path), '--dry'], cwd=ROOT, capture_output=True,
                       text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rows = (tmp_path/'natural_sweep.csv').read_text().splitlines()
    assert rows[0].startswith('n,tile,') and len(rows) == 3, rows
    for row in rows[1:]:
        err = float(row.split(',')[-1])
        assert 0 <= err < 1e-5, row   # a NaN (a failed configuration) fails here too


def test_gpu_notebooks_only_cuda_selection(tmp_path):
    "--only-cuda keeps the cuda cells, the module's cells and the earlier cells whose names they read; merge copies cuda outputs."
    import nbformat
    sys.path.insert(0, str(ROOT/'bench'))
    import gpu_notebooks as g
    cells = [nbformat.v4.new_code_cell(s) for s in [
        'import torch',                                        # 0: an import
        '#| export\ndef f(x): return x + 1',                 # 1: the module
        'slow = [f(i) for i in range(3)]\nassert slow',      # 2: a test nothing needs
        'def helper(y):\n    z = y * 2\n    return z',       # 3: read by the cuda cell
        'z = 5',                                               # 4: `z` is local to helper, so not needed
        '#| cuda\nfor i in range(2): print(helper(f(i)))',   # 5: the cuda cell
        '#| eval: false\nhelper(1)',                          # 6: never run
        'w = {"a": 1}',                                        # 7: defines w
        'w = dict(w, b=2)',                                    # 8: rebinds w from w: needs 7
        'w["c"] = 3',                                          # 9: changes w in place
        'v = 1\nv += 1',                                      # 10: nothing reads v
        '#| cuda\nprint(w)']]                                # 11: reads w
    assert g.needed_cells(cells) == {0, 1, 3, 5, 7, 8, 9, 11}
    cells[11].id = 'last'   # --cells: only the cuda cells named, with what they need
    assert g.needed_cells(cells, ['last']) == {0, 1, 7, 8, 9, 11}
    src, ran = nbformat.v4.new_notebook(cells=cells), nbformat.v4.new_notebook(cells=[nbformat.from_dict(c) for c in cells])
    ran.cells[5].outputs = [nbformat.v4.new_output('stream', text='2\n4\n')]
    ran.cells[2].outputs = [nbformat.v4.new_output('stream', text='not copied\n')]
    nbformat.write(src, tmp_path/'src.ipynb'); nbformat.write(ran, tmp_path/'ran.ipynb')
    assert g.merge(str(tmp_path/'ran.ipynb'), str(tmp_path/'src.ipynb')) == 1
    back = nbformat.read(tmp_path/'src.ipynb', as_version=4)
    assert back.cells[5].outputs[0].text == '2\n4\n' and back.cells[2].outputs == []
    ran.cells[11].outputs = [nbformat.v4.new_output('error', ename='NameError', evalue='w', traceback=[])]
    nbformat.write(ran, tmp_path/'ran.ipynb')
    with pytest.raises(ValueError, match='ended in an error'): g.merge(str(tmp_path/'ran.ipynb'), str(tmp_path/'src.ipynb'))


def _ptx_inspect(*args):
    "The output of bench/ptx_inspect.py with `args`, compiled here for sm_90 with no GPU and no interpreter."
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'CUDA_VISIBLE_DEVICES': ''}
    env.pop('TRITON_INTERPRET', None)
    r = subprocess.run([sys.executable, 'bench/ptx_inspect.py', *args], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def test_ptx_inspect_fixed():
    "bench/ptx_inspect.py compiles the fixed pattern's kernels for sm_90 here: warp-group products and pipelined copies appear."
    r = _ptx_inspect('--kinds', 'fixed', '--n', '512')
    rows = {tuple(l.split()[1:3]): l.split() for l in r.stdout.splitlines() if l.startswith('fixed ')}
    fwd = rows[('_attn_fwd', 'k')]
    assert int(fwd[-4]) > 0 and int(fwd[-2]) > 0, fwd          # wgmma and cp.async in the forward
    assert ('_attn_bwd_dkdv', '-') in rows and ('_attn_bwd_dq', 'k') in rows, sorted(rows)


def test_ptx_sequence():
    "bench/ptx_inspect.py --sequence reads the order of products, waits and exponentials: the dense forward's loop waits for Q K^T before its exponentials and leaves P V running."
    sys.path.insert(0, str(ROOT/'bench'))
    from ptx_inspect import ptx_sequence
    ptx = "$L__BB0_1:\n wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {};\n wgmma.mma_async.sync.aligned {};\n wgmma.commit_group.sync.aligned;\n wgmma.wait_group.sync.aligned 0;\n ex2.approx.f32 %f1, %f2;\n ex2.approx.f32 %f3, %f4;\n bar.sync 0;"
    assert ptx_sequence(ptx) == '$L__BB0_1 MMAx2 C WAIT0 Ex2 B'
    seq = _ptx_inspect('--kinds', 'dense', '--n', '512', '--sequence', '_attn_fwd').stdout.splitlines()[-1]
    assert 'MMAx8 C WAIT0 Ex' in seq and 'MMAx16 C B' in seq, seq


def test_variants_prepare_and_read():
    "bench/variants.py prepare writes a revision's package under .variants/; the table reader finds our kernels' rows."
    sys.path.insert(0, str(ROOT/'bench'))
    import shutil, variants
    r = subprocess.run([sys.executable, 'bench/variants.py', 'prepare', 'HEAD'], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    try:
        assert (ROOT/'.variants'/'HEAD'/'sparse_transformer_edu'/'plans.py').is_file()
        assert ('HEAD', ROOT/'.variants'/'HEAD') in variants.variant_dirs() and variants.variant_dirs()[0] == ('.', ROOT)
    finally: shutil.rmtree(ROOT/'.variants'/'HEAD')
    rows = variants.read_medians(ROOT/'bench'/'runs'/'chapter11_results.csv')
    assert ('ours fixed', 'fwd+bwd', 'B=1', 'D=64', 'N=65536') in rows and all(k[0].startswith('ours') for k in rows)
    assert all(v > 0 for v in rows.values())


def test_host_glue_cpu():
    "bench/host_glue.py on the CPU: each pattern's launches stubbed, then its direct path faked up to the launcher, with the launch count of each (fixed: 1 forward + 3 backward; strided: 2 + 4)."
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'CUDA_VISIBLE_DEVICES': ''}
    r = subprocess.run([sys.executable, 'bench/host_glue.py', '--n', '512', '--iters', '5'], cwd=ROOT, capture_output=True,
                       text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    lines = {l.split(':')[0]: l for l in r.stdout.splitlines()}
    for kind, n in (('fixed', 4), ('strided', 6)):
        assert f'{n} launches' in lines[kind] and f'direct path faked up to the launcher ({n} launcher calls)' in lines[kind], lines
    assert 'do-nothing autograd Function' in lines


def test_pass_tiles_dry_run(tmp_path):
    "bench/pass_tiles.py --dry swaps each strided pass's tile through the interpreter; every swap matches the package's plan."
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'CUDA_VISIBLE_DEVICES': '', 'TRITON_INTERPRET': '1'}
    r = subprocess.run([sys.executable, 'bench/pass_tiles.py', str(tmp_path), '--dry', '--repeats', '1'], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert 'against float32' in r.stdout, r.stdout[-3000:]
    rows = (tmp_path/'pass_tiles.csv').read_text().splitlines()
    assert rows[0] == 'case,kernel,pass_index,tile,default,ms,rel_err_vs_default', rows[0]
    swaps = [row.split(',') for row in rows[1:] if row.split(',')[1] in ('fwd', 'bwd')]
    # two forward passes (band, stride part) and four backward ones (each of those for the dQ kernel and for the dK/dV
    # kernel, which have tiles of their own), three tiles each (the package's and two more)
    assert len(swaps) == (2 + 4) * 3, rows
    for row in swaps:
        assert 0 <= float(row[-1]) < 1e-5, row   # a NaN (a failed configuration) fails here too
    assert sum(row[1].startswith('combined') for row in (r.split(',') for r in rows[1:])) == 2, rows


def test_bwd_tiles_dry_run(tmp_path):
    "bench/bwd_tiles.py --dry --switches: the package's backward tiles with each switch of the dK/dV kernel on and off, through the interpreter, equal the default plan's gradients."
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'CUDA_VISIBLE_DEVICES': '', 'TRITON_INTERPRET': '1'}
    r = subprocess.run([sys.executable, 'bench/bwd_tiles.py', str(tmp_path), '--dry', '--switches'], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rows = [row.split(',') for row in (tmp_path/'bwd_tiles.csv').read_text().splitlines()]
    assert rows[0] == ['case', 'setting', 'repeat', 'ms', 'err'], rows[0]
    assert len(rows) == 1 + 3 * 4, rows   # dense, fixed and strided, four settings each
    for row in rows[1:]:
        assert 0 <= float(row[-1]) < 1e-2, row   # a NaN (a setting that failed) fails here too


def test_grid_order_dry_run(tmp_path):
    "bench/grid_order.py --dry: every grid order gives the same output and gradients, bit for bit, through the interpreter."
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'CUDA_VISIBLE_DEVICES': '', 'TRITON_INTERPRET': '1'}
    r = subprocess.run([sys.executable, 'bench/grid_order.py', str(tmp_path), '--dry', '--orders', 'auto', 'heads'], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rows = [row.split(',') for row in (tmp_path/'grid_order.csv').read_text().splitlines()]
    assert rows[0] == ['case', 'order', 'bwd', 'round', 'ms', 'same'], rows[0]
    assert len(rows) == 1 + 3 * 3 * 2 and all(row[-1] == 'True' for row in rows[1:]), rows   # 3 cases x 3 orders x fwd, fwd+bwd


def test_persistent_grid_variant(tmp_path):
    "bench/persistent_grid.py writes a package whose forward loops over its pairs, and that forward is exact through the interpreter."
    r = subprocess.run([sys.executable, 'bench/persistent_grid.py', '2', '--dest', str(tmp_path), '--check'], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    src = (tmp_path/'persist2'/'sparse_transformer_edu'/'kernels.py').read_text()
    assert 'tl.num_programs(0)' in src and '_SMS[dev] * 2' in src
    assert [l.split()[0] for l in r.stdout.splitlines() if l.split()[:1] in (['strided'], ['fixed'])] == ['strided', 'fixed']


def _variant(script, name, dest):
    "Run a variant script with --check into `dest`: its output and the variant's kernels.py."
    r = subprocess.run([sys.executable, script, '--dest', str(dest), '--check'], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout, (dest/name/'sparse_transformer_edu'/'kernels.py').read_text()


def _paths(out):
    "The path column of a variant check's lines: the word before 'errors' ('bands', 'stored', 'fused', 'kernels' of 'two kernels', 'ahead', 'short')."
    return [l.split('errors')[0].split()[-1] for l in out.splitlines() if 'errors' in l]


def test_arith_masks_variant(tmp_path):
    "bench/arith_masks.py writes a package that computes band-shaped tile masks; through the interpreter it is exact, with bands and with stored masks."
    out, src = _variant('bench/arith_masks.py', 'arith-masks', tmp_path)
    assert src.count('where(_tile_keep(MASKS, mid, BM, BN') == 3 and src.count(', _mask_arg(plan),') == 3
    assert set(_paths(out)) >= {'bands', 'stored'}, out


def test_fused_dq_variant(tmp_path):
    "bench/fused_dq.py writes a package whose dK/dV kernel adds dQ by atomics; through the interpreter it is exact where it fuses and where it does not."
    out, src = _variant('bench/fused_dq.py', 'fused-dq', tmp_path)
    assert src.count('tl.atomic_add(dq_ptrs') == 2 and 'if fusable(passes): return _backward_fused(' in src
    paths = _paths(out)
    assert paths.count('fused') == 6 and paths.count('kernels') == 1, out


def _check_errors(script):
    "Run `script --check` (a stand-alone kernel against float64 through the interpreter): the errors of its 'check' lines."
    r = subprocess.run([sys.executable, script, '--check'], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return [float(l.split()[-1]) for l in r.stdout.splitlines() if l.startswith('check ')]


def test_ws_loop_check():
    "bench/ws_loop.py --check: the stand-alone descriptor-loop kernels agree with float64 through the interpreter, table or count."
    errs = _check_errors('bench/ws_loop.py')
    assert len(errs) == 4 and max(errs) < 1e-2, errs


def test_compact_summary_check():
    "bench/compact_summary.py --check: fixed's forward over K and V with a copy of their summary rows, planned without a map, equals the package's."
    r = subprocess.run([sys.executable, 'bench/compact_summary.py', '--check'], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and 'runs True, no map True' in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]


def test_dq_reduce_check():
    "bench/dq_reduce.py --check: the stand-alone causal backward, seven products or five with atomic dQ, agrees with float64 through the interpreter."
    errs = _check_errors('bench/dq_reduce.py')
    assert len(errs) == 6 and max(errs) < 1e-2, errs


def test_ptxas_regs_fixed():
    "bench/ptxas_regs.py compiles fixed's backward kernels and the stand-alone dK/dV kernel for sm_90 here and reads registers and spills from ptxas."
    r = subprocess.run([sys.executable, 'bench/ptxas_regs.py', '--kinds', 'fixed', '--standalone', '128x64x8x3'], cwd=ROOT,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = [l for l in r.stdout.splitlines() if ' regs ' in l]
    assert len(rows) == 4 and all(0 < int(l.split(' regs ')[1].split()[0]) <= 255 for l in rows), r.stdout


def test_qk_ahead_variant(tmp_path):
    "bench/qk_ahead.py writes a package whose forward starts the next tile's scores before the current softmax; through the interpreter it is exact, with the look-ahead loop run."
    out, src = _variant('bench/qk_ahead.py', 'qk-ahead', tmp_path)
    assert src.count('s_next = _mm(q_tile, tl.trans(k_next), FP32)') == 1 and src.count('def _fwd_probs(') == 1
    assert _paths(out).count('ahead') >= 4, out


def test_pv_behind_variant(tmp_path):
    "bench/pv_behind.py writes packages whose forward adds P V one trip late; through the interpreter it is exact, with that loop run."
    out, src = _variant('bench/pv_behind.py', 'pv-behind', tmp_path)   # --check; the controls below are written without it
    assert src.count('_mm(p_prev.to(v_prev.dtype), v_prev, FP32)') == 1 and src.count('def _online_probs(') == 1
    assert _paths(out).count('ahead') >= 4, out
    w8 = (tmp_path/'pv-behind-w8'/'sparse_transformer_edu'/'kernels.py').read_text()
    assert '("fwd", 128, 128, 64): dict(num_warps=8' in w8 and '("fwd", 128, 128, 64)' not in src
    r = subprocess.run([sys.executable, 'bench/pv_behind.py', '--dest', str(tmp_path/'c'), '--controls'], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    pkg = lambda name, f: (tmp_path/'c'/name/'sparse_transformer_edu'/f).read_text()
    assert '"fwd": {"dense": (128, 64), "fixed": (128, 64),' in pkg('main-bn64', 'plans.py') and '_online_probs' not in pkg('main-bn64', 'kernels.py')
    assert '"fwd": {"dense": (128, 64), "fixed": (128, 64),' in pkg('pv-behind-bn64', 'plans.py') and '_online_probs' in pkg('pv-behind-bn64', 'kernels.py')
    assert 'dict(num_warps=8, num_stages=3),' in pkg('main-w8', 'kernels.py') and '_online_probs' not in pkg('main-w8', 'kernels.py')


def gluon_compile(*args) -> tuple:
    "Run a Gluon bench script's --compile (sm_90, no GPU) outside Triton's interpreter: (its output, its report lines)."
    env = {k: v for k, v in os.environ.items() if k != 'TRITON_INTERPRET'}   # Triton's interpreter changes the language it compiles
    r = subprocess.run([sys.executable, *args, '--compile'], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return r.stdout, [l for l in r.stdout.splitlines() if ': regs ' in l]


def test_gluon_fwd_compile():
    "bench/gluon_fwd.py --compile --best compiles its kept Gluon kernels for sm_90 here; at 64 query rows they do not spill."
    out, rows = gluon_compile('bench/gluon_fwd.py', '--best')
    assert len(rows) == 6 and 'fails' not in out, out
    assert all('spill stores/loads 0/0 B' in l for l in rows if "'BM': 64" in l), out


def test_gluon_dq_compile():
    "bench/gluon_dq.py --compile compiles its Gluon dQ kernel, dense and fixed, for sm_90 here, with no spills."
    out, rows = gluon_compile('bench/gluon_dq.py')
    assert [l.split(':')[0] for l in rows] == ['dense', 'fixed'], out
    assert all('spill stores/loads 0/0 B' in l for l in rows), out


def test_gluon_dkdv_compile():
    "bench/gluon_dkdv.py --compile compiles each of its Gluon dK/dV configurations, dense and fixed's two passes, for sm_90 here, with no spills."
    out, rows = gluon_compile('bench/gluon_dkdv.py')
    assert len(rows) == 12 and 'fails' not in out, out
    assert {l.split(' ')[0] for l in rows} == {'dense', 'own', 'summary'}, out
    assert all('spill stores/loads 0/0 B' in l for l in rows), out
