"""Figure helpers whose logic decides what a reader sees: the Pareto front of 08 and the confusion grid of 01."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import pandas as pd  # noqa: E402

from fer_lib.plots import confusion_grid, pareto_front  # noqa: E402


def test_pareto_front_hand_worked():
    # a is fastest; b is slower and worse than a (dominated); c is slower and better; d slower and worse than c
    cost = pd.Series({"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0})
    value = pd.Series({"a": 0.5, "b": 0.4, "c": 0.7, "d": 0.6})
    assert pareto_front(cost, value) == ["a", "c"]


def test_pareto_front_same_cost_keeps_only_the_better():
    cost = pd.Series({"slow_bad": 2.0, "slow_good": 2.0, "fast": 1.0})
    value = pd.Series({"slow_bad": 0.6, "slow_good": 0.8, "fast": 0.5})
    assert pareto_front(cost, value) == ["fast", "slow_good"]


def test_confusion_grid_wraps_rows_and_normalises_each_matrix():
    cms = {f"m{i}": np.array([[3, 1], [0, 4]]) * (i + 1) for i in range(4)}
    fig = confusion_grid(cms, ["a", "b"], ncols=3)
    axes = fig.axes
    assert len(axes) == 6  # two rows of three
    assert [ax.get_title() for ax in axes[:4]] == ["m0", "m1", "m2", "m3"]
    assert all(ax.axison for ax in axes[:4]) and not any(ax.axison for ax in axes[4:])
    # row-normalised (recall): 3/(3+1) = 0.75 in the top-left cell of every matrix, whatever its scale
    for ax in axes[:4]:
        assert ax.texts[0].get_text() == "0.75"
    plt.close(fig)


def test_training_curves_wrap_panels_and_give_the_legend_a_spare_panel():
    from fer_lib.plots import training_curves

    h = {f"run{i}": pd.DataFrame({"epoch": [1, 2], "loss": [2.0, 1.0], "f1": [0.1, 0.2], "m": [0.0, 0.3]})
         for i in range(4)}
    fig = training_curves(h, ("loss", "f1", "m"))
    axes = fig.axes
    assert len(axes) == 4 and [ax.get_ylabel() for ax in axes[:3]] == ["loss", "f1", "m"]
    assert not axes[3].axison and [t.get_text() for t in axes[3].get_legend().get_texts()] == list(h)
    assert all(ax.get_legend() is None for ax in axes[:3])  # no legend over a curve
    plt.close(fig)
    fig = training_curves(h, ("loss", "f1"))
    assert len(fig.axes) == 2 and len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    plt.close(fig)


def test_per_class_f1_bars_legend_sits_below_the_axes():
    from fer_lib.plots import per_class_f1_bars

    t = pd.DataFrame({"A": [0.5, 0.6], "B": [0.4, 0.7]}, index=pd.Index(["x", "y"], name="class"))
    fig = per_class_f1_bars(t)
    ax = fig.axes[0]
    leg = ax.get_legend()
    assert [x.get_text() for x in leg.get_texts()] == ["A", "B"]
    fig.canvas.draw()
    assert leg.get_window_extent().y1 < ax.get_window_extent().y0  # entirely below the plotting area
    plt.close(fig)


def test_confusion_heatmap_class_names_read_horizontally_on_the_y_axis():
    from fer_lib.plots import confusion_heatmap

    # seaborn draws y tick labels vertical unless they overlap that way: on a roomy axis they would stand on end
    classes = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    _, ax = plt.subplots(figsize=(9, 9))
    fig = confusion_heatmap(np.eye(7, dtype=int) * 5 + 1, classes, ax=ax)
    fig.canvas.draw()
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == classes
    assert all(t.get_rotation() == 0 for t in ax.get_yticklabels())
    assert all(t.get_rotation() == 45 for t in ax.get_xticklabels())
    plt.close(fig)


@pytest.mark.parametrize("diff", [False, True])
def test_confusion_heatmap_draws_what_seaborn_draws_without_drawing_the_figure(diff, monkeypatch):
    """Same cell colours, texts and text colours as ``sns.heatmap(annot=True)`` (the reference), for a recall matrix
    and a signed difference map (seaborn's ``center=0``); and the figure is never drawn while plotting."""
    import seaborn as sns
    from matplotlib.figure import Figure

    from fer_lib.plots import confusion_heatmap

    rng = np.random.default_rng(1)
    classes = [f"c{i}" for i in range(5)]
    cm = rng.integers(0, 50, (5, 5)) + np.eye(5, dtype=int) * 100
    data = rng.normal(size=(5, 5)) * 0.1 if diff else cm / cm.sum(1, keepdims=True)
    kw = dict(cmap="RdBu_r", center=0) if diff else dict(cmap="Blues", vmin=0, vmax=1)
    _, (ref_ax, ax) = plt.subplots(1, 2)
    sns.heatmap(data, annot=True, fmt=".2f", cbar=False, ax=ref_ax, annot_kws={"fontsize": 7}, **kw)
    draws = []
    monkeypatch.setattr(Figure, "draw", lambda self, renderer: draws.append(renderer))
    confusion_heatmap(data if diff else cm, classes, ax=ax, diff=diff)
    assert not draws
    np.testing.assert_allclose(ax.collections[-1].to_rgba(ax.collections[-1].get_array()),
                               ref_ax.collections[-1].to_rgba(ref_ax.collections[-1].get_array()), atol=1e-12)
    assert [(t.get_text(), t.get_color()) for t in ax.texts] == [(t.get_text(), t.get_color()) for t in ref_ax.texts]
    assert [t.get_text() for t in ax.get_yticklabels()] == classes and ax.get_ylim() == (5, 0)
    plt.close("all")
