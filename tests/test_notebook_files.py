"""The notebooks as files: saving one in Jupyter leaves no diff, and the prose cites only files the repository has."""
import json, re, shutil
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p for p in (ROOT/'nbs').glob('*.ipynb') if not p.name.startswith(('_', '.')))


def _as_jupyter_saves_it(nb: dict) -> dict:
    "The notebook as JupyterLab writes it after a run: execution counts, timings, kernel and language metadata."
    nb = json.loads(json.dumps(nb))
    k = 0
    for c in nb['cells']:
        if c['cell_type'] != 'code': continue
        k += 1
        c['execution_count'] = k
        c['metadata']['execution'] = {'iopub.execute_input': '2026-11-29T10:00:00.000Z'}
        for o in c.get('outputs', []):
            if 'execution_count' in o: o['execution_count'] = k
    nb['metadata']['kernelspec'] = {'display_name': 'Python 3 (ipykernel)', 'language': 'python', 'name': 'python3'}
    nb['metadata']['language_info'] = {'name': 'python', 'version': '3.11.7'}
    return nb


@pytest.mark.parametrize('path', NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_saving_in_jupyter_leaves_no_diff(path, tmp_path):
    "nbdev's pre-save hook (jupyter_hooks in settings.ini, installed by nbdev_install_hooks) strips what Jupyter adds."
    from nbdev.clean import clean_jupyter
    shutil.copy(ROOT/'settings.ini', tmp_path/'settings.ini')   # the hook reads the project's settings from there
    (tmp_path/'nbs').mkdir()
    target = tmp_path/'nbs'/path.name
    shutil.copy(path, target)   # as when a reader saves a notebook they opened
    committed = json.loads(path.read_text(encoding='utf-8'))
    model = dict(type='notebook', content=_as_jupyter_saves_it(committed))
    assert model['content'] != committed
    clean_jupyter(path=target, model=model)
    assert model['content'] == committed, f'{path.name}: saving it in Jupyter would change it'


_cited = re.compile(r'(?<![\w/:.-])((?:\.\./)?[\w.-]+(?:/[\w.-]+)+\.(?:md|py|csv|json|txt|ipynb|ini|yml)|[A-Z][A-Z_]+\.md)\b')

def _prose():
    "(where, text) of every notebook's Markdown cells and of the Markdown files readers open."
    for p in NOTEBOOKS:
        for i, c in enumerate(json.loads(p.read_text(encoding='utf-8'))['cells']):
            if c['cell_type'] == 'markdown': yield f'{p.name} cell {i}', p.parent, ''.join(c['source'])
    for p in [ROOT/'README.md', *ROOT.glob('*/*.md')]:
        yield str(p.relative_to(ROOT)), p.parent, p.read_text(encoding='utf-8')


def test_prose_cites_only_files_the_repository_has():
    "A path (`bench/runs/x.csv`) or a NAME.md named in the prose exists, from the repository root or beside the text."
    missing = []
    for where, here, text in _prose():
        for m in _cited.finditer(re.sub(r'https?://\S+', '', text)):
            f = m.group(1)
            if not ((ROOT/f).exists() or (here/f).exists()): missing.append(f'{where}: {f}')
    assert not missing, 'cited but not in the repository:\n' + '\n'.join(missing)
