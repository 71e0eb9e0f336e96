"""Execute notebooks on the GPU machine, cuda cells included, and save them with their outputs.

Usage: python bench/gpu_notebooks.py OUTDIR NOTEBOOK [NOTEBOOK ...]"""
import os, re, sys, time, nbformat
from nbclient import NotebookClient

class Client(NotebookClient):
    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if cell.cell_type == "code" and re.search(r"^#\|\s*eval:\s*false", cell.source, re.M): return cell
        return await super().async_execute_cell(cell, cell_index, execution_count, store_history)

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for path in sys.argv[2:]:
    t0 = time.time()
    nb = nbformat.read(path, as_version=4)
    try:
        Client(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": os.path.dirname(path)}}).execute()
        status = "ok"
    except Exception as e:
        status = f"FAILED: {type(e).__name__}: {str(e)[-1500:]}"
    nbformat.write(nb, os.path.join(out, os.path.basename(path)))
    print(f"{path}: {status} ({time.time() - t0:.0f} s)", flush=True)
