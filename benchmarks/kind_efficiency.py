"""Per run kind: how close a training step comes to the CPU's limit, and what the project's pipeline costs on top.

    python benchmarks/kind_efficiency.py [--profile real-cpu] [--train-limit 2048] [--write-docs]
        [--set segmenter:augment.batched=true ...]

For the first run of each trainable kind in the profile's plan (its data must be on this machine; a student from
scratch, so no teacher is trained first) it measures, on this CPU with the threads torch uses:

- **step / peak**: a plain training step (forward, a loss, backward, SGD; ``train_rates.py``'s) of the run's model at
  its batch size on random inputs, its FLOPs counted by ``torch.utils.flop_counter.FlopCounterMode``, as achieved
  GFLOP/s over the CPU's measured fp32 peak: the best of a 2048 x 2048 matmul and 3 x 3 convolutions of ResNet
  shapes in both memory layouts (``peak_gflops``; the convolutions run on oneDNN, the matmul on the BLAS, and on
  AMD EPYC the convolutions are the faster) -- how near the hardware the model's own arithmetic runs;
- **pipeline / plain**: the kind's own trainer (``RunKind.train``: data loading, augmentation, the task's losses, the
  LR schedule) for ``--epochs`` epochs (2), the last one timed, on the run's data (the training split capped at ``--train-limit`` samples where the
  loader allows, FER's ``limit``), as training samples per second of the epoch's training steps (``train_seconds``
  in ``history.csv``), over the plain step's rate on the same model and batch. The target is >= 0.9. The rest of
  the epoch, work the plain loop does not do (the task's end-of-epoch work: 07's probes and test curve, 04/05's
  teacher-cache writes; then validation), is printed as its share of the epoch, and the run's wall time (model
  build, test evaluation, writing the run) too.

``--set KIND:FIELD.PATH=VALUE`` (YAML value) measures a kind's run with one config field changed, e.g. the segmenter's
joint augmentation batched on the device. Prints one row per kind and writes ``benchmarks/results/kind_efficiency.json``; ``--write-docs`` puts the table into
``docs/measurements.md`` and the README's performance section, between their ``kind-efficiency`` markers.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch.utils.flop_counter import FlopCounterMode

from fer_lib.launch.plan import plan_profile
from fer_lib.runs import RunStore
from fer_lib.runs.provenance import cpu_model, now
from fer_lib.tasks.kinds import get_run_kind
from fer_lib.tasks.sections import load_data, train_run
from train_rates import matmul_gflops, samples_per_second  # this folder's script: the same matmul and step

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "kind_efficiency.json"
DOCS = ROOT / "docs" / "measurements.md"
README = ROOT / "README.md"
MARKERS = ("<!-- kind-efficiency: begin (benchmarks/kind_efficiency.py --write-docs) -->",
           "<!-- kind-efficiency: end -->")


#: (channels, height = width, batch) of the 3 x 3 convolutions ``peak_gflops`` times: ResNet stages at 48 px
CONV_SHAPES = ((64, 24, 128), (128, 12, 128), (256, 6, 128), (256, 14, 64))


def conv_gflops(channels: int, size: int, batch: int, channels_last: bool, repeats: int = 10) -> float:
    """fp32 GFLOP/s of a 3 x 3, stride-1 convolution's forward (2 x the multiply-adds)."""
    memory = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(batch, channels, size, size).contiguous(memory_format=memory)
    w = torch.randn(channels, channels, 3, 3).contiguous(memory_format=memory)
    with torch.no_grad():
        F.conv2d(x, w, padding=1)
        t0 = time.perf_counter()
        for _ in range(repeats):
            F.conv2d(x, w, padding=1)
    return 2 * batch * channels ** 2 * 9 * size ** 2 * repeats / (time.perf_counter() - t0) / 1e9


def peak_gflops() -> tuple[float, float, float]:
    """(peak, matmul, best convolution) fp32 GFLOP/s of this CPU with torch's threads: the peak is the larger."""
    matmul = matmul_gflops()
    conv = max(conv_gflops(*shape, cl) for shape in CONV_SHAPES for cl in (False, True))
    return max(matmul, conv), matmul, conv


