"""A section's closing table shows its sentences whole (the provenance row says how many verifications passed)."""
import pandas as pd

from fer_lib.report import section


def test_the_provenance_table_shows_the_whole_verification_sentence(monkeypatch):
    sentence = ("2 of its 40 runs recomputed by `fer-runs verify` on 1 machine model(s) (AMD EPYC (2 cores)): "
                "2 of 3 verification(s) passed their rule (1 bitwise equal), largest headline |difference| 0.059")
    monkeypatch.setattr(section, "reproduced_note", lambda keys, former=None: sentence)
    with pd.option_context("display.max_colwidth", 50):  # pandas' default, as in a fresh kernel
        sec = section.start_section("00_data", "smoke", {})
        table = sec.finish()
        html, text = table._repr_html_(), repr(table)
    assert sentence in html.replace("&#124;", "|")
    assert "largest headline |difference| 0.059" in text
    assert "..." not in html and "…" not in html
