"""fer_lib: the library behind the report.

Split by concern, each sub-package small:

- ``fer_lib.data``     datasets (synthetic generator, FER2013 layouts, index CSV), caching, transforms, audit
- ``fer_lib.models``   ``create_model`` over timm, ArcFace head, CBAM-lite
- ``fer_lib.losses``   classification losses as pure functions with thin modules
- ``fer_lib.metrics``  classification and calibration metrics, temperature scaling, bootstrap
- ``fer_lib.engine``   the training loop (AMP, EMA, DDP, resume, early stopping)
- ``fer_lib.runs``     the run store: results cached by config
- ``fer_lib.tasks``    one function per kind of run (e.g. a FER teacher) on top of engine + store
- ``fer_lib.report``   section provenance, seed-beside-ours tables, the papermill/Jupyter Book pipeline
- ``fer_lib.plots``    matplotlib/seaborn figures
"""

__version__ = "0.3.0"

from .threads import share_cores as _share_cores  # noqa: E402 - before any submodule loads torch's OpenMP runtime

_share_cores()
