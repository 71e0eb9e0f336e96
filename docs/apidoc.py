"""How the site shows a function or class: its signature as written in the source, its own docstring, and a table of
the parameters documented with docments comments (`name:int=1,  # what it is`).

Used by build.py for the entries in the chapters and by conf.py for the API pages, so both show the same thing.
nbdev's own `show_doc` would infer annotations from defaults (`device:NoneType=None`), drop the `*` before
keyword-only parameters, show an autograd Function as `(*args, **kwargs)`, and fall back on a docstring inherited
from a base class ("Call self as a function.")."""
from __future__ import annotations
import inspect

P = inspect.Parameter
WIDTH = 78   # longest signature line before it wraps: the site shows about 80 characters of code


def _anno(a) -> str:
    "An annotation as the source writes it: `int|None`, `torch.Tensor`."
    if a is P.empty: return ''
    s = a if isinstance(a, str) else inspect.formatannotation(a)
    return s.replace(' | ', '|')


def _default(d) -> str:
    if inspect.isfunction(d) or inspect.isclass(d) or inspect.isbuiltin(d): return d.__name__
    r = repr(d)
    return r if len(r) <= 40 else r[:37] + '...'


def _is_autograd_function(obj) -> bool:
    try:
        import torch
        return inspect.isclass(obj) and issubclass(obj, torch.autograd.Function)
    except ImportError: return False


def catch_all(obj) -> bool:
    "True for a class whose constructor is only an inherited `(*args, **kwargs)`."
    try: ps = list(inspect.signature(obj).parameters.values())
    except (TypeError, ValueError): return False
    return inspect.isclass(obj) and [p.kind for p in ps] == [P.VAR_POSITIONAL, P.VAR_KEYWORD]


def signature(obj):
    "The signature a reader calls, without `self`; None when there is nothing useful to show."
    target = obj.forward if _is_autograd_function(obj) else obj
    try: sig = inspect.signature(target)
    except (TypeError, ValueError): return None
    ps = list(sig.parameters.values())
    if _is_autograd_function(obj) and ps: ps = ps[1:]   # `ctx` is autograd's, not the caller's
    if ps and ps[0].name == 'self' and not inspect.isclass(obj): ps = ps[1:]
    if [p.kind for p in ps] == [P.VAR_POSITIONAL, P.VAR_KEYWORD]: return None   # an inherited catch-all
    return sig.replace(parameters=ps)


def param_strings(sig) -> list[str]:
    "Each parameter as `name:anno=default`, with the `/` and `*` markers where the signature has them."
    out, star = [], False
    ps = list(sig.parameters.values())
    for i, p in enumerate(ps):
        if p.kind == P.KEYWORD_ONLY and not star: out.append('*'); star = True
        s = {P.VAR_POSITIONAL: '*', P.VAR_KEYWORD: '**'}.get(p.kind, '') + p.name
        if p.annotation is not P.empty: s += ':' + _anno(p.annotation)
        if p.default is not P.empty: s += '=' + _default(p.default)
        if p.kind == P.VAR_POSITIONAL: star = True
        out.append(s)
        if p.kind == P.POSITIONAL_ONLY and (i + 1 == len(ps) or ps[i + 1].kind != P.POSITIONAL_ONLY): out.append('/')
    return out


def _wrap(head: str, params: list[str], tail: str) -> str:
    one = f'{head}({", ".join(params)}){tail}'
    if len(one) <= WIDTH: return one
    lines, cur = [], ''
    for p in params:
        piece = p + ','
        if cur and len(cur) + 1 + len(piece) > WIDTH - 4: lines.append(cur); cur = piece
        else: cur = f'{cur} {piece}' if cur else piece
    lines.append(cur.rstrip(','))
    return f'{head}(\n' + '\n'.join('    ' + l for l in lines) + f'\n){tail}'


def signature_text(obj, name: str | None = None) -> str:
    "`def name(...) -> ret`, `class Name(...)`, or for an autograd Function `class Name` and its `Name.apply(...)`."
    name = name or getattr(obj, '__qualname__', getattr(obj, '__name__', str(obj)))
    sig = signature(obj)
    if _is_autograd_function(obj):
        return f'class {name}' + ('' if sig is None else '\n' + _wrap(f'{name}.apply', param_strings(sig), ''))
    if inspect.isclass(obj):
        return f'class {name}' if sig is None else _wrap(f'class {name}', param_strings(sig), '')
    prefix = 'async def' if inspect.iscoroutinefunction(obj) else 'def'
    if sig is None: return f'{prefix} {name}(...)'
    ret = '' if sig.return_annotation is P.empty else f' -> {_anno(sig.return_annotation)}'
    return _wrap(f'{prefix} {name}', param_strings(sig), ret)


def own_doc(obj) -> str:
    "The object's own docstring: never one inherited from a base class or from `object`."
    d = obj.__dict__.get('__doc__') if inspect.isclass(obj) else getattr(obj, '__doc__', None)
    return inspect.cleandoc(d) if isinstance(d, str) else ''


def param_docs(obj) -> tuple[list[tuple[str, str, str, str]], str]:
    "Rows (name, type, default, details) of the parameters, if any is documented, and the documented return."
    from fastcore.docments import docments
    sig = signature(obj)
    if sig is None: return [], ''
    target = obj.forward if _is_autograd_function(obj) else obj
    try: dm = docments(target, full=True, args_kwargs=True)
    except Exception: return [], ''
    rows = []
    for p in sig.parameters.values():
        doc = (dm.get(p.name) or {}).get('docment') or ''
        rows.append((({P.VAR_POSITIONAL: '*', P.VAR_KEYWORD: '**'}.get(p.kind, '') + p.name), _anno(p.annotation),
                     '' if p.default is P.empty else _default(p.default), ' '.join(doc.split())))
    ret = ' '.join(((dm.get('return') or {}).get('docment') or '').split())
    return (rows if any(r[3] for r in rows) else []), ret


def _cell(s: str) -> str: return s.replace('|', '\\|')


def markdown(obj, name: str | None = None, title_level: int = 3) -> str:
    "The entry for `obj` as Markdown: heading, signature, docstring, parameters."
    name = name or getattr(obj, '__qualname__', getattr(obj, '__name__', str(obj)))
    md = [f"{'#' * title_level} {name}", '', '```python', signature_text(obj, name), '```', '']
    doc = own_doc(obj)
    if doc:
        first, _, rest = doc.partition('\n')
        md += [f'*{first.strip()}*', ''] + ([rest.strip(), ''] if rest.strip() else [])
    rows, ret = param_docs(obj)
    if rows:
        md += ['| parameter | type | default | details |', '|---|---|---|---|']
        md += [f'| `{n}` | {"`" + _cell(t) + "`" if t else ""} | {"`" + _cell(d) + "`" if d else ""} | {_cell(x)} |'
               for n, t, d, x in rows]
        md.append('')
    if ret: md += [f'**Returns:** {ret}', '']
    return '\n'.join(md).rstrip() + '\n'
