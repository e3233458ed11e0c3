from __future__ import annotations

import pytest

from frontend.bench.soak import main


def test_a_short_soak_samples_both_services(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--sessions", "2", "--minutes", "0.05", "--round-seconds", "1"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if " rss start " in line}
    assert set(rows) == {"backend", "frontend"}
    summary = next(line for line in out.splitlines() if line.startswith("frames sent"))
    sent, lost = summary.split(",")[0].split()[-1], summary.split(",")[1].split()[-1]
    # Frames dropped under load are the soak's figure to report, not this test's to judge.
    assert 0 <= int(lost) < int(sent)
    assert summary.endswith("failed 0")
