"""One plotting style for the whole report."""
import matplotlib as mpl
import seaborn as sns


def set_style() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)
    mpl.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "figure.autolayout": True,
                         "axes.titleweight": "bold"})
