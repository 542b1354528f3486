"""The published book: pages carry their provenance and parameters, code is collapsed; every profile's parameters
build every run's configuration; the paper profile's check builds and steps every model (slow)."""
from __future__ import annotations

import nbformat
import pytest

from fer_lib.report.book import decorate
from fer_lib.config.params import PROFILES, load_params, params_file
from fer_lib.tasks.sections import SECTION_BUILDERS, section_runs


def _nb():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 06 · A title\n\nThe intro paragraph."),
                nbformat.v4.new_code_cell("profile = 'smoke'"), nbformat.v4.new_code_cell("profile = 'real-cpu'"),
                nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_markdown_cell("## Results")]
    nb.cells[1].metadata["tags"] = ["parameters", "remove-cell"]
    nb.cells[2].metadata["tags"] = ["injected-parameters"]
    nb.cells[3].outputs = [
        nbformat.v4.new_output("display_data", {"text/plain": "epoch 1:   0%|          | 0/45",
                                                "application/vnd.jupyter.widget-view+json": {"model_id": "f00"}}),
        nbformat.v4.new_output("execute_result", {"text/plain": "1"}, execution_count=1)]
    return nb


def test_pages_get_a_provenance_note_a_parameters_table_and_collapsed_code():
    prov = {"profile": "real-cpu", "finished": "2026-11-22T18:00:00+00:00", "device": "cpu:x86_64 x2 threads",
            "fer_lib": "0.3.0", "git_commit": "abc123", "wall_seconds": 90.0, "datasets": {"FER2013": "0123456789abcdef"}}
    nb = decorate(_nb(), "real-cpu", {"profile": "real-cpu", "data": {"root": "a|b", "n": 3}, "lr": 0.1},
                  "params/real-cpu/06.yaml", prov)
    src = [c.source for c in nb.cells]
    assert src[0] == "# 06 · A title"  # the title stays first, the note right under it
    assert src[1].startswith(":::{note}") and "**real-cpu** profile on 2026-11-22 18:00 UTC" in src[1]
    assert "cpu:x86_64 x2 threads" in src[1] and "FER2013 (fingerprint `0123456789ab`)" in src[1]
    assert src[2].startswith(":::{dropdown} Parameters of this build (profile **real-cpu** from `params/real-cpu/06.yaml`)")
    assert "| `lr` | `0.1` |" in src[2] and 'a\\|b' in src[2]  # a '|' inside a value is escaped
    assert src[3] == "The intro paragraph."
    tags = {c.source: c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code"}
    assert "remove-cell" in tags["profile = 'real-cpu'"]  # papermill's injected cell: replaced by the table
    assert tags["x = 1"] == ["hide-input"]
    outputs = next(c.outputs for c in nb.cells if c.source == "x = 1")
    assert [o["output_type"] for o in outputs] == ["execute_result"]  # the stale progress bar is gone
    assert tags["profile = 'smoke'"] == ["parameters", "remove-cell"]  # not also hidden: it is removed


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("section", list(SECTION_BUILDERS))
def test_every_profile_builds_every_runs_configuration(section, profile):
    _, runs = section_runs(section, load_params(params_file(section, profile)), profile)
    assert runs


@pytest.mark.slow(seconds=35)
def test_paper_profile_check_builds_and_steps_every_model(monkeypatch, capsys):
    """The GPU profile, checked here: every config builds, every model steps at its real input size; the data and
    the timm weights (not on this machine) are listed, not fatal, unless --strict."""
    from fer_lib.report.check import main_check

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main_check("paper", None, strict=False) == 0
    out = capsys.readouterr().out
    assert "0 error(s)" in out and "timm resnet18.a1_in1k" in out and "tf_efficientnetv2_l.in21k_ft_in1k" in out
    assert "data.root" in out  # data/fer2013, data/cifar100, ... are not on this machine
    assert main_check("paper", ["06_segmentation"], strict=True) == 1  # its data root is missing here


def test_provenance_note_says_what_the_runs_cost_when_they_came_from_the_store():
    from fer_lib.report.book import cost_sentence

    base = {"wall_seconds": 9.0}
    read = [{"key": "t", "cached": True, "train_seconds": 600.0}, {"key": "s", "cached": True, "train_seconds": 3420.0},
            {"key": "t", "cached": True, "train_seconds": 600.0}]  # the teacher used twice is one run
    assert cost_sentence({**base, "runs": read}) == (
        "executed in 9 s, reading its 2 runs from the run store (they took 67 min to train)")
    mixed = [{"key": "t", "cached": False, "train_seconds": 600.0}, {"key": "s", "cached": True, "train_seconds": 60.0}]
    assert cost_sentence({"wall_seconds": 700.0, "runs": mixed}) == (
        "executed in 12 min, training 1 of its 2 runs and reading 1 from the run store (all 2 took 11 min to train)")
    assert cost_sentence({"wall_seconds": 130.0, "runs": [{"key": "t", "cached": False, "train_seconds": 125.0}]}) == (
        "executed in 2 min, of which training its 1 run took 2 min")
    assert cost_sentence({"wall_seconds": 3.0}) == "executed in 3 s"
    resumed = [{"key": "t", "cached": True, "train_seconds": 600.0, "resumed": True}]
    assert cost_sentence({**base, "runs": resumed}) == (
        "executed in 9 s, reading its 1 run from the run store (it took 10 min to train; it was resumed after an "
        "interruption and counts its last attempt only)")
    assert cost_sentence({**base, "runs": [{**resumed[0], "key": "r"}, *read]}) == (
        "executed in 9 s, reading its 3 runs from the run store (they took 77 min to train; 1 of them was resumed "
        "after an interruption and counts its last attempt only)")


def test_provenance_note_says_the_numbers_came_from_the_published_results_and_how_to_recompute_them():
    from fer_lib.report.book import provenance_markdown, source_sentence

    run = {"kind": "teacher", "cached": True, "train_seconds": 600, "trained_on": "AMD EPYC (2 cores)"}
    prov = {"profile": "real-cpu", "wall_seconds": 9, "runs": [
        {**run, "key": "a", "published": True, "finished": "2026-12-05T15:00:00+00:00"},
        {**run, "key": "b", "published": True, "finished": "2026-12-07T09:00:00+00:00"},
        {**run, "key": "a", "published": True, "finished": "2026-12-05T15:00:00+00:00"}]}  # read twice: one run
    assert source_sentence(prov) == (
        " Its numbers were read from the published results (`results/real-cpu/`): all 2 of its runs were trained "
        "between 2026-12-05 and 2026-12-07 on AMD EPYC (2 cores). Recompute any of them and compare with "
        "`fer-runs verify KEY` (`fer-runs list --profile real-cpu` gives the keys).")
    prov["runs"][1]["published"] = False
    assert "1 of its 2 runs was trained on 2026-12-05 on AMD EPYC" in source_sentence(prov)
    assert source_sentence({"runs": [{**run, "key": "c", "published": False}]}) == ""
    assert "published results" in provenance_markdown({**prov, "finished": "2026-12-08T10:00"}, "real-cpu")


def test_the_page_note_names_the_cpu_model_or_the_gpu():
    from fer_lib.report.book import hardware

    assert hardware({"device": "cpu:x86_64 x2 threads", "cpu": "AMD EPYC 7B13", "cpu_count": 2}) == \
        "AMD EPYC 7B13 CPU (2 cores, 2 threads)"
    assert hardware({"device": "cuda:NVIDIA A100-SXM4-80GB"}) == "cuda:NVIDIA A100-SXM4-80GB"


def test_values_cited_tables_show_in_the_notebook_and_are_dropped_from_the_book():
    import nbformat

    from fer_lib.report.book import decorate
    from fer_lib.report.section import CITED

    nb = nbformat.v4.new_notebook()
    cited = nbformat.v4.new_output("display_data", data={"text/plain": "acc 0.5"}, metadata={CITED: True})
    table = nbformat.v4.new_output("display_data", data={"text/plain": "a table"})
    cell = nbformat.v4.new_code_cell("sec.glue_all(...)", outputs=[cited, table])
    nb.cells = [nbformat.v4.new_markdown_cell("# 09 · x\n\ntext"), cell]
    out = decorate(nb, "smoke", {})
    code = [c for c in out.cells if c.cell_type == "code"][0]
    assert [o["data"]["text/plain"] for o in code.outputs] == ["a table"]


def test_show_prints_counts_without_decimals_and_missing_numbers_as_a_dash():
    import numpy as np
    import pandas as pd
    from fer_lib.report.tables import seed_beside, show

    ours = pd.DataFrame({"val": [0.71323, 0.7094], "best_epoch": [18.0, 17.0]}, index=["Dice 2.0", "Dice 1.5"])
    seed = pd.DataFrame({"val": [np.nan, 0.6889], "best_epoch": [np.nan, 92.0]}, index=["Dice 2.0", "Dice 1.5"])
    html = show(seed_beside(ours, seed, "real-cpu", names={"best_epoch": "best epoch"}), precision=4,
                integers=("best epoch",)).to_html()
    assert ">0.7132<" in html and ">0.6889<" in html and ">18<" in html and ">92<" in html and "—" in html
    assert "18.0000" not in html and "92.0000" not in html