def step_flops(model, inputs) -> float:
    """FLOPs of one forward and backward pass of ``model`` on ``inputs`` (torch's FLOP counter)."""
    model.train()
    with FlopCounterMode(display=False) as counter:
        model(inputs).float().logsumexp(1).mean().backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def plain_step_rate(spec, batch: int, steps: int) -> tuple[float, float]:
    """(samples per second, FLOPs per step) of a plain training step of ``spec``'s model on a random batch: the
    same step ``train_rates.py`` times for the makespan."""
    spec = spec.with_random_weights()
    model, inputs = spec.build(), spec.example_batch(batch)
    flops = step_flops(model, inputs)
    return samples_per_second(model, inputs, batch, steps), flops


def one_epoch(planned, train_limit: int, epochs: int = 2):
    """(training samples, the last epoch's training seconds, its seconds with validation, the run's wall seconds) of
    the kind's own trainer run for ``epochs`` epochs in a scratch store: the last one, warm (the first pays for
    creating the kernels of every shape once)."""
    cfg = planned.config
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=epochs))
    params = dict(planned.data_params)
    if "limit" in {f.name for f in dataclasses.fields(type(cfg.data))}:  # the FER loader caps splits
        params["limit"] = {"train": train_limit, "val": train_limit // 8, "test": train_limit // 8}
    data = load_data(planned.kind, params)
    n_train = int((np.asarray(data.split) == "train").sum())
    with tempfile.TemporaryDirectory() as scratch:
        t0 = time.perf_counter()
        run = train_run(planned.kind, cfg, data, store=RunStore(scratch, published=[]), progress=False)
        last = run.history.iloc[-1]
        return n_train, float(last["train_seconds"]), float(last["seconds"]), time.perf_counter() - t0


def with_setting(cfg, path: str, value):
    """``cfg`` (a frozen config dataclass) with the field at dotted ``path`` set to ``value``."""
    head, _, rest = path.partition(".")
    if head not in {f.name for f in dataclasses.fields(cfg)}:
        raise SystemExit(f"--set: {type(cfg).__name__} has no field {head!r}; expected one of "
                         f"{', '.join(f.name for f in dataclasses.fields(cfg))}")
    return dataclasses.replace(cfg, **{head: with_setting(getattr(cfg, head), rest, value) if rest else value})


def parse_settings(items: list[str]) -> dict[str, list[tuple[str, object]]]:
    """``KIND:FIELD.PATH=VALUE`` items -> {kind: [(path, value)]}; the value read as YAML."""
    out: dict[str, list[tuple[str, object]]] = {}
    for item in items:
        kind, sep, rest = item.partition(":")
        path, eq, value = rest.partition("=")
        if not (sep and eq and path):
            raise SystemExit(f"--set {item!r}: expected KIND:FIELD.PATH=VALUE, e.g. segmenter:augment.batched=true")
        out.setdefault(kind, []).append((path, yaml.safe_load(value)))
    return out


def first_run_per_kind(profile: str) -> dict:
    """{kind: the first planned run of it whose data are here}; a student that reads no teacher."""
    store = RunStore(published=[])
    picks = {}
    for planned in plan_profile(profile, store=store).values():
        kind = get_run_kind(planned.kind)
        if planned.kind in picks or not kind.trains or planned.key is None or kind.depends_on(planned.config):
            continue
        picks[planned.kind] = planned
    return picks


def write_docs(rows: list[dict], header: str) -> None:
    """The table, between the markers, into docs/measurements.md and the README's performance section."""
    table = [header, "", "| kind | run | model | batch | step GFLOP/s | step / peak | pipeline / plain | "
                         "validation and end-of-epoch share |", "|---|---|---|---|---|---|---|---|"]
    table += [f"| {r['kind']} | {r['run']}{''.join(f', {x}' for x in r.get('set', []))} | {r['model']} | {r['batch']} | {r['step_gflops']:.1f} | "
              f"{r['step_over_peak']:.2f} | {r['pipeline_over_plain']:.2f} | {r['validation_share']:.2f} |"
              for r in rows]
    begin, end = MARKERS
    block = "\n".join([begin, *table, end])
    for path, heading in ((DOCS, "## Training efficiency per run kind"), (README, "## Performance")):
        text = path.read_text()
        if begin in text:
            text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
        else:
            text = text.rstrip("\n") + f"\n\n{heading}\n\n" + block + "\n"
        path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="real-cpu")
    ap.add_argument("--train-limit", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=20, help="plain training steps timed (after one warm-up step)")
    ap.add_argument("--epochs", type=int, default=2, help="epochs of the kind's own trainer; the last one is timed")
    ap.add_argument("--kinds", nargs="+", help="measure only these run kinds (default: every trainable kind)")
    ap.add_argument("--set", action="append", default=[], metavar="KIND:FIELD.PATH=VALUE",
                    help="change one config field of a kind's run, e.g. segmenter:augment.batched=true (repeatable)")
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--docs-only", action="store_true",
                    help=f"write the docs' table from the last measurement ({OUT.relative_to(ROOT)}); measure nothing")
    a = ap.parse_args()
    if a.docs_only:
        result = json.loads(OUT.read_text())
        write_docs(result["kinds"], header(result))
        print(f"table of {result['measured'][:10]} written into {DOCS} and {README}")
        return
    settings = parse_settings(a.set)
    torch.manual_seed(0)
    gflops, matmul, conv = peak_gflops()
    rows = []
    for kind, planned in first_run_per_kind(a.profile).items():
        if a.kinds and kind not in a.kinds:
            continue
        for path, value in settings.get(kind, []):
            planned = dataclasses.replace(planned, config=with_setting(planned.config, path, value))
        spec = get_run_kind(kind).models(planned.config)[0]
        batch = planned.config.train.batch_size
        plain_rate, flops = plain_step_rate(spec, batch, a.steps)
        n_train, train_seconds, seconds, wall = one_epoch(planned, a.train_limit, a.epochs)
        step_gflops = flops / batch * plain_rate / 1e9
        rows.append({"kind": kind, "run": planned.label, "model": spec.arch, "batch": batch,
                     "set": [f"{p}={v}" for p, v in settings.get(kind, [])],
                     "plain_samples_per_s": plain_rate, "pipeline_samples_per_s": n_train / train_seconds,
                     "train_samples": n_train, "train_seconds": train_seconds, "epoch_seconds": seconds,
                     "validation_share": 1 - train_seconds / seconds, "run_wall_seconds": wall,
                     "step_gflops": step_gflops, "step_over_peak": step_gflops / gflops,
                     "step_over_matmul": step_gflops / matmul,
                     "pipeline_over_plain": n_train / train_seconds / plain_rate})
        r = rows[-1]
        print(f"{kind:>10} {planned.label + ''.join(f', {x}' for x in r['set']):<34} {spec.arch:>24} batch {batch:>3}: step {step_gflops:6.1f} GFLOP/s "
              f"= {r['step_over_peak']:.2f} of peak; pipeline {r['pipeline_samples_per_s']:7.1f} samples/s = "
              f"{r['pipeline_over_plain']:.2f} of plain ({n_train} training samples in {train_seconds:.1f} s; validation "
              f"{r['validation_share']:.0%} of the epoch; run {wall:.1f} s)",
              flush=True)
    result = {"cpu": cpu_model(), "threads": torch.get_num_threads(), "torch": torch.__version__, "measured": now(),
              "profile": a.profile, "set": a.set, "epochs": a.epochs, "plain_steps": a.steps, "cpu_peak_gflops": gflops, "cpu_matmul_gflops": matmul,
              "cpu_conv_gflops": conv, "kinds": rows}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"CPU peak {gflops:.0f} GFLOP/s (matmul {matmul:.0f}, 3 x 3 convolution {conv:.0f}) -> {OUT}")
    if a.write_docs:
        write_docs(rows, header(result))
        print(f"table written into {DOCS} and {README}")


def header(result: dict) -> str:
    """The sentence above the docs' table: what was measured, where and when."""
    return (f"`benchmarks/kind_efficiency.py --profile {result['profile']}` on {result['cpu']}, {result['threads']} "
            f"threads, torch {result['torch']}, {result['measured'][:10]}: CPU fp32 peak "
            f"{result['cpu_peak_gflops']:.0f} GFLOP/s, the best of a 2048 x 2048 matmul "
            f"({result['cpu_matmul_gflops']:.0f}) and 3 x 3 convolutions ({result['cpu_conv_gflops']:.0f}). "
            f"Pipeline = the kind's own trainer, the training steps of "
            f"its epoch {result.get('epochs', 1)}, warm (data loading, augmentation, losses, schedule); plain = "
            f"{result.get('plain_steps', 5)} steps of forward, backward and SGD on a random batch; the "
            "target is pipeline / plain >= 0.9. The rest of the epoch, which the plain loop does not do (validation and "
            "the task's end-of-epoch work: 07's probes and test curve), is its own column.")


if __name__ == "__main__":
    main()
