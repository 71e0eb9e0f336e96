"""Sphinx configuration for the documentation site. Build with `python docs/build.py`, which writes the sources
this reads (docs/_src: the notebooks after nbdev's processing, and the API pages) and copies the result to _site/."""
import configparser
from pathlib import Path

_root = Path(__file__).resolve().parent.parent
_cfg = configparser.ConfigParser(delimiters=['='])
_cfg.read(_root/'settings.ini', encoding='utf-8')
_s = _cfg['DEFAULT']

project = _s['title']
author = _s['author']
copyright = _s['copyright']
release = version = _s['version']

extensions = [
    'myst_nb',                 # notebooks and Markdown (MyST)
    'sphinx.ext.autodoc',      # the API pages
    'sphinx.ext.viewcode',     # highlighted module source, linked from every API entry
    'sphinx.ext.mathjax',
    'sphinx.ext.githubpages',  # .nojekyll
    'sphinx-mathjax-offline',  # MathJax served from the site itself, so pages need no network
]

# The notebooks are never executed here: their committed outputs are what the site shows.
nb_execution_mode = 'off'
nb_merge_streams = True
# Widgets (a tqdm.auto bar, say) would need JavaScript from a CDN: show their text form, load nothing.
nb_ipywidgets_js = {}
nb_mime_priority_overrides = [('html', 'application/vnd.jupyter.widget-view+json', None),
                              ('html', 'application/vnd.jupyter.widget-state+json', None)]
myst_enable_extensions = ['dollarmath', 'amsmath', 'colon_fence', 'attrs_block', 'attrs_inline', 'html_image']
myst_dmath_double_inline = True
myst_heading_anchors = 3

autodoc_member_order = 'bysource'
autodoc_typehints = 'signature'
autodoc_inherit_docstrings = False   # a method shows its own docstring, not its base class's (torch's, say)
add_module_names = False
default_role = 'literal'            # single `backticks` in any remaining reST are code
suppress_warnings = ['myst.header']  # show_doc headings are h3 wherever they fall, as on an nbdev site

html_theme = 'sphinx_book_theme'
html_title = project
html_static_path = ['_static']
html_css_files = ['site.css']
html_js_files = [('search-snippets.js', {'defer': 'defer'})]
html_favicon = '_static/favicon.svg'
# Each page's download button offers its source; build.py puts the course notebook itself there (all its cells,
# as in nbs/), so a reader downloads what runs. No suffix: `_sources/patterns.ipynb`, not `patterns.ipynb.txt`.
html_copy_source = True
html_sourcelink_suffix = ''
html_show_sourcelink = False
html_last_updated_fmt = None
html_theme_options = {
    'repository_url': _s.get('git_url', ''),
    'repository_branch': _s.get('branch', 'main'),
    'use_repository_button': bool(_s.get('git_url')),
    'home_page_in_toc': True,
    'show_toc_level': 2,
    'navigation_with_keys': False,
    'navbar_persistent': [],       # one search field, in the sidebar
}
html_context = {'default_mode': 'light'}


# nbdev docstrings are Markdown (`code`, $math$, [links](url), *emphasis*); autodoc reads reStructuredText.
# Convert the inline Markdown, and escape everything else, so a docstring shows as its author wrote it.
import re as _re

_md_inline = _re.compile(r'(?P<code>`+)(?P<c>.+?)(?P=code)|\$(?P<m>[^$\n]+?)\$|\[(?P<lt>[^\]]+)\]\((?P<lu>[^)\s]+)\)'
                         r'|\*\*(?P<b>\S.*?\S|\S)\*\*|(?<![\w*])[*_](?P<i>\S.*?\S|\S)[*_](?![\w*])')


def _rst_escape(s): return _re.sub(r'([\\*_`|])', r'\\\1', s)


def _md_line_to_rst(line):
    out, pos = [], 0
    for m in _md_inline.finditer(line):
        out.append(_rst_escape(line[pos:m.start()])); pos = m.end()
        if m['code']: r = f"``{m['c'].strip()}``" if m['c'].strip() else _rst_escape(m[0])
        elif m['m']: r = f":math:`{m['m']}`"
        elif m['lt']: r = f"`{_rst_escape(m['lt'])} <{m['lu']}>`__"
        elif m['b']: r = f"**{_rst_escape(m['b'])}**"
        else: r = f"*{_rst_escape(m['i'])}*"
        out.append(f'\\ {r}\\ ')
    out.append(_rst_escape(line[pos:]))
    return ''.join(out)


def _md_docstring(app, what, name, obj, options, lines):
    res, fence = [], None
    for line in lines:
        if line.lstrip().startswith('```'):
            if fence is None:
                fence = line[:len(line) - len(line.lstrip())]
                res += [f'{fence}.. code-block:: {line.strip()[3:].strip() or "python"}', '']
            else: fence = None; res.append('')
            continue
        if fence is not None: res.append(f'{fence}   {line[len(fence):]}' if line.strip() else ''); continue
        res.append(line if line.lstrip().startswith('>>>') else _md_line_to_rst(line))
    lines[:] = res


import sys as _sys
_sys.path.insert(0, str(Path(__file__).resolve().parent))
import apidoc as _apidoc   # the same signatures and parameter tables as the chapters' entries


def _params_docstring(app, what, name, obj, options, lines):
    "Append the docments comments of a function's or class's parameters as a reST field list."
    if what not in ('function', 'class', 'method') or not callable(obj): return
    rows, ret = _apidoc.param_docs(obj)
    if not rows and not ret: return
    if lines and lines[-1].strip(): lines.append('')
    lines += [f':param {n.lstrip("*")}: {_md_line_to_rst(d)}' for n, _, _, d in rows if d]
    if ret: lines.append(f':returns: {_md_line_to_rst(ret)}')


def _signature(app, what, name, obj, options, signature, return_annotation):
    "No `(*args, **kwargs)` for a class that only inherits a catch-all constructor (an autograd Function)."
    if what == 'class' and signature is not None and _apidoc.catch_all(obj): return '', None
    return None


def _apply_docstring(app, what, name, obj, options, lines):
    "An autograd Function is called through `apply`: say with which arguments."
    if what == 'class' and _apidoc._is_autograd_function(obj):
        call = _apidoc.signature_text(obj, name.rsplit('.', 1)[-1]).split('\n', 1)[-1]
        lines += ['', 'Called as:', '', '.. code-block:: python', '', *('   ' + l for l in call.splitlines()), '']


def setup(app):
    app.connect('autodoc-process-docstring', _md_docstring)
    app.connect('autodoc-process-docstring', _params_docstring)
    app.connect('autodoc-process-docstring', _apply_docstring)
    app.connect('autodoc-process-signature', _signature)
