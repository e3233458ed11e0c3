from __future__ import annotations

import uuid
from pathlib import Path

from orchestrator.bench.startup import Stack, local_round
from orchestrator.bench.startup_report import LOCAL, Results


def test_local_scenario_measures_a_positive_time(tmp_path: Path) -> None:
    # No src/python/frontend under the repository root given: the services come from sys.path.
    project = f"bench-test-{uuid.uuid4().hex[:8]}"
    stack = Stack(project, tmp_path, tmp_path, "unused", None)
    results = Results()
    sample = local_round(stack, results)
    assert sample.seconds > 0
    assert sample.reported_s is not None and sample.reported_s > 0
    assert results.samples[LOCAL] == [sample]
