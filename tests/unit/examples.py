"""How many examples a property test draws. `make test` (the whole suite, and CI) draws the full
count; `make test-unit`, the seconds-fast loop, sets `PSS_EXAMPLES=quick` and draws a quarter
(at least 25). A failure found either way is replayed first on the next run (.hypothesis/)."""

from __future__ import annotations

import os


def examples(full: int) -> int:
    return max(25, full // 4) if os.environ.get("PSS_EXAMPLES") == "quick" else full
