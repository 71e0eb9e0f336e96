"""Build the documentation site into `_site/`: `python docs/build.py`.

The notebooks in nbs/ are the source. Each goes through nbdev's own notebook processing (`NBProcessor` with the
processors `nbdev_proc_nbs` uses), so directives are honoured exactly as on an nbdev/Quarto site: hidden cells are
dropped, `echo: false` hides code, exported functions and classes get their `show_doc` entries. The notebooks are
not executed: their committed outputs are rendered, and each `show_doc` entry is rendered from the object imported
from the installed package (by `apidoc.markdown`: the signature as written, the docstring, the documented
parameters). Sphinx (myst-nb, sphinx-book-theme)
then renders the processed notebooks and an API reference page for every name in each module's `__all__`.

Reading order is file-name order, index.ipynb first. Intermediate files go to docs/_src (processed notebooks,
generated API pages) and docs/_build (Sphinx's environment); both are git-ignored.

Options: --strict (warnings are errors), --clean (rebuild from scratch), -q (quiet)."""
from __future__ import annotations
import argparse, ast, configparser, importlib, inspect, json, os, pkgutil, re, shutil, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import apidoc   # how a function or class is shown, shared with conf.py's API pages

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT/'docs'
SRC = DOCS/'_src'          # processed notebooks and generated pages: Sphinx's source folder
BUILD = DOCS/'_build'      # Sphinx environment, doctrees, myst-nb's output files
SITE = ROOT/'_site'        # the finished site
ASSETS = {'.png', '.jpg', '.jpeg', '.gif', '.svg', '.webp'}   # files beside the notebooks that pages may show

_re_dir_line = re.compile(r'^\s*#\|\s*([\w-]+)\s*:\s*(.*?)\s*$')
_re_md_link = re.compile(r'\]\(([^)\s]+)\)')
_re_callout = re.compile(r'^:::\s*\{\.callout-(note|tip|warning|important|caution)[^}]*\}\s*$', re.MULTILINE)


WARNINGS = []

def warn(msg):
    "A problem that does not stop the build (it fails a --strict build)."
    WARNINGS.append(msg)
    print(f'WARNING: {msg}', file=sys.stderr)


def settings() -> configparser.SectionProxy:
    cp = configparser.ConfigParser(delimiters=['='])
    cp.read(ROOT/'settings.ini', encoding='utf-8')
    return cp['DEFAULT']


def notebooks(nbs: Path) -> list[Path]:
    "The notebooks of the site in reading order: index first, then by file name; `_`-prefixed ones are private."
    nbs_ = sorted(p for p in nbs.glob('*.ipynb') if not p.name.startswith(('_', '.')))
    return sorted(nbs_, key=lambda p: (p.stem != 'index', p.name))


def docname(p: Path) -> str:
    "The page name nbdev gives a notebook (`01_patterns.ipynb` -> `patterns`), so URLs match an nbdev site's."
    from nbdev.doclinks import _nbpath2html
    return _nbpath2html(Path(p.name)).stem


# ----------------------------------------------------------------------------------------------------------------
# Which notebook exports which name
# ----------------------------------------------------------------------------------------------------------------

def _top_names(tree) -> list[str]:
    from nbdev.showdoc import showdoc_nm
    out = []
    for node in getattr(tree, 'body', []):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): out.append(showdoc_nm(node))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                out += [n.id for n in ast.walk(t) if isinstance(n, ast.Name)]
    return out


def scan_exports(path: Path, lib: str) -> dict[tuple[str, str], None]:
    "(module, name) for each top-level name the notebook exports, read from its cells without running them."
    from execnb.nbio import read_nb
    from nbdev.process import extract_directives
    nb = read_nb(path)
    default, found = None, {}
    for cell in nb.cells:
        if cell.cell_type != 'code': continue
        d = extract_directives(cell, remove=False)
        if 'default_exp' in d and d['default_exp']: default = d['default_exp'][0]
        hit = d.keys() & {'export', 'exports', 'exporti'}
        if not hit: continue
        args = d[next(iter(hit))]
        mod = args[0] if args else default
        if not mod: continue
        try: tree = ast.parse(_strip_directives(cell.source))
        except SyntaxError: continue
        for n in _top_names(tree): found.setdefault((f'{lib}.{mod}', n), None)
    return found


