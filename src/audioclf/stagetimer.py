"""Stage feedback: a timer and the one-line summary every stage ends with."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field


@dataclass
class StageTimer:
    """``t = StageTimer("prepare")`` when the stage starts; ``t.summary(...)`` when it ends."""

    stage: str
    start: float = field(default_factory=time.perf_counter)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def summary(self, read: str, wrote: str, extra: str = "") -> str:
        line = f"[{self.stage}] read {read}; wrote {wrote}"
        if extra:
            line += f"; {extra}"
        line += f" ({self.seconds:.1f} s)"
        print(line, file=sys.stdout, flush=True)
        return line
