"""A bare ``pytest`` without PostgreSQL or Chromium skips the tests that need them (they fail
instead when ``CI`` is set, as ``scripts/test.sh`` sets it): the summary says so loudly, naming
what was skipped and why, so a half-run suite is never mistaken for the whole one."""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    reasons: dict[str, int] = {}
    for report in skipped:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    terminalreporter.write_sep("!", f"{len(skipped)} TESTS SKIPPED: this run is NOT the full suite")
    for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"  {count:5d} skipped: {reason}", red=True, bold=True)
    terminalreporter.write_line(
        "  Run `sh scripts/test.sh` (installs PostgreSQL and Chromium, never skips).", bold=True
    )
