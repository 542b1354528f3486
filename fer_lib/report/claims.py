"""The Claims page: each seed's headline claims (``claims.yaml``) beside what this build's runs say of them.

A section tests a claim where its runs are: ``sec.claim(id, diff, expects, setting)`` with the ``Interval`` of the
comparison the claim makes (A minus B), and the direction the seed asserts ("higher", "lower", or "equal" for a
claimed tie). ``judge`` turns that into the verdict -- computed, never typed:

- **confirmed**: the interval excludes zero on the side the seed asserts;
- **contradicted**: it excludes zero on the other side (for a claimed tie: on either side);
- **not detectable at this budget**: it holds zero (for a claimed tie this is all a test can say);
- **not testable here**: no section recorded it in this build, or the section said why it cannot.

``sec.finish`` writes the section's findings to ``<report dir>/claims/<section>.json``; the Claims page joins them
with ``claims.yaml`` (``claims_table``).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from .. import paths
from ..metrics import NOT_DETECTABLE, Interval, fmt_interval, verdict

CLAIMS_FILE = Path(__file__).with_name("claims.yaml")
VERDICTS = ("confirmed", "contradicted", "not detectable at this budget", "not testable here")


def load_claims(path: Path = CLAIMS_FILE) -> list[dict]:
    return yaml.safe_load(Path(path).read_text())


def judge(diffs: Interval | list[Interval], expects: str) -> str:
    """The verdict on a claim from the interval(s) of the comparison it makes. With several (a claim about two
    models, say), any contradiction contradicts it, and it is confirmed only when every part is."""
    parts = [diffs] if isinstance(diffs, Interval) else list(diffs)
    words = [verdict(d) for d in parts]
    if expects == "equal":
        return "contradicted" if any(w != NOT_DETECTABLE for w in words) else "not detectable at this budget"
    if expects not in ("higher", "lower"):
        raise ValueError(f"judge: expects must be higher, lower or equal, got {expects!r}")
    other = "lower" if expects == "higher" else "higher"
    if other in words:
        return "contradicted"
    return "confirmed" if all(w == expects for w in words) else "not detectable at this budget"


def finding(claim_id: str, diffs: Interval | list[Interval], expects: str, what: str, setting: str) -> dict:
    """One claim's record: our number(s) with their intervals, the setting, and the verdict."""
    parts = [diffs] if isinstance(diffs, Interval) else list(diffs)
    ours = "; ".join(fmt_interval(d) for d in parts)
    return {"id": claim_id, "ours": f"{what}: {ours}", "setting": setting, "verdict": judge(parts, expects)}


def untestable(claim_id: str, why: str, setting: str) -> dict:
    return {"id": claim_id, "ours": "—", "setting": setting, "verdict": "not testable here", "why": why}


def write_findings(section: str, findings: list[dict], report_dir: Path | None = None) -> Path:
    from ..runs import write_json_atomic

    path = (report_dir or paths.report_dir()) / "claims" / f"{section}.json"
    write_json_atomic(path, {"section": section, "findings": findings})
    return path


def read_findings(report_dir: Path | None = None) -> dict[str, dict]:
    folder = (report_dir or paths.report_dir()) / "claims"
    out = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        for f in json.loads(path.read_text())["findings"]:
            out[f["id"]] = f
    return out


def claims_table(claims: list[dict], findings: dict[str, dict]) -> pd.DataFrame:
    """One row per seed claim (``seed NNN: claim``): the verdict first, our number with its interval and setting, then
    the seed's number on its own data and what its evidence is worth."""
    rows = []
    for c in claims:
        f = findings.get(c["id"]) or {"ours": "—", "setting": "—", "verdict": "not testable here",
                                      "why": f"section {c['section']} did not record it in this build"}
        verdict_text = f["verdict"] + (f" ({f['why']})" if f.get("why") else "")
        rows.append({"claim": f"seed {c['seed']}: {c['claim']}", "verdict": verdict_text,
                     "ours (95% CI)": f["ours"], "our setting": f["setting"],
                     "seed's number (seed's data)": f"{c['seed_number']} [{c['seed_dataset']}]",
                     "seed's evidence": c["evidence"]})
    return pd.DataFrame(rows).set_index("claim")


def verdict_counts(table: pd.DataFrame) -> dict[str, int]:
    words = table["verdict"].str.split(" \\(").str[0]
    return {v: int((words == v).sum()) for v in VERDICTS}


def profile_note(profile: str) -> str:
    """What the verdicts of a profile's build are worth, for the page's opening."""
    if profile == "smoke":
        return ("**This is the smoke build: synthetic data, a few steps per run. Its numbers and verdicts are "
                "meaningless by design** -- the page exists to show that every claim is wired to a computation; read "
                "the real-cpu or paper build for findings.")
    if profile == "real-cpu":
        return ("This is the real-cpu build: FER2013, the CelebAMask-HQ mini set and RAVDESS, with CPU-sized models "
                "from random weights. CIFAR-100 and CREMA-D are not on the machine that builds it, so seeds 002, 003 "
                "and 004 are tested on stand-ins (FER2013; RAVDESS speech with FER2013 faces), named in each row.")
    return "This is the paper build: the seeds' datasets and settings."
