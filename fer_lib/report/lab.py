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


def strip_outputs(model: dict, path: str, contents_manager=None, **kwargs) -> None:
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    root = Path(getattr(contents_manager, "root_dir", "") or ".").resolve()
    notebooks = (paths.project_root() / "notebooks").resolve()
    full = (root / path.lstrip("/")).resolve()
    if notebooks not in full.parents:
        return
    nb = model["content"]
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        cell.get("metadata", {}).pop("execution", None)
