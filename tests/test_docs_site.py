"""The documentation site, checked in a real browser.

Builds the site with `python docs/build.py`, serves _site/ on 127.0.0.1 from a thread, and drives Debian's headless
Chromium (selenium + /usr/bin/chromedriver) through it. Without Chromium the tests skip, except under CI=true,
where they fail. Screenshots of the front page and of the first chapter go to test-artifacts/."""
import importlib, importlib.util, inspect, os, re, subprocess, sys, threading, time
from functools import partial
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import urldefrag, urljoin, urlparse, unquote
from urllib.request import urlopen

import pytest

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT/'_site'
ART = ROOT/'test-artifacts'
CHROMIUM, CHROMEDRIVER = '/usr/bin/chromium', '/usr/bin/chromedriver'
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         '--disable-dev-shm-usage', '--window-size=1280,1600']


def _load_builder():
    spec = importlib.util.spec_from_file_location('docs_build', ROOT/'docs'/'build.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod

build = _load_builder()


def _browser_missing():
    if importlib.util.find_spec('selenium') is None: return 'selenium is not installed (pip install selenium)'
    for p in (CHROMIUM, CHROMEDRIVER):
        if not Path(p).exists(): return f'{p} not found (apt-get install -y chromium chromium-driver)'
    return None


def _need_browser():
    why = _browser_missing()
    if why is None: return
    if os.environ.get('CI', '').lower() == 'true': pytest.fail(f'CI needs the browser test: {why}')
    pytest.skip(why)


# ------------------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope='session')
def site():
    "A fresh build of the site, and how long it took (STE_DOCS_PREBUILT=1: use the _site/ just built instead)."
    if os.environ.get('STE_DOCS_PREBUILT') == '1' and (SITE/'index.html').exists():
        return dict(seconds=None, log=None)
    t = time.time()
    r = subprocess.run([sys.executable, 'docs/build.py', '-q'], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, 'MPLBACKEND': 'Agg'})
    took = time.time() - t
    assert r.returncode == 0, f'docs build failed:\n{r.stdout[-6000:]}\n{r.stderr[-6000:]}'
    assert (SITE/'index.html').exists()
    print(f'\ndocs build: {took:.1f}s')
    return dict(seconds=took, log=r.stdout + r.stderr)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *a): pass


@pytest.fixture(scope='session')
def server(site):
    httpd = ThreadingHTTPServer(('127.0.0.1', 0), partial(_Quiet, directory=str(SITE)))
    th = threading.Thread(target=httpd.serve_forever, daemon=True)
    th.start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}/'
    httpd.shutdown(); httpd.server_close()


@pytest.fixture(scope='session')
def driver(server, tmp_path_factory):
    _need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for f in FLAGS + [f'--user-data-dir={tmp_path_factory.mktemp("chromium-profile")}']: opts.add_argument(f)
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(60)
    yield d
    d.quit()


@pytest.fixture(scope='session')
def book():
    "The chapters in reading order (docname, title) and the package's API, as the builder sees them."
    s = build.Site(); s.collect_api()
    return dict(docs=list(s.docs.values()), api=s.api, lib=s.lib)


# ------------------------------------------------------------------------------------------------ helpers

def _open(driver, url):
    driver.get_log('browser')   # drop what earlier pages logged
    driver.get(url)
    for _ in range(300):
        if driver.execute_script('return document.readyState') == 'complete' and \
                driver.find_elements('css selector', 'article'): break
        time.sleep(0.1)


def _severe(driver):
    return [e for e in driver.get_log('browser') if e.get('level') == 'SEVERE']


def _images_loaded(driver):
    "Scroll every <img> into view (so lazy ones load), wait, and list those that did not load."
    n = driver.execute_script('return document.images.length')
    for i in range(n):
        driver.execute_script('document.images[arguments[0]].scrollIntoView()', i)
    deadline = time.time() + 15
    while True:
        bad = driver.execute_script(
            'return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)')
        if not bad or time.time() > deadline: return n, bad
        time.sleep(0.2)


def _wait_math(driver, timeout=20):
    "Wait until MathJax has typeset the page (if it has math); return the number of rendered formulas."
    deadline = time.time() + timeout
    while True:
        math = driver.execute_script("return document.querySelectorAll('.math').length")
        done = driver.execute_script("return document.querySelectorAll('mjx-container').length")
        if not math or done >= 1 and done >= math * 0.9 or time.time() > deadline: return math, done
        time.sleep(0.2)