# ----------------------------------------------------------------------------------------------------------------
# show_doc without executing the notebook
# ----------------------------------------------------------------------------------------------------------------

def _strip_directives(src: str) -> str:
    return '\n'.join(l for l in src.splitlines() if not re.match(r'^\s*#\|', l))


def _showdoc_calls(src: str):
    "The `show_doc(...)` calls of a cell made of nothing else, or None."
    try: tree = ast.parse(_strip_directives(src))
    except SyntaxError: return None
    calls = [n.value for n in tree.body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)
             and isinstance(n.value.func, ast.Name) and n.value.func.id == 'show_doc']
    return calls if calls and len(calls) == len(tree.body) else None


def _resolve(node, ns):
    "Look up a name or dotted attribute (no calls, nothing evaluated)."
    if isinstance(node, ast.Name): return ns[node.id]
    if isinstance(node, ast.Attribute): return getattr(_resolve(node.value, ns), node.attr)
    if isinstance(node, ast.Constant): return node.value
    raise ValueError(f'show_doc argument {ast.unparse(node)!r} is not a name')


def _ast_doc(name, nb, title_level=3) -> str | None:
    "show_doc-like Markdown for a function or class defined in the notebook itself (not in the package)."
    for cell in nb.cells:
        if cell.cell_type != 'code': continue
        try: tree = ast.parse(_strip_directives(cell.source or ''))
        except SyntaxError: continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name.split('.')[-1]:
                head = ast.unparse(node).split(':\n')[0] if not isinstance(node, ast.ClassDef) else f'class {node.name}'
                doc = ast.get_docstring(node)
                return f"{'#' * title_level} {name}\n\n```python\n{head}\n```\n" + (f'\n*{doc}*\n' if doc else '')
    return None


def fullname(obj) -> str | None:
    mod, qn = getattr(obj, '__module__', None), getattr(obj, '__qualname__', None)
    return f'{mod}.{qn}' if mod and qn else None


def make_render_show_docs(lib: str):
    "A processor that stands in for nbdev's `exec_show_docs`: it renders `show_doc` cells, and runs nothing else."
    from nbdev.process import Processor
    from nbdev.processors import _default_exp
    from nbdev.showdoc import show_doc

    class render_show_docs(Processor):
        "Render `show_doc` cells from the installed package, without executing the notebook"
        def begin(self):
            self.ns = {'show_doc': show_doc}
            mods = {_default_exp(self.nb)}
            for cell in self.nb.cells:
                if cell.cell_type != 'code': continue
                d = getattr(cell, 'directives_', {}) or {}
                for k in ('export', 'exports', 'exporti'):
                    if d.get(k): mods.add(d[k][0])
                try: tree = ast.parse(_strip_directives(cell.source or ''))
                except SyntaxError: continue
                for node in tree.body:   # the notebook's imports only: they bring names into scope, nothing runs
                    if isinstance(node, (ast.Import, ast.ImportFrom)) and getattr(node, 'module', '') != '__future__':
                        try: exec(compile(ast.Module([node], []), '<imports>', 'exec'), self.ns)
                        except Exception as e: print(f'  note: {ast.unparse(node)!r} failed: {e}', file=sys.stderr)
            for m in filter(None, mods):
                try: self.ns.update(vars(importlib.import_module(f'{lib}.{m}')))
                except Exception as e: warn(f'{lib}.{m} does not import ({type(e).__name__}: {e})')

        def cell(self, cell):
            if cell.cell_type != 'code': return
            calls = _showdoc_calls(cell.source or '')
            if not calls: return
            mds, names = [], []
            for call in calls:
                kw = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg in ('name', 'title_level')}
                try:
                    obj = _resolve(call.args[0], self.ns)
                    if callable(obj): mds.append(apidoc.markdown(obj, kw.get('name'), kw.get('title_level', 3)))
                    else: mds.append(show_doc(obj, **kw)._repr_markdown_())
                    names.append(fullname(obj))
                except Exception as e:
                    nm = ast.unparse(call.args[0])
                    md = _ast_doc(nm, self.nb, kw.get('title_level', 3))
                    if md is None:   # fall back on the committed output
                        md = ''.join(''.join(o.get('data', {}).get('text/markdown', '')) for o in cell.get('outputs', []))
                    if not md: warn(f'cannot render show_doc({nm}): {e}'); continue
                    warn(f'show_doc({nm}) rendered from the notebook source: {e}')
                    mds.append(md); names.append(None)
            cell.outputs = [dict(output_type='display_data', metadata={}, data={'text/markdown': md}) for md in mds]
            cell.metadata['showdoc_names'] = names
    return render_show_docs


