"""q_kangaroo's reference values for matrix.yaml's checks (``reference`` in expected_expr).

Runs inside each cell's Python (3.9+), standard library only.
"""

from __future__ import annotations


def partition_numbers(n: int) -> list[int]:
    """p(0..n-1) by Euler's pentagonal number recurrence."""
    p = [1] + [0] * max(n - 1, 0)
    for m in range(1, n):
        total, k = 0, 1
        while True:
            g1 = k * (3 * k - 1) // 2
            if g1 > m:
                break
            sign = 1 if k % 2 else -1
            total += sign * p[m - g1]
            g2 = k * (3 * k + 1) // 2
            if g2 <= m:
                total += sign * p[m - g2]
            k += 1
        p[m] = total
    return p[:n]