_re_directive = re.compile(r'(^|\n)\s*#\|')
_re_frontmatter = re.compile(r'(^|\n)(---|\s*(title|description|output-file)\s*:\s.*)\s*(\n|$)')


# ------------------------------------------------------------------------------------------------ the tests

def test_build_is_quick(site):
    if site['seconds'] is None: pytest.skip('STE_DOCS_PREBUILT=1: the site was not built here')
    assert site['seconds'] < 120, f"docs build took {site['seconds']:.0f}s"


def test_chapter_pages_in_browser(driver, server, book):
    "Each chapter loads without console errors, shows all its images and math, and leaks no nbdev/Quarto syntax."
    problems = []
    for doc in book['docs']:
        _open(driver, server + f'{doc}.html')
        n_img, bad_img = _images_loaded(driver)
        math, typeset = _wait_math(driver)
        if not driver.find_elements('tag name', 'article'):
            problems.append(f'{doc}: page has no <article> (title {driver.title!r})'); continue
        text = driver.find_element('tag name', 'article').text
        errs = _severe(driver)
        outside = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name).filter(u => !u.startsWith(arguments[0]))",
            server)
        if outside: problems.append(f'{doc}: requests leave the site: {outside[:5]}')
        if errs: problems.append(f'{doc}: console errors {errs}')
        if bad_img: problems.append(f'{doc}: images that did not load {bad_img}')
        if math and not typeset: problems.append(f'{doc}: {math} formulas, none typeset by MathJax')
        if _re_directive.search(text): problems.append(f'{doc}: raw nbdev directive visible: '
                                                       f'{_re_directive.search(text).group(0)!r}')
        m = _re_frontmatter.search(text)
        if m: problems.append(f'{doc}: front matter visible: {m.group(0).strip()!r}')
        if not driver.find_elements('css selector', 'article h1'): problems.append(f'{doc}: no title')
        if doc != 'index' and driver.find_elements('css selector', 'div.cell div.highlight') and not \
                driver.find_elements('css selector', 'div.cell div.highlight span.k, div.cell div.highlight span.n'):
            problems.append(f'{doc}: code is not highlighted')
    assert not problems, '\n'.join(problems)


def test_navigation_lists_chapters_in_order(driver, server, book):
    _open(driver, server + 'index.html')
    hrefs = driver.execute_script(
        "return Array.from(document.querySelectorAll('nav.bd-docs-nav a.reference.internal')).map(a => a.href)")
    pages = [urlparse(h).path.lstrip('/') for h in hrefs]
    chapters = [d for d in book['docs'] if d != 'index']
    listed = [p[:-len('.html')] for p in pages if p[:-len('.html')] in chapters]
    assert listed == chapters, f'navigation lists {listed}, expected {chapters}'
    titles = driver.execute_script(
        "return Array.from(document.querySelectorAll('nav.bd-docs-nav a.reference.internal')).map(a => a.textContent.trim())")
    numbered = {p: t for p, t in zip(pages, titles) if p[:-len('.html')] in chapters}
    files = {build.docname(p): p.name for p in build.Site().paths}
    wrong = {p: t for p, t in numbered.items() if re.match(r'^\d+_', files[p[:-len('.html')]])
             and not t.startswith(files[p[:-len('.html')]].split('_')[0] + ' ')}
    assert not wrong, f'sidebar titles without their chapter number: {wrong}'
    assert 'index.html' in pages or '' in pages, 'the front page is not in the navigation'
    assert 'api/index.html' in pages, 'the API reference is not in the navigation'


def test_screenshots(driver, server, book):
    ART.mkdir(exist_ok=True)
    chapter = next((d for d in book['docs'] if d != 'index'), 'index')
    for name, page in [('front_page', 'index'), (f'chapter_{chapter}', chapter)]:
        _open(driver, server + f'{page}.html')
        _wait_math(driver)
        out = ART/f'docs_{name}.png'
        driver.save_screenshot(str(out))
        assert out.stat().st_size > 10_000, f'{out} looks empty'


