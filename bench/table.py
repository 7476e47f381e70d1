"""One row per figure, the same shape for every benchmark: what guardphone measured, the
peer measured in the same run and its value, the ratio, and the goal with whether it was
met. `make bench` prints all of them as one table."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Row:
    figure: str
    ours: float | str
    peer: str
    theirs: float | str | None
    goal: str = ""  # in words, e.g. "< 0.5 s" or "<= 1.5x peer"
    met: bool | None = None  # None: no goal for this figure (a fact, or context)

    @property
    def ratio(self) -> float | None:
        if isinstance(self.ours, int | float) and isinstance(self.theirs, int | float):
            return self.ours / self.theirs if self.theirs else None
        return None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


def _cell(value: float | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def render(rows: Iterable[Row]) -> str:
    head = f"{'figure':56} {'guardphone':>11} {'peer':>30} {'peer value':>11} {'ratio':>7}  goal"
    lines = [head, "-" * len(head)]
    for r in rows:
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
        verdict = {True: "met", False: "NOT met", None: ""}[r.met]
        goal = f"{r.goal} {verdict}".strip()
        lines.append(
            f"{r.figure:56} {_cell(r.ours):>11} {r.peer:>30} {_cell(r.theirs):>11} "
            f"{ratio:>7}  {goal}"
        )
    return "\n".join(lines)
