"""What the published book shows beyond a section's own cells (applied by ``fer-report`` after execution).

- **A provenance note under the title**: the profile, the data (name and fingerprint), the hardware, the date, the
  library version and commit, how long the execution took and what the section's runs cost to train (a section
  that read its runs from the store executes in seconds; the note says so and gives the training time the store
  saved) -- read from the section's provenance record.
- **The parameters as a compact table** in a collapsed dropdown, in place of papermill's injected code cell.
- **Code collapsed**: every code cell is tagged ``hide-input``; the reader sees prose, tables and figures and can
  open any cell's code.
- **No "values cited" tables**: JupyterLab shows them under the cells that glue numbers, since it renders the
  prose's glue roles as written; the book pastes the values into the prose instead.
- **No progress bars**: tqdm's widgets are live only while a kernel runs; executed, they would render as one stale
  "0%" line per epoch, so their outputs are dropped.

The notebooks themselves are untouched (JupyterLab shows the code as usual).
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat

from .section import CITED

HIDDEN = {"remove-cell", "remove-input", "hide-input", "hide-cell"}
WIDGET = "application/vnd.jupyter.widget-view+json"


def _tags(cell) -> list[str]:
    return cell.setdefault("metadata", {}).setdefault("tags", [])


def _value(v) -> str:
    text = json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v
    text = text.replace("|", "\\|")
    return f"`{text}`" if len(text) <= 60 else text


def parameters_markdown(params: dict, profile: str, params_path: str | None) -> str:
    src = f" from `{params_path}`" if params_path else ""
    rows = "\n".join(f"| `{k}` | {_value(v)} |" for k, v in params.items())
    return (f":::{{dropdown}} Parameters of this build (profile **{profile}**{src})\n\n"
            f"| parameter | value |\n|---|---|\n{rows}\n:::")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def cost_sentence(prov: dict) -> str:
    """How long the execution took and what its runs cost to train, e.g. ``executed in 9 s, reading its 9 runs from
    the run store (they took 67 min to train)``. Each run counts once (a teacher shared by several arms is one run)."""
    runs = list({r["key"]: r for r in prov.get("runs", [])}.values())
    text = f"executed in {_duration(prov.get('wall_seconds', 0))}"
    n, trained = len(runs), sum(not r.get("cached") for r in runs)
    cost = _duration(sum(r.get("train_seconds") or 0 for r in runs))
    resumed = sum(bool(r.get("resumed")) for r in runs)
    caveat = "" if not resumed else (f"; {resumed} of them" if n > 1 else "; it") + (
        " was resumed after an interruption and counts its last attempt only")
    if n == 0:
        return text
    if trained == 0:
        return f"{text}, reading its {n} run{'s' * (n > 1)} from the run store ({'they' if n > 1 else 'it'} took {cost} to train{caveat})"
    if trained == n:
        return f"{text}, of which training its {n} run{'s' * (n > 1)} took {cost}{caveat.replace(';', ',')}"
    return f"{text}, training {trained} of its {n} runs and reading {n - trained} from the run store (all {n} took {cost} to train{caveat})"


def hardware(prov: dict) -> str:
    """What the page was computed on: the GPU, or the CPU model with its cores and torch's threads."""
    device = prov.get("device", "?")
    if device.startswith("cpu") and prov.get("cpu"):
        threads = device.rsplit(" x", 1)[-1] if " x" in device else "?"
        return f"{prov['cpu']} CPU ({prov.get('cpu_count', '?')} cores, {threads})"
    return device


def source_sentence(prov: dict) -> str:
    """Where the section's numbers come from when it read published runs: the published results, when and on what
    hardware they were trained, and how to recompute one. Empty when it read none."""
    runs = list({r["key"]: r for r in prov.get("runs", [])}.values())
    published = [r for r in runs if r.get("published")]
    if not published:
        return ""
    days = sorted(r["finished"][:10] for r in published if r.get("finished"))
    when = "" if not days else f" on {days[0]}" if days[0] == days[-1] else f" between {days[0]} and {days[-1]}"
    hardware = sorted({r.get("trained_on") or "?" for r in published})
    n, total = len(published), len(runs)
    which = f"all {n} of its runs" if n == total and n > 1 else "its run" if n == total else f"{n} of its {total} runs"
    return (f" Its numbers were read from the published results (`results/{prov.get('profile', '')}/`): "
            f"{which} {'was' if n == 1 else 'were'} trained{when} on {' and '.join(hardware)}. Recompute any of them and compare with "
            f"`fer-runs verify KEY` (`fer-runs list --profile {prov.get('profile', '')}` gives the keys).")


def provenance_markdown(prov: dict | None, profile: str) -> str:
    if not prov:
        return f":::{{note}}\nBuilt with the **{profile}** profile.\n:::"
    data = ", ".join(f"{k} (fingerprint `{v[:12]}`)" for k, v in prov.get("datasets", {}).items()) or "none"
    when = prov.get("finished", "")[:16].replace("T", " ")
    differs = prov.get("differs_from_profile") or []
    warning = ("" if not differs else
               f":::{{warning}}\nThis page claims the **{prov.get('profile', profile)}** profile, but its parameters "
               f"{', '.join(f'`{k}`' for k in differs)} are not the values of "
               f"`params/{prov.get('profile', profile)}/{prov.get('section', '')}.yaml`: its results are not that "
               "profile's.\n:::\n\n")
    return warning + (":::{note}\n"
            f"**This page** was computed with the **{prov.get('profile', profile)}** profile on {when} UTC, on "
            f"{hardware(prov)}, with fer_lib {prov.get('fer_lib', '?')} (commit "
            f"`{prov.get('git_commit', '?')}`), {cost_sentence(prov)}.{source_sentence(prov)} Data: {data}. "
            "Code cells are collapsed: open one to see what computed the output below it.\n:::")


def decorate(nb, profile: str, params: dict, params_path: str | None = None, provenance: dict | None = None):
    """``nb`` (executed) with the provenance note under its title, the parameters dropdown, code collapsed and no
    progress bars."""
    for cell in nb.cells:
        tags = _tags(cell)
        if "injected-parameters" in tags:
            tags.append("remove-cell")
        elif cell.cell_type == "code" and not HIDDEN & set(tags):
            tags.append("hide-input")
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.get("outputs", []) if WIDGET not in o.get("data", {})
                            and not o.get("metadata", {}).get(CITED)]
    first = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), None)
    new = [nbformat.v4.new_markdown_cell(provenance_markdown(provenance, profile)),
           nbformat.v4.new_markdown_cell(parameters_markdown(params, profile, params_path))]
    for k, c in enumerate(new):
        c["id"] = f"fer-report-{k}"
    if first is None:
        nb.cells[:0] = new
        return nb
    title, _, rest = nb.cells[first].source.partition("\n")
    if title.startswith("# ") and rest.strip():
        nb.cells[first].source = title
        body = nbformat.v4.new_markdown_cell(rest.strip("\n"))
        body["id"] = "fer-report-intro"
        new.append(body)
    nb.cells[first + 1:first + 1] = new
    return nb


def decorate_file(path: Path, profile: str, params: dict, params_path: str | None, provenance_file: Path) -> None:
    """Decorate the executed notebook at ``path`` in place (the caller writes it atomically)."""
    nb = nbformat.read(path, as_version=4)
    prov = json.loads(provenance_file.read_text()) if provenance_file.is_file() else None
    nbformat.write(decorate(nb, profile, params, params_path, prov), path)