def _search_name(book):
    "A function from the kernels module if there is one, else token_mask (or another function) from patterns."
    lib = book['lib']
    for mod, prefer in ((f'{lib}.kernels', None), (f'{lib}.patterns', 'token_mask')):
        names = book['api'].get(mod, [])
        m = importlib.import_module(mod) if names else None
        funcs = [n for n in names if inspect.isfunction(getattr(m, n, None))]
        if funcs: return mod, prefer if prefer in funcs else funcs[0]
    pytest.fail('no kernels or patterns function to search for')


def test_search_finds_an_exported_function(driver, server, book):
    from selenium.webdriver.support.ui import WebDriverWait
    mod, name = _search_name(book)
    page = f'api/{mod[len(book["lib"]) + 1:]}.{name}.html'
    _open(driver, server + f'search.html?q={name}')
    WebDriverWait(driver, 30).until(
        lambda d: d.find_elements('css selector', '#search-results ul.search li')
        or 'did not match' in d.find_element('id', 'search-results').text)
    hrefs = driver.execute_script(
        "return Array.from(document.querySelectorAll('#search-results ul.search li a')).map(a => a.href)")
    paths = [urlparse(h).path.lstrip('/') for h in hrefs]
    assert page in paths, f'searching for {name!r} did not find {page}; found {paths}'
    assert not _severe(driver)


def test_search_results_quote_the_pages(driver, server):
    "Text results carry a snippet from the page's article that contains the term, not the sidebar's contents."
    from selenium.webdriver.support.ui import WebDriverWait
    _open(driver, server + 'search.html?q=softmax')
    WebDriverWait(driver, 30).until(lambda d: len(d.find_elements('css selector', '#search-results li p.context')) >= 3)
    snippets = driver.execute_script(
        "return Array.from(document.querySelectorAll('#search-results li p.context')).map(p => p.textContent)")
    assert all('softmax' in s.lower() for s in snippets[:5]), snippets[:5]
    assert not any(re.search(r'\bContents\b|Light Dark', s) for s in snippets), snippets
    assert not _severe(driver)


def test_download_button_gives_the_notebook(server, book):
    "Each chapter's download button links to the course notebook itself, with every cell of the one in nbs/."
    import json
    for p, doc in build.Site().docs.items():
        html = (SITE/f'{doc}.html').read_text(encoding='utf-8')
        m = re.search(r'href="([^"]+)"[^>]*\n?[^>]*btn-download-source-button', html)
        assert m and m.group(1) == f'_sources/{doc}.ipynb', f'{doc}: download button links to {m and m.group(1)!r}'
        with urlopen(server + m.group(1), timeout=30) as r: got = json.loads(r.read())
        assert len(got['cells']) == len(json.loads(p.read_text(encoding='utf-8'))['cells']), doc


def test_entries_show_signatures_as_written(site):
    "No annotation inferred from a default, no catch-all `(*args, **kwargs)`, no docstring inherited from a base."
    bad = {r'NoneType': 'an annotation inferred from a default of None', r'Call self as a function': 'a foreign docstring',
           r'(class|def|exception) \w+\(\s*\*args, \*\*kwargs\s*\)': 'a catch-all constructor signature'}
    problems = [f'{f.name}: {why}' for f in sorted(SITE.glob('*.html')) + sorted((SITE/'api').glob('*.html'))
                for needle, why in bad.items() if re.search(needle, re.sub(r'<[^>]+>', '', f.read_text(encoding='utf-8')))]
    assert not problems, '\n'.join(problems[:40])


# --- links, crawled without the browser

class _Links(HTMLParser):
    def __init__(self):
        super().__init__(); self.links, self.ids = [], set()
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for k in ('id', 'name'):
            if a.get(k): self.ids.add(a[k])
        for k in ('href', 'src'):
            if a.get(k) and not (tag == 'link' and a.get('rel') in ('preconnect', 'dns-prefetch')): self.links.append(a[k])