# ----------------------------------------------------------------------------------------------------------------
# From an nbdev-processed notebook to a MyST notebook
# ----------------------------------------------------------------------------------------------------------------

class Site:
    def __init__(self):
        self.cfg = settings()
        self.lib = self.cfg['lib_path']
        self.nbs = ROOT/self.cfg.get('nbs_path', 'nbs')
        self.paths = notebooks(self.nbs)
        self.docs = {p: docname(p) for p in self.paths}
        dup = {d for d in self.docs.values() if list(self.docs.values()).count(d) > 1}
        if dup: sys.exit(f'notebooks map to the same page name {sorted(dup)}: rename one')
        self.titles = {}
        self.labels = {}          # fullname -> label of its show_doc entry in a chapter
        self.label_doc = {}       # fullname -> docname of that chapter
        self.exports = {}         # (module, name) -> docname of the chapter that exports it
        self.api = {}             # module -> [names in __all__]
        self.api_targets = set()  # fullnames that have API entries
        base = self.cfg.get('doc_host', '') + self.cfg.get('doc_baseurl', '')
        self.doc_base = base.rstrip('/') + '/' if base else None
        self.modidx = {}          # 'patterns.html#token_mask' -> fullname
        try:
            d = importlib.import_module(f'{self.lib}._modidx').d
            for mod, syms in d['syms'].items():
                for sym, (url, _) in syms.items(): self.modidx.setdefault(url, sym)
        except Exception: pass

    # --- the package's API ---
    def collect_api(self):
        pkg = importlib.import_module(self.lib)
        mods = [self.lib] + [m.name for m in pkgutil.walk_packages(pkg.__path__, self.lib + '.')]
        for name in mods:
            if any(part.startswith('_') for part in name.split('.')[1:]): continue
            try: mod = importlib.import_module(name)
            except Exception as e:
                warn(f'module {name} does not import, so it has no API pages: {type(e).__name__}: {e}'); continue
            names = list(getattr(mod, '__all__', []) or [])
            if name == self.lib: names = [n for n in names if getattr(getattr(mod, n, None), '__module__', name) == name]
            if not names: continue
            self.api[name] = names
            for n in names:
                self.api_targets.add(f'{name}.{n}')
                obj = getattr(mod, n, None)
                if inspect.isclass(obj):
                    self.api_targets.update(f'{name}.{n}.{m}' for m in vars(obj) if not m.startswith('_'))

    # --- links ---
    def _link_target(self, target: str) -> str:
        "Point nbdev-style links between notebooks (`01_x.ipynb`, `x.html`) at this site's pages."
        m = re.match(r'^(?:\./)?([\w.-]+?)\.(ipynb|html|md|qmd)(#[\w.-]*)?$', target)
        if not m: return target
        stem, anchor = m.group(1), m.group(3) or ''
        for p, d in self.docs.items():
            if stem in (p.stem, d): return f'{d}.ipynb{anchor}'
        return target

    def linkify(self, md: str) -> str:
        "nbdev's symbol links (to the nbdev site) become Sphinx cross-references to the API pages."
        if self.doc_base:
            def sym(m):
                text, url = m.group(1), m.group(2)
                full = self.modidx.get(url[len(self.doc_base):])
                if full and full in self.api_targets: return f'{{py:obj}}`{text} <{full}>`'
                return f'`{text}`'
            md = re.sub(r'\[`([^`]+)`\]\((' + re.escape(self.doc_base) + r'[^)\s]*)\)', sym, md)
        md = _re_callout.sub(lambda m: f':::{{{m.group(1)}}}', md)   # Quarto callouts become MyST admonitions
        return _re_md_link.sub(lambda m: f']({self._link_target(m.group(1))})', md)

    def showdoc_md(self, md: str, full: str | None, doc: str) -> str:
        "A show_doc entry as MyST: without Quarto's attribute syntax, with a label and a link to the API page."
        lines = [l for l in md.strip().splitlines()
                 if not re.match(r'^\[source\]\(.*\)\{.*\}\s*$', l)]
        while lines and lines[0].strip() in ('---', ''): lines.pop(0)
        md = '\n'.join(lines)
        md = re.sub(r'(\]\([^)]*\))\{target="_blank"[^}]*\}', r'\1', md)
        if full and full.startswith(self.lib + '.'):
            if full not in self.labels:
                # Sphinx lowercases labels: keep `Recompute` and `recompute` apart
                label, used, k = f'chapter-{full}'.lower(), set(self.labels.values()), 1
                while label in used: k += 1; label = f'chapter-{full}-{k}'.lower()
                self.labels[full] = label
                self.label_doc[full] = doc
                md = f'({self.labels[full]})=\n' + md
            if full in self.api_targets:
                md += f'\n\n<span class="api-link">API reference:</span> {{py:obj}}`{full.split(".", 1)[1]} <{full}>`'
        return md

    # --- one notebook ---
    def process(self, path: Path) -> dict:
        from execnb.nbio import read_nb, nb2dict
        from nbdev.processors import NBProcessor, FilterDefaults, exec_show_docs, insert_warning
        nb = read_nb(path)
        nb.path_ = str(path)
        procs = [make_render_show_docs(self.lib) if p is exec_show_docs else p
                 for p in FilterDefaults().procs()]
        NBProcessor(path, procs, nb=nb, rm_directives=True).process()
        doc = self.docs[path]
        fm = getattr(nb, 'frontmatter_', {}) or {}
        title = fm.get('title') or doc
        self.titles[doc] = title
        cells = []
        head = f'# {title}\n'
        if fm.get('description'): head += f'\n{{.lead}}\n{fm["description"]}\n'
        cells.append(dict(cell_type='markdown', metadata={}, source=head))
        for cell in nb.cells:
            c = nb2dict(cell)
            src = ''.join(c.get('source', []))
            if c['cell_type'] == 'raw' and src.lstrip().startswith('---'): continue   # front matter: now the title
            if c['cell_type'] == 'markdown' and src.strip() == insert_warning.content: continue
            meta = dict(c.get('metadata', {}))
            if c['cell_type'] == 'code' and 'showdoc_names' in meta:
                names = meta.pop('showdoc_names')
                parts = [self.showdoc_md(''.join(o['data']['text/markdown']), n, doc)
                         for o, n in zip(c.get('outputs', []), names)]
                if not parts: continue
                cells.append(dict(cell_type='markdown', metadata={}, source=self.linkify('\n\n'.join(parts))))
                continue
            if c['cell_type'] == 'markdown':
                cells.append(dict(cell_type='markdown', metadata=meta, source=self.linkify(src)))
                continue
            if c['cell_type'] == 'code':
                c = self.code_cell(c, src, meta)
                if c: cells.append(c)
                continue
            cells.append(c)
        if doc == 'index':
            names = self.nav_titles(nb)
            chapters = [f'{names[p]} <{d}>' if p in names else d for p, d in self.docs.items() if d != 'index']
            toc = '```{toctree}\n:hidden:\n:caption: Chapters\n\n' + '\n'.join(chapters) + '\n```\n\n'
            toc += '```{toctree}\n:hidden:\n:caption: Reference\n\napi/index\n```\n'
            cells.append(dict(cell_type='markdown', metadata={}, source=toc))
        for i, c in enumerate(cells): c['id'] = f'c{i}'
        md = dict(nb2dict(nb.metadata))
        md.pop('widgets', None)   # widget state needs the ipywidgets JavaScript from a CDN
        md.setdefault('kernelspec', {'display_name': 'Python 3', 'language': 'python', 'name': 'python3'})
        md.setdefault('language_info', {'name': 'python', 'pygments_lexer': 'ipython3'})
        return dict(nbformat=4, nbformat_minor=5, metadata=md, cells=cells)

    def nav_titles(self, index_nb) -> dict:
        "Sidebar titles as the front page names the chapters (`[01 Patterns](01_patterns.ipynb)`), else number + title."
        named = {}
        for cell in index_nb.cells:
            if cell.cell_type != 'markdown': continue
            for text, target in re.findall(r'\[(\d+ [^\]]+)\]\(([\w.-]+\.ipynb)\)', cell.source):
                named.setdefault(target, text)
        out = {}
        for p in self.paths:
            if p.stem == 'index': continue
            num = re.match(r'^(\d+)_', p.name)
            out[p] = named.get(p.name) or (f'{num.group(1)} {self._title(p)}' if num else None)
        return {p: t for p, t in out.items() if t}

    @staticmethod
    def _title(p: Path) -> str:
        "The notebook's `# Title`, read without processing it."
        for cell in json.loads(p.read_text(encoding='utf-8'))['cells']:
            m = re.search(r'^# (.+)$', ''.join(cell['source']), re.MULTILINE) if cell['cell_type'] == 'markdown' else None
            if m: return m.group(1).replace('`', '').strip()
        return docname(p)

    def code_cell(self, c, src, meta):
        "Turn the Quarto cell options nbdev leaves in a cell into myst-nb tags, and drop them from the code."
        lines, opts = src.splitlines(), {}
        while lines and _re_dir_line.match(lines[0]):
            k, v = _re_dir_line.match(lines.pop(0)).groups()
            opts[k] = v.strip().strip('"\'')
        lines = [l for l in lines if not re.match(r'^\s*#\|', l)]
        tags = list(meta.get('tags', []))
        if opts.get('include', '').lower() == 'false': return None
        if opts.get('echo', '').lower() == 'false': tags.append('remove-input')
        if opts.get('output', '').lower() == 'false': tags.append('remove-output')
        # code-fold: show (nbdev's `#| exports`) is code the chapter teaches, shown open; only code-fold: true starts folded
        if opts.get('code-fold', '').lower() == 'true': tags.append('hide-input')
        if (meta.pop('jupyter', None) or {}).get('outputs_hidden'): tags.append('hide-output')   # collapsed in Jupyter too
        if opts.get('fig-cap'):
            fig = {'caption': opts['fig-cap']}
            if opts.get('label'): fig['name'] = opts['label']
            meta['mystnb'] = {'figure': fig}
        if tags: meta['tags'] = sorted(set(tags))
        meta.pop('language', None)
        c = dict(c, metadata=meta, source='\n'.join(lines).strip('\n'))
        if not c['source'] and not c.get('outputs'): return None
        c.setdefault('outputs', []); c.setdefault('execution_count', None)
        return c

    # --- API pages ---
    def api_pages(self) -> dict[str, str]:
        pages = {}
        short = lambda mod: mod[len(self.lib) + 1:] if mod != self.lib else self.lib
        idx = ['# API reference', '',
               f'Everything `{self.lib}` exports, module by module. Each entry links to the chapter that derives it '
               'and to its source.', '']
        for mod, names in self.api.items():
            m = importlib.import_module(mod)
            idx += [f'## {short(mod)}', '', f'Module {{py:mod}}`{mod}`.', '', '| Name | Summary |', '| --- | --- |']
            rows, pagelist = [], []
            for n in names:
                page = f'api/{short(mod)}.{n}'
                obj = getattr(m, n, None)
                if self._documented(m, n): summary = (inspect.getdoc(obj) or '').strip().split('\n')[0]
                else:
                    v = self._short_value(obj)
                    summary = f'constant `{v}`' if v and len(v) <= 60 else f'constant, a `{type(obj).__name__}`'
                summary = summary.replace('|', '\\|')
                rows.append(f'| {{py:obj}}`{n} <{mod}.{n}>` | {summary} |')
                pagelist.append(page.split('/', 1)[1])
                pages[page] = self.symbol_page(mod, m, n)
            idx += rows + ['']
            mod_chapters = sorted({self.exports[k] for k in self.exports if k[0] == mod}, key=self._order)
            modpage = [f'# `{short(mod)}`', '', f'Module `{mod}`.', '', '```{eval-rst}', f'.. automodule:: {mod}',
                       '   :no-members:', '```', '']
            if mod_chapters:
                modpage += ['Derived in ' + ', '.join(f'{{doc}}`/{d}`' for d in mod_chapters) + '.', '']
            modpage += ['| Name | Summary |', '| --- | --- |'] + rows + ['']
            pages[f'api/{short(mod)}'] = '\n'.join(modpage)
        idx += ['```{toctree}', ':hidden:', ''] + [short(m) for m in self.api] + ['```', '']
        pages['api/index'] = '\n'.join(idx)
        return pages

    def _order(self, doc):
        return list(self.docs.values()).index(doc) if doc in self.docs.values() else 1e9

    @staticmethod
    def _short_value(obj):
        if isinstance(obj, (bool, int, float, str, bytes, tuple, list, dict, frozenset, set, type(None))):
            r = repr(obj)
            if len(r) <= 200 and ' at 0x' not in r and '\n' not in r: return r
        return None

    @staticmethod
    def _documented(m, n):
        obj = getattr(m, n, None)
        return inspect.isclass(obj) or inspect.isroutine(obj)

    def symbol_page(self, mod, m, n) -> str:
        obj, full = getattr(m, n, None), f'{mod}.{n}'
        # `orphan`: symbol pages stay out of the sidebar, which Sphinx renders whole into every page
        page = ['```{eval-rst}', f'.. currentmodule:: {mod}', '']
        if inspect.isclass(obj): page += [f'.. autoclass:: {n}', '   :members:', '   :undoc-members:']
        elif inspect.isroutine(obj): page += [f'.. autofunction:: {n}']
        else:   # a constant: its type, and its value when that is short and has no memory address in it
            t = type(obj)
            page += [f'.. py:data:: {n}', f'   :type: {t.__qualname__ if t.__module__ == "builtins" else t.__module__ + "." + t.__qualname__}']
            v = self._short_value(obj)
            if v is not None: page += [f'   :value: {v}']
        page += ['```', '']
        where = []
        target = full if full in self.labels else fullname(obj) if fullname(obj) in self.labels else None
        if target:
            where.append(f'Derived in {{doc}}`/{self.label_doc[target]}`, '
                         f'{{ref}}`where it is introduced <{self.labels[target]}>`.')
        else:
            docs = [d for (mm, nn), d in self.exports.items() if mm == mod and nn == n]
            if docs: where.append(f'Derived in {{doc}}`/{docs[0]}`.')
        src = mod.replace('.', '/') + '.py'
        if self._has_source_page(mod):
            where.append(f'Source: <a class="reference internal" href="../_modules/{mod.replace(".", "/")}.html'
                         f'{"#" + n if inspect.isfunction(obj) or inspect.isclass(obj) else ""}">{src}</a>')
        head = ['---', 'orphan: true', '---', '', f'# `{n}`', '', ' '.join(where), '']
        return '\n'.join(head + page)

    def _has_source_page(self, mod):
        "viewcode writes a module's source page when at least one of its documented objects is a def or class."
        m = importlib.import_module(mod)
        return any((inspect.isfunction(getattr(m, n, None)) or inspect.isclass(getattr(m, n, None)))
                   and getattr(getattr(m, n), '__module__', None) == mod for n in self.api.get(mod, []))


