"""Execute notebooks on the GPU machine, cuda cells included, and save them with their outputs.

--only-cuda runs the `#| cuda` cells and only the cells they need: every cell with an nbdev directive that defines the
module (export, exports, default_exp), every import, and each earlier cell that defines a name a kept cell reads. The
other tests, already run on the CPU by nbdev_test, are skipped. `merge` copies the outputs of the cuda cells of an
executed notebook into the source notebook, leaving every other cell as it is.

Usage: python bench/gpu_notebooks.py OUTDIR NOTEBOOK [NOTEBOOK ...] [--only-cuda [--cells ID ...]] [--budget SECONDS]
       python bench/gpu_notebooks.py --merge EXECUTED SOURCE"""
import argparse, ast, os, re, sys, time
import nbformat
from nbclient import NotebookClient

CUDA = re.compile(r"^#\|\s*cuda\b", re.M)
DEFINES = re.compile(r"^#\|\s*(export|exports|default_exp)\b", re.M)
SKIP = re.compile(r"^#\|\s*eval:\s*false", re.M)


def _names(node, ctx) -> set:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ctx)}

def names(src:str) -> tuple:
    """(names a cell binds, names it changes in place, names it reads from earlier cells) at top level.

    A function or class reads what its body loads less its arguments and locals. Any other statement reads every name
    it loads except loop, comprehension and lambda variables, so `x = x.cuda()` reads `x`. A subscript or attribute
    assignment, an augmented assignment or a `del` changes its name. A cell that does not parse binds and reads nothing."""
    try: tree = ast.parse("\n".join(l for l in src.splitlines() if not l.lstrip().startswith(("%", "!"))))
    except SyntaxError: return set(), set(), set()
    bound, changed, read = set(), set(), set()
    for node in tree.body:
        args = {a.arg for n in ast.walk(node) if isinstance(n, ast.arguments)
                for a in n.posonlyargs + n.args + n.kwonlyargs + [n.vararg, n.kwarg] if a}
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            reads, binds = _names(node, ast.Load) - _names(node, ast.Store) - args, {node.name}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            reads, binds = set(), {(a.asname or a.name).split(".")[0] for a in node.names}
        else:
            loop = {v for t in ast.walk(node) if isinstance(t, (ast.For, ast.AsyncFor, ast.comprehension)) for v in _names(t.target, ast.Store)}
            reads, binds = _names(node, ast.Load) - loop - args, _names(node, ast.Store) - loop
            for t in ast.walk(node):
                if isinstance(t, ast.AugAssign) and isinstance(t.target, ast.Name):   # `n += 1` reads and changes n
                    reads.add(t.target.id); binds.discard(t.target.id); changed.add(t.target.id)
                targets = t.targets if isinstance(t, (ast.Assign, ast.Delete)) else [t.target] if isinstance(t, (ast.AugAssign, ast.AnnAssign)) else []
                for tgt in targets:
                    if isinstance(t, ast.Delete) and isinstance(tgt, ast.Name): changed.add(tgt.id)
                    while isinstance(tgt, (ast.Subscript, ast.Attribute)): tgt = tgt.value
                    if isinstance(tgt, ast.Name) and not isinstance(tgt.ctx, ast.Store): changed.add(tgt.id)
        read |= reads - bound
        bound |= binds
    return bound, changed, read


def needed_cells(cells, ids=None) -> set:
    """Indices of the code cells that --only-cuda runs: the cuda cells (those of `ids` only, if given), the defining cells,
    and for each name a kept cell reads, the last earlier cell that binds it and every cell in between that changes it. Cells that change global state
    without naming it (a seed, an environment variable) are not found this way: the cuda cells set their own."""
    code = [(i, c.source) for i, c in enumerate(cells) if c.cell_type == "code" and not SKIP.search(c.source)]
    info = {i: names(s) for i, s in code}
    keep = {i for i, s in code if (CUDA.search(s) and (ids is None or cells[i].get("id") in ids)) or DEFINES.search(s)
            or re.match(r"^\s*(import|from)\s", s)}
    todo = sorted(keep)
    while todo:
        i = todo.pop()
        for name in info[i][2]:
            defs = [j for j, _ in code if j < i and name in info[j][0]]
            if not defs: continue
            for j in [defs[-1]] + [j for j, _ in code if defs[-1] < j < i and name in info[j][1]]:
                if j not in keep: keep.add(j); todo.append(j)
    return keep


class Client(NotebookClient):
    "Runs every cell except those marked `#| eval: false` (or outside `only`), as nbdev_test would; no cell runs past `deadline`."
    deadline = None   # time.time() after which a cell is stopped, so that the notebook is saved in time
    only = None       # indices of the cells to run (None: all)
    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if cell.cell_type == "code" and (SKIP.search(cell.source) or (self.only is not None and cell_index not in self.only)): return cell
        if self.deadline is not None: self.timeout = max(1, int(self.deadline - time.time()))
        return await super().async_execute_cell(cell, cell_index, execution_count, store_history)


def merge(executed:str, source:str) -> int:
    "Copy the outputs of the cuda cells of `executed` into `source` (cells matched by their text); returns how many. Refuses errors."
    ran, src = nbformat.read(executed, as_version=4), nbformat.read(source, as_version=4)
    cuda = [c for c in ran.cells if c.cell_type == "code" and CUDA.search(c.source) and c.outputs]
    failed = [c.source.splitlines()[1:2] for c in cuda if any(o.output_type == "error" for o in c.outputs)]
    if failed: raise ValueError(f"{executed}: {len(failed)} cuda cell(s) ended in an error, first {failed[0]}: nothing merged")
    outs = {c.source: c.outputs for c in cuda}
    n = 0
    for c in src.cells:
        if c.cell_type == "code" and c.source in outs: c.outputs, n = outs[c.source], n + 1
    nbformat.write(src, source)
    return n


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--merge"]:
        if len(argv) != 3: sys.exit("usage: gpu_notebooks.py --merge EXECUTED SOURCE")
        print(f"{argv[2]}: outputs of {merge(argv[1], argv[2])} cuda cells merged"); return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="folder for the executed notebooks")
    ap.add_argument("notebooks", nargs="+")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per cell (default: %(default)s)")
    ap.add_argument("--budget", type=float, default=None, help="seconds for all the notebooks: a cell still running then is "
                    "stopped and the notebook saved with the outputs it has")
    ap.add_argument("--only-cuda", action="store_true", help="run the cuda cells and the cells they need, nothing else")
    ap.add_argument("--cells", nargs="+", default=None, help="with --only-cuda: only the cuda cells of these ids")
    args = ap.parse_args(argv)
    deadline = None if args.budget is None else time.time() + args.budget
    for path in args.notebooks:
        t0 = time.time()
        nb = nbformat.read(path, as_version=4)
        try:
            client = Client(nb, timeout=args.timeout, kernel_name="python3", resources={"metadata": {"path": os.path.dirname(path)}})
            client.deadline = deadline
            if args.only_cuda: client.only = needed_cells(nb.cells, args.cells)
            client.execute()
            status = "ok"
        except Exception as e:
            status = f"FAILED: {type(e).__name__}: {str(e)[-1500:]}"
        os.makedirs(args.out, exist_ok=True)
        nbformat.write(nb, os.path.join(args.out, os.path.basename(path)))
        print(f"{path}: {status} ({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__": main()
