"""The sweep's makespan simulation against hand-worked schedules."""
from __future__ import annotations

import pytest

from fer_lib.launch.makespan import simulate


def test_a_hand_worked_graph_on_one_two_and_many_gpus():
    """A (2 h) -> C (1 h) and D (3 h) independent, B (1 h) independent.
    1 GPU: everything in sequence, 7 h. Unlimited GPUs: the longest chain, max(A + C, D, B) = 3 h.
    2 GPUs, longest remaining chain first: at 0 start D (chain 3) and A (chain 3); A ends at 2, C starts (ends 3);
    D ends at 3, B starts (ends 4): 4 h. (Starting B first would give 2 + ... = 4 or more; here it is exactly 4.)"""
    durations = {"A": 2.0, "B": 1.0, "C": 1.0, "D": 3.0}
    reads = {"C": ["A"]}
    assert simulate(durations, reads, 1) == pytest.approx(7.0)
    assert simulate(durations, reads, 2) == pytest.approx(4.0)
    assert simulate(durations, reads, 64) == pytest.approx(3.0)


def test_dependencies_order_runs_and_outside_runs_are_ignored():
    """T (4 h) is read by S1 and S2 (1 h each); X is not in the sweep (already stored). On 2 GPUs: T alone for 4 h,
    then S1 and S2 side by side: 5 h; on 1 GPU 6 h."""
    durations = {"T": 4.0, "S1": 1.0, "S2": 1.0}
    reads = {"S1": ["T", "X"], "S2": ["T"]}
    assert simulate(durations, reads, 2) == pytest.approx(5.0)
    assert simulate(durations, reads, 1) == pytest.approx(6.0)
    with pytest.raises(ValueError):
        simulate(durations, reads, 0)
