"""A report section's bookkeeping: glue for numbers in prose, provenance for the appendix.

``sec = start_section("01_teachers", profile, params)`` at the top of a notebook,
``sec.glue("key", value)`` for every number the prose cites, ``sec.use(run)`` for every
run the section reads, and ``sec.finish(data)`` at the end, which writes
``<report dir>/provenance/<section>.json`` (git commit, fer_lib version, parameters, dataset
fingerprints, device, wall time, runs computed vs read from the store) atomically and
returns it as a table.
"""
from __future__ import annotations

import time
import warnings

import pandas as pd

from .. import paths
from ..runs import Run, environment, write_json_atomic
from ..runs.provenance import now
from ..runs.rekey import former_keys
from ..config.params import differs_from_profile


class Section:
    def __init__(self, name: str, profile: str, params: dict):
        self.name, self.profile, self.params = name, profile, params
        self.started, self._t0 = now(), time.perf_counter()
        self.runs: list[dict] = []
        self.findings: list[dict] = []
        self.differs = differs_from_profile(name, profile, params)
        if self.differs:
            warnings.warn(f"section {name} claims the {profile} profile but its parameters {', '.join(self.differs)} "
                          f"are not those of params/{profile}/{name}.yaml: its results are not the {profile} "
                          "profile's (the provenance note says so)", stacklevel=3)

    def glue(self, key: str, value, display: bool = False, show: bool = True):
        """Make ``value`` citable in the notebook's prose as {glue:text}`key`; unless ``show`` is False, also
        display it in the notebook (JupyterLab shows the prose's roles as written, not their values)."""
        from myst_nb import glue

        if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy scalar -> Python (plain repr)
            value = value.item()
        glue(key, value, display=display)
        if show and not display:
            show_cited({key: value})
        return value

    def glue_all(self, values: dict) -> dict:
        for k, v in values.items():
            self.glue(k, v, show=False)
        show_cited(values)
        return values

    def use(self, run: Run) -> Run:
        prov = run.provenance
        self.runs.append({"kind": run.path.parent.name, "key": run.key, "cached": bool(getattr(run, "hit", False)),
                          "published": bool(getattr(run, "published", False)),
                          "train_seconds": prov.get("wall_seconds"), "resumed": bool(prov.get("resumed")),
                          "finished": prov.get("finished"),
                          "trained_on": trained_on(prov), "git_commit": prov.get("git_commit"),
                          "former_keys": former_keys(prov)})
        return run

    def claim(self, claim_id: str, diffs, expects: str, what: str, data: str) -> dict:
        """Record this build's test of a seed claim (``claims.yaml``): ``diffs`` the Interval(s) of the comparison
        it makes (A minus B), ``expects`` the direction the seed asserts; the Claims page shows the verdict."""
        from .claims import finding

        record = finding(claim_id, diffs, expects, what, f"{self.profile}; {data}")
        self.findings.append(record)
        return record

    def claim_untestable(self, claim_id: str, why: str, data: str) -> dict:
        from .claims import untestable

        record = untestable(claim_id, why, f"{self.profile}; {data}")
        self.findings.append(record)
        return record

    def claims(self, specs: list[dict], data: str) -> pd.DataFrame:
        """Record a report module's ``seed_claims`` (each ``{claim_id, diffs, expects, what}``, or ``{claim_id, why}``
        when this profile cannot test it) and show them."""
        for spec in specs:
            if "why" in spec:
                self.claim_untestable(spec["claim_id"], spec["why"], data)
            else:
                self.claim(data=data, **spec)
        shown = self.findings[-len(specs):] if specs else []
        return pd.DataFrame(shown).set_index("id") if shown else pd.DataFrame()

    def finish(self, *datasets) -> pd.DataFrame:
        wall = time.perf_counter() - self._t0
        if self.findings:
            from .claims import write_findings

            write_findings(self.name, self.findings)
        record = {"section": self.name, "profile": self.profile, **environment(), "started": self.started,
                  "finished": now(), "wall_seconds": round(wall, 1), "params": self.params,
                  "datasets": {d.name: d.fingerprint[:16] for d in datasets if d is not None},
                  "runs": self.runs, "differs_from_profile": self.differs}
        write_json_atomic(paths.report_dir() / "provenance" / f"{self.name}.json", record)
        self.glue(f"{self.name}_wall_minutes", round(wall / 60, 2))
        rows = {k: record[k] for k in ("section", "profile", "git_commit", "fer_lib", "torch", "device",
                                       "wall_seconds")}
        rows["datasets"] = ", ".join(f"{k} ({v})" for k, v in record["datasets"].items())
        rows["runs computed / read from store"] = (f"{sum(not r['cached'] for r in self.runs)} / "
                                                   f"{sum(r['cached'] for r in self.runs)}")
        rows["verifications (fer-runs verify)"] = reproduced_note(
            [r["key"] for r in self.runs], {old: r["key"] for r in self.runs for old in r["former_keys"]})
        return pd.DataFrame({"value": rows})


#: output metadata of the "values cited below" tables: shown in JupyterLab, dropped from the book (whose prose
#: pastes the values) by ``book.decorate``
CITED = "fer_lib_cited"


def show_cited(values: dict) -> None:
    """Display the glued ``values`` as a small table under the cell that computed them (in a kernel only)."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    if get_ipython() is None or not values:
        return
    table = pd.DataFrame({"values cited in the prose below": [f"{{glue:text}}`{k}`" for k in values],
                          "value": [v if isinstance(v, (str, int, float, bool)) or v is None else str(v)
                                    for v in values.values()]})
    html = table.style.hide(axis="index").format(precision=4).to_html()
    display({"text/html": html, "text/plain": table.to_string(index=False)}, raw=True, metadata={CITED: True})


def reproduced_note(keys: list[str], former: dict[str, str] | None = None) -> str:
    """Where the section's runs were reproduced (``fer-runs verify``), from the verification ledgers of the
    published tiers and the local store; ``former`` maps a re-keyed run's old keys to its key."""
    from ..runs import ledger

    entries = [e for root in [*paths.published_roots(), paths.runs_dir()] for e in ledger.read(root / ledger.LEDGER)]
    return ledger.reproduced(entries, sorted(set(keys)), former) if keys else "no runs"


def trained_on(prov: dict) -> str:
    """The hardware a run's provenance names: the GPU, or the CPU model and its cores."""
    device = prov.get("device", "") or ""
    if device.startswith("cuda") or not prov.get("cpu"):
        return device.removeprefix("cuda:") or "?"
    return f"{prov['cpu']} ({prov.get('cpu_count', '?')} cores)"


def start_section(name: str, profile: str, params: dict) -> Section:
    """Set the report's figure style and table display, and start the section's bookkeeping."""
    from ..plots import set_style

    set_style()
    show_whole_cells()
    return Section(name, profile, params)


def show_whole_cells() -> None:
    """Tables in the report show every cell whole: pandas cuts a cell at 50 characters by default, which would
    hide the end of the provenance and claims sentences (how many verifications passed, a claim's wording)."""
    pd.set_option("display.max_colwidth", None)