def _crawl(server):
    "Every page and file reachable from the front page: {url: (status, parsed page or None)}, and link sources."
    seen, todo, refs = {}, [server + 'index.html'], {}
    while todo:
        url = todo.pop()
        if url in seen: continue
        try:
            with urlopen(url, timeout=30) as r: status, body, ctype = r.status, r.read(), r.headers.get_content_type()
        except HTTPError as e: seen[url] = (e.code, None); continue
        page = None
        if ctype == 'text/html':
            page = _Links(); page.feed(body.decode('utf-8', 'replace'))
            for l in page.links:
                target = urljoin(url, l)
                if urlparse(target).netloc != urlparse(server).netloc or not target.startswith('http'): continue
                refs.setdefault(target, set()).add(url)
                base = urldefrag(target)[0]
                if base not in seen: todo.append(base)
        seen[url] = (status, page)
    return seen, refs


def test_every_internal_link_resolves(server, site):
    seen, refs = _crawl(server)
    bad = []
    for target, sources in refs.items():
        base, frag = urldefrag(target)
        status, page = seen.get(base, (None, None))
        if status != 200: bad.append(f'{target} -> {status} (from {sorted(sources)[:3]})'); continue
        if frag and page is not None and unquote(frag) not in page.ids:
            bad.append(f'{target}: no anchor #{frag} (from {sorted(sources)[:3]})')
    pages = [u for u, (s, p) in seen.items() if p is not None]
    print(f'\ncrawled {len(pages)} pages, {len(seen)} files, {len(refs)} link targets')
    assert not bad, f'{len(bad)} broken links:\n' + '\n'.join(sorted(bad)[:60])
    # every HTML file the build wrote is reachable from the front page
    built = {f.relative_to(SITE).as_posix() for f in SITE.rglob('*.html') if not f.relative_to(SITE).parts[0] == '_static'}
    reached = {urlparse(u).path.lstrip('/') for u in pages}
    unlinked = built - reached - {'genindex.html', 'py-modindex.html', 'search.html', '_modules/index.html'}
    assert not unlinked, f'pages nothing links to: {sorted(unlinked)}'


def test_api_pages_link_to_chapter_and_source(server, book, site):
    "Every exported name has an API page that links to its source and to a chapter; chapters link to the API."
    lib, problems = book['lib'], []
    chapter_pages = {f'{d}.html' for d in book['docs']}
    for mod, names in book['api'].items():
        m = importlib.import_module(mod)
        short = mod[len(lib) + 1:] if mod != lib else lib
        for n in names:
            f = SITE/'api'/f'{short}.{n}.html'
            if not f.exists(): problems.append(f'{mod}.{n}: no API page'); continue
            p = _Links(); p.feed(f.read_text(encoding='utf-8'))
            local = [urljoin('api/', l) for l in p.links]
            obj = getattr(m, n, None)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and not any('_modules/' in l for l in local):
                problems.append(f'{mod}.{n}: no link to its source')
            if not any(urldefrag(l)[0] in chapter_pages - {'index.html'} for l in local):
                problems.append(f'{mod}.{n}: no link to a chapter')
            elif (inspect.isfunction(obj) or inspect.isclass(obj)) and not any('#chapter-' in l for l in local):
                problems.append(f'{mod}.{n}: no link to its show_doc entry in a chapter')
    for d in book['docs']:
        if d == 'index': continue
        p = _Links(); p.feed((SITE/f'{d}.html').read_text(encoding='utf-8'))
        html = (SITE/f'{d}.html').read_text(encoding='utf-8')
        exports = 'chapter-' in html   # it has show_doc entries
        if exports and not any(l.startswith('api/') and not l.startswith('api/index') for l in p.links):
            problems.append(f'{d}: documents exported names but links to no API page')
    assert not problems, '\n'.join(problems)


def test_build_has_no_warnings(site):
    "A warning means something renders wrong (an unresolved link, a module that does not import, a missing image)."
    if site['log'] is None: pytest.skip('STE_DOCS_PREBUILT=1: the site was not built here')
    warnings = [l for l in site['log'].splitlines() if 'WARNING' in l]
    assert not warnings, f'{len(warnings)} warnings from `python docs/build.py`:\n' + '\n'.join(warnings[:40])


# --- nbdev's processing, on a notebook made here

def _cell(kind, src, outputs=None):
    c = dict(cell_type=kind, metadata={}, source=src)
    if kind == 'code': c.update(outputs=outputs or [], execution_count=None)
    return c

def _stream(text): return [dict(output_type='stream', name='stdout', text=[text])]


