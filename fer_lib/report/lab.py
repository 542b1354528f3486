"""JupyterLab settings for exploring the notebooks (``make lab``).

``strip_outputs``: a contents-manager pre-save hook. A notebook saved under the project's ``notebooks/`` is written
without outputs, execution counts or widget state, so exploring in Lab (autosave included) never adds outputs to
the tracked notebooks -- nor marks every run trained from Lab ``+dirty`` -- and a reopened notebook holds no
progress-bar widgets whose state is gone. The outputs stay on screen in the open session; executed copies
elsewhere (``book/sections``, papermill's outputs) are untouched.
"""
from __future__ import annotations

from pathlib import Path

from .. import paths


#: the kernelspec the tracked notebooks name (``make lab`` installs the project's kernel under this name)
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def strip_outputs(model: dict, path: str, contents_manager=None, **kwargs) -> None:
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    root = Path(getattr(contents_manager, "root_dir", "") or ".").resolve()
    notebooks = (paths.project_root() / "notebooks").resolve()
    full = (root / path.lstrip("/")).resolve()
    if notebooks not in full.parents:
        return
    nb = model["content"]
    meta = nb.setdefault("metadata", {})
    meta.pop("widgets", None)
    # the kernel's own details (Python version, lexer) stay out of the tracked file, as the notebooks are stored
    meta["kernelspec"] = dict(KERNELSPEC)
    meta["language_info"] = {"name": "python"}
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        cell.get("metadata", {}).pop("execution", None)