def _write(path: Path, text: str, written: set):
    written.add(path.resolve())
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding='utf-8') != text: path.write_text(text, encoding='utf-8')


def prepare(site: Site, quiet=False) -> set:
    "Write the processed notebooks and the API pages into docs/_src."
    written = set()
    for p in site.paths:
        site.exports.update({k: site.docs[p] for k in scan_exports(p, site.lib) if k not in site.exports})
    for p in site.paths:
        t = time.time()
        nb = site.process(p)
        _write(SRC/f'{site.docs[p]}.ipynb', json.dumps(nb, indent=1, ensure_ascii=False) + '\n', written)
        if not quiet: print(f'  processed {p.name} -> {site.docs[p]}.html ({time.time() - t:.1f}s)')
    for page, text in site.api_pages().items(): _write(SRC/f'{page}.md', text, written)
    for f in site.nbs.rglob('*'):   # images and other assets the notebooks link to
        rel = f.relative_to(site.nbs)
        if f.is_file() and f.suffix.lower() in ASSETS and not any(s.startswith(('.', '_')) for s in rel.parts):
            dst = SRC/rel
            written.add(dst.resolve())
            if not dst.exists() or dst.read_bytes() != f.read_bytes():
                dst.parent.mkdir(parents=True, exist_ok=True); shutil.copy2(f, dst)
    return written