def test_processing_honours_directives(tmp_path):
    "hide, echo: false, export and exports behave as on an nbdev site; show_doc entries come without running cells."
    import json
    lib = build.settings()['lib_path']
    nb = dict(nbformat=4, nbformat_minor=5, metadata={'kernelspec': {'language': 'python', 'name': 'python3',
                                                                      'display_name': 'python3'}}, cells=[
        _cell('markdown', '# A made-up chapter\n\n> Its one-line description.'),
        _cell('code', '#| default_exp patterns'),
        _cell('code', '#| hide\nsecret_setup = 1', _stream('HIDDEN-OUTPUT\n')),
        _cell('markdown', 'Math: $a^2 + b^2$ and `token_mask`.'),
        _cell('code', '#| export\ndef token_mask(x):\n    "EXPORTED-DOC"\n    return "EXPORTED-BODY"'),
        _cell('code', '#| echo: false\nprint("ECHO-SOURCE")', _stream('ECHO-OUTPUT\n')),
        _cell('code', '#| exports\ndef shown_export(y):\n    "SHOWN-DOC"\n    return y'),
        _cell('code', 'raise RuntimeError("this notebook must not run")', _stream('COMMITTED-OUTPUT\n')),
        dict(_cell('code', 'print("LONG-LOG")', _stream('COLLAPSED-OUTPUT\n')), metadata={'jupyter': {'outputs_hidden': True}}),
        _cell('code', '#| hide\nimport nbdev; nbdev.nbdev_export()'),
    ])
    p = tmp_path/'42_madeup.ipynb'
    p.write_text(json.dumps(nb))
    s = build.Site(); s.collect_api()
    s.docs[p] = build.docname(p)
    out = s.process(p)
    md = '\n'.join(c['source'] for c in out['cells'] if c['cell_type'] == 'markdown')
    code = [c for c in out['cells'] if c['cell_type'] == 'code']
    src = '\n'.join(c['source'] for c in code)
    outs = json.dumps([c['outputs'] for c in code])
    assert s.docs[p] == 'madeup' and md.startswith('# A made-up chapter') and 'Its one-line description.' in md
    assert 'secret_setup' not in src and 'HIDDEN-OUTPUT' not in outs            # hide
    assert 'EXPORTED-BODY' not in src                                          # export: code hidden ...
    real_doc = build.importlib.import_module(f'{lib}.patterns').token_mask.__doc__
    assert '### token_mask' in md and real_doc in md                            # ... show_doc from the package
    assert '{py:obj}`token_mask <' in md                                        # links into the API pages
    echo = next(c for c in code if 'ECHO-OUTPUT' in json.dumps(c['outputs']))
    assert 'remove-input' in echo['metadata']['tags']                           # echo: false
    shown = next(c for c in code if 'SHOWN-DOC' in c['source'])
    assert 'hide-input' not in shown['metadata'].get('tags', [])                # exports: the code is shown open ...
    assert '### shown_export' in md                                            # ... with its show_doc
    assert 'COMMITTED-OUTPUT' in outs                                           # committed outputs, nothing run
    log = next(c for c in code if 'COLLAPSED-OUTPUT' in json.dumps(c['outputs']))
    assert 'hide-output' in log['metadata']['tags']                             # collapsed in Jupyter: folded here
    assert '#|' not in src and not re.search(r'^---\s*$', md, re.M) and '$a^2 + b^2$' in md   # no front matter left


def test_kernel_pages_show_kernel_source(driver, server):
    "The chapters that derive the kernels show them: every @triton.jit function of the package is on its chapter's page."
    import ast
    src = {p: (ROOT/'sparse_transformer_edu'/p).read_text() for p in ('kernels.py',)}
    jitted = [n.name for t in src.values() for n in ast.parse(t).body
              if isinstance(n, ast.FunctionDef) and any(getattr(d, 'id', None) == '_jit' for d in n.decorator_list)]
    assert len(jitted) >= 8, jitted
    text = ''
    for page in ('kernel_forward.html', 'kernel_backward.html'):
        _open(driver, f'{server}/{page}')
        text += driver.execute_script('return document.querySelector("article").innerText')
    missing = [name for name in jitted if f'def {name}(' not in text]
    assert not missing, f'kernels not shown on the chapter pages: {missing}'
    for piece in ('tl.program_id', 'tl.dot', 'tl.load', 'tl.store', '@_jit'):
        assert piece in text, piece
