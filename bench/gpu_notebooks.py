"""Execute notebooks on the GPU machine, cuda cells included, and save them with their outputs.

Usage: python bench/gpu_notebooks.py OUTDIR NOTEBOOK [NOTEBOOK ...]"""
import argparse, os, re, time
import nbformat
from nbclient import NotebookClient


class Client(NotebookClient):
    "Runs every cell except those marked `#| eval: false`, as nbdev_test would; no cell runs past `deadline`."
    deadline = None   # time.time() after which a cell is stopped, so that the notebook is saved in time
    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if cell.cell_type == "code" and re.search(r"^#\|\s*eval:\s*false", cell.source, re.M): return cell
        if self.deadline is not None: self.timeout = max(1, int(self.deadline - time.time()))
        return await super().async_execute_cell(cell, cell_index, execution_count, store_history)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="folder for the executed notebooks")
    ap.add_argument("notebooks", nargs="+")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per cell (default: %(default)s)")
    ap.add_argument("--budget", type=float, default=None, help="seconds for all the notebooks: a cell still running then is "
                    "stopped and the notebook saved with the outputs it has")
    args = ap.parse_args(argv)
    deadline = None if args.budget is None else time.time() + args.budget
    for path in args.notebooks:
        t0 = time.time()
        nb = nbformat.read(path, as_version=4)
        try:
            client = Client(nb, timeout=args.timeout, kernel_name="python3", resources={"metadata": {"path": os.path.dirname(path)}})
            client.deadline = deadline
            client.execute()
            status = "ok"
        except Exception as e:
            status = f"FAILED: {type(e).__name__}: {str(e)[-1500:]}"
        os.makedirs(args.out, exist_ok=True)
        nbformat.write(nb, os.path.join(args.out, os.path.basename(path)))
        print(f"{path}: {status} ({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__": main()
