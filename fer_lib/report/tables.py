"""Seed-beside-ours tables: every results table shows the seed's number next to ours and the profile."""
from __future__ import annotations

import numpy as np
import pandas as pd


def seed_beside(ours: pd.DataFrame, seed: pd.DataFrame, profile: str, metrics: list[str] | None = None,
                names: dict[str, str] | None = None, seed_data: str | None = None,
                data: str | None = None) -> pd.DataFrame:
    """Columns (metric, 'seed (<seed_data>)') and (metric, 'ours (<profile>, <data>)') for each metric; rows = union
    of both. The datasets name what each number is on (a seed's CIFAR-100 beside our FER2013 stand-in, say). A metric
    the seed gives for none of the rows (an interval, a count of seeds) has our column alone."""
    metrics = metrics or [c for c in ours.columns if c in seed.columns]
    rows = list(dict.fromkeys(list(ours.index) + list(seed.index)))
    ours_label = f"ours ({profile}, {data})" if data else f"ours ({profile})"
    seed_label = f"seed ({seed_data})" if seed_data else "seed"
    cols = {}
    for m in metrics:
        theirs = seed.reindex(rows)[m] if m in seed else None
        if theirs is not None and theirs.notna().any():
            cols[(names or {}).get(m, m), seed_label] = theirs
        cols[(names or {}).get(m, m), ours_label] = ours.reindex(rows)[m] if m in ours else np.nan
    index = (pd.MultiIndex.from_tuples(rows, names=ours.index.names) if isinstance(ours.index, pd.MultiIndex)
             else pd.Index(rows, name=ours.index.name))
    out = pd.DataFrame(cols, index=index)
    out.columns = pd.MultiIndex.from_tuples(out.columns, names=["metric", "source"])
    return out


def show(df: pd.DataFrame, precision: int = 3, caption: str | None = None, integers: tuple[str, ...] = ()):
    """A Styler for the book: fixed precision, '—' where a number is missing (e.g. TBD in the seed). ``integers``:
    columns (or, with two-level columns, metrics) that count something, e.g. an epoch, shown without decimals."""
    st = df.style.format(precision=precision, na_rep="—")
    counts = [c for c in df.columns if (c[0] if isinstance(c, tuple) else c) in integers]
    if counts:
        st = st.format(precision=0, na_rep="—", subset=counts)
    if caption:
        st = st.set_caption(caption)
    return st


def ensemble_row_label(ours: str, seed_rows: dict) -> str:
    """Row name of "the chosen ensemble" in a table with the seed beside: this run's selection and the seed's may
    pick different members (``seed_rows["ensemble"]["label"]`` names the seed's)."""
    seed_label = (seed_rows.get("ensemble") or {}).get("label")
    return f"chosen ensemble (ours: {ours}; seed: {seed_label})" if seed_label else f"chosen ensemble (ours: {ours})"
