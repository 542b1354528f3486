"""The appendix: every section's provenance record as a table, and its parameters as YAML."""
from __future__ import annotations

import json

import pandas as pd
import yaml

from .. import paths
from .pipeline import SECTIONS


def provenance_records() -> list[dict]:
    """Records of the sections of this build, in book order (the appendix itself excluded)."""
    d = paths.report_dir() / "provenance"
    out = []
    for spec in SECTIONS:
        f = d / f"{spec.name}.json"
        if spec.name != "appendix" and f.exists():
            out.append(json.loads(f.read_text()))
    return out


def provenance_table(records: list[dict]) -> pd.DataFrame:
    rows = []
    for r in records:
        runs = r.get("runs", [])
        rows.append({"section": r["section"], "profile": r["profile"], "git commit": r["git_commit"],
                     "fer_lib": r["fer_lib"], "torch": r["torch"], "device": r["device"],
                     "finished (UTC)": r["finished"], "wall time (s)": r["wall_seconds"],
                     "data fingerprints": ", ".join(f"{k} {v}" for k, v in r.get("datasets", {}).items()) or "—",
                     "runs computed": sum(not x["cached"] for x in runs),
                     "runs from store": sum(x["cached"] for x in runs)})
    return pd.DataFrame(rows).set_index("section")


def parameters_yaml(records: list[dict]) -> str:
    parts = []
    for r in records:
        body = yaml.safe_dump(r.get("params", {}), sort_keys=False, default_flow_style=None, width=100)
        parts.append(f"**{r['section']}**\n\n```yaml\n{body}```\n")
    return "\n".join(parts)
