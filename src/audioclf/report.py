"""Stage feedback: a timer and the one-line summary every stage ends with."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field


@dataclass
class StageTimer:
    """``with StageTimer("prepare") as t: ...; t.summary("read ..., wrote ...")``."""

    stage: str
    start: float = field(default_factory=time.perf_counter)

    def __enter__(self) -> StageTimer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        return None

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
