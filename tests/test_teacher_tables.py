"""Section 01's head choice: which head each role plays is read off validation, and a disagreement shows."""
from types import SimpleNamespace as NS

import pytest

from fer_lib.report.teachers import head_choice


def _run(val_f1, test_f1=0.0):
    return NS(metrics={"val": {"macro_f1": val_f1}, "test": {"macro_f1": test_f1}})


def _cfg(head):
    return NS(model=NS(head=head))


def test_head_choice_reads_validation_only_and_flags_a_disagreement():
    runs = {"rn": _run(0.54, test_f1=0.1), "rn_arcface": _run(0.44, test_f1=0.9),  # test would pick ArcFace
            "vit": _run(0.30), "vit_arcface": _run(0.35),                            # validation picks ArcFace
            "solo": _run(0.5)}                                                       # one head only: no row
    configs = {"rn": _cfg("linear"), "rn_arcface": _cfg("arcface"), "vit": _cfg("linear"),
               "vit_arcface": _cfg("arcface"), "solo": _cfg("arcface")}
    t = head_choice(runs, configs)
    assert list(t.index) == ["rn", "vit"]
    assert t.loc["rn", "val macro-F1, linear head"] == pytest.approx(0.54)
    assert t.loc["rn", "val macro-F1, ArcFace head"] == pytest.approx(0.44)
    assert t.loc["rn", "validation picks"] == "linear" and t.loc["rn", "agrees"]
    assert t.loc["vit", "validation picks"] == "arcface" and not t.loc["vit", "agrees"]


def test_head_choice_skips_a_pair_with_the_same_head():
    runs = {"a": _run(0.5), "a_arcface": _run(0.6)}
    assert head_choice(runs, {"a": _cfg("arcface"), "a_arcface": _cfg("arcface")}).empty


def test_head_note_says_which_roles_disagree():
    from fer_lib.report.teachers import head_note

    runs = {"rn": _run(0.54), "rn_arcface": _run(0.44), "vit": _run(0.30), "vit_arcface": _run(0.35)}
    configs = {"rn": _cfg("linear"), "rn_arcface": _cfg("arcface"), "vit": _cfg("linear"), "vit_arcface": _cfg("arcface")}
    t = head_choice(runs, configs)
    assert head_note(t, {"vit": "ViT Tiny"}) == ("Validation picks the other head for ViT Tiny: the parameter file "
                                                 "should name that one (1 of 2 roles agree).")
    assert head_note(t.loc[["rn"]], {}) == "The one role trained with both heads plays the head validation picks."
    both = head_choice({**runs, "vit_arcface": _run(0.2)}, configs)
    assert head_note(both, {}) == "Each of the 2 roles trained with both heads plays the head validation picks."
    assert "one head only" in head_note(head_choice({"a": _run(0.5)}, {"a": _cfg("arcface")}), {})


def test_head_choice_finds_a_linear_twin_of_an_arcface_role():
    runs = {"vit": _run(0.40), "vit_linear": _run(0.30)}
    t = head_choice(runs, {"vit": _cfg("arcface"), "vit_linear": _cfg("linear")})
    assert list(t.index) == ["vit"] and t.loc["vit", "validation picks"] == "arcface" and t.loc["vit", "agrees"]
