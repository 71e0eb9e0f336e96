"""Sphinx configuration for the documentation site. Build with `python docs/build.py`, which writes the sources
this reads (docs/_src: the notebooks after nbdev's processing, and the API pages) and copies the result to _site/."""
import configparser, importlib.util
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
]
# MathJax served from the site itself, so pages need no network
if importlib.util.find_spec('sphinx-mathjax-offline'): extensions.append('sphinx-mathjax-offline')

# The notebooks are never executed here: their committed outputs are what the site shows.
nb_execution_mode = 'off'
nb_merge_streams = True
myst_enable_extensions = ['dollarmath', 'amsmath', 'colon_fence', 'attrs_block', 'attrs_inline', 'html_image']
myst_dmath_double_inline = True
myst_heading_anchors = 3

autodoc_member_order = 'bysource'
autodoc_typehints = 'signature'
autodoc_preserve_defaults = True
add_module_names = False
default_role = 'literal'            # nbdev docstrings use `backticks` for code
suppress_warnings = ['myst.header']  # show_doc headings are h3 wherever they fall, as on an nbdev site

html_theme = 'sphinx_book_theme'
html_title = project
html_static_path = ['_static']
html_css_files = ['site.css']
html_favicon = '_static/favicon.svg'
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None
html_theme_options = {
    'repository_url': _s.get('git_url', ''),
    'repository_branch': _s.get('branch', 'main'),
    'use_repository_button': bool(_s.get('git_url')),
    'home_page_in_toc': True,
    'show_toc_level': 2,
    'navigation_with_keys': False,
}
html_context = {'default_mode': 'light'}
