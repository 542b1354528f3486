"""The command-line front ends: ``fer-train`` (``train``), ``fer-runs`` (``runs``) and ``fer-parse`` (``parse``);
``fer-report`` is ``fer_lib.report.pipeline``. Each parses its arguments and calls the layers below; none holds logic
another command needs."""