def build(strict=False, clean=False, quiet=False) -> int:
    t0 = time.time()
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault('MPLBACKEND', 'Agg')
    if clean:
        for d in (SRC, BUILD): shutil.rmtree(d, ignore_errors=True)
    site = Site()
    site.collect_api()
    written = prepare(site, quiet)
    stale = [f for f in SRC.rglob('*') if f.is_file() and f.resolve() not in written]
    for f in stale: f.unlink()
    if stale: shutil.rmtree(BUILD, ignore_errors=True)   # pages went away: rebuild from scratch
    t1 = time.time()
    from sphinx.cmd.build import build_main
    args = ['-b', 'html', '-N', '-c', str(DOCS), '-d', str(BUILD/'doctrees'), str(SRC), str(BUILD/'html')]
    if quiet: args.append('-q')
    if strict: args += ['-W', '--keep-going']
    rc = build_main(args)
    if rc: return rc
    if strict and WARNINGS: return 1
    shutil.rmtree(SITE, ignore_errors=True)
    shutil.copytree(BUILD/'html', SITE)
    for p, doc in site.docs.items():   # the download button offers the course notebook itself, every cell of it
        shutil.copy2(p, SITE/'_sources'/f'{doc}.ipynb')
    n = sum(1 for _ in SITE.rglob('*.html'))
    print(f'site: {SITE} ({n} HTML pages, {len(site.paths)} notebooks, '
          f'{sum(len(v) for v in site.api.values())} API entries); '
          f'processing {t1 - t0:.1f}s, Sphinx {time.time() - t1:.1f}s, total {time.time() - t0:.1f}s')
    return 0


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--strict', action='store_true', help='treat Sphinx warnings as errors')
    ap.add_argument('--clean', action='store_true', help='rebuild from scratch')
    ap.add_argument('-q', '--quiet', action='store_true')
    a = ap.parse_args()
    sys.exit(build(a.strict, a.clean, a.quiet))
