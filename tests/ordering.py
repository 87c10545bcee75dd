"""Run the longest tests first, so that parallel workers (pytest-xdist, see scripts/test) finish together.

The suite is dominated by a few dozen lab tests and Molecule scenarios of one to eight minutes each. Started in
file order, the longest could come last and leave one worker busy while the other idles. This plugin sorts the
collected tests by their measured duration (``tests/durations.json``, seconds per test id, longest first); tests
not in the file keep their order after the measured ones. Tests that share an ``xdist_group`` (a module-scoped lab
or datastore) move together, weighted by their sum, so that their module fixture is set up once.

``pytest --store-durations`` writes the durations of the tests it ran into that file (merged with the entries
of tests it did not run). The file only orders the run: nothing is asserted about times.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

DURATIONS_FILE = Path(__file__).resolve().parent / "durations.json"
#: Tests shorter than this are left out of the file: they only fill the gaps at the end.
RECORD_MIN_S = 5.0


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store-durations",
        action="store_true",
        help=f"write each test's measured duration to {DURATIONS_FILE.name} (orders later runs, longest first)",
    )


def load_durations(path: Path = DURATIONS_FILE) -> dict[str, float]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return {str(name): float(seconds) for name, seconds in data.items()}


def base_id(nodeid: str) -> str:
    """A test id without the ``@group`` suffix that xdist's loadgroup mode appends."""
    return nodeid.rsplit("@", 1)[0]


def group_of(item: pytest.Item) -> str:
    """The xdist_group a test belongs to (it runs on one worker with its group), or its own id."""
    marker = item.get_closest_marker("xdist_group")
    if marker is not None:
        return "group:" + str(marker.args[0] if marker.args else marker.kwargs.get("name"))
    return base_id(item.nodeid)


def longest_first(items: list[pytest.Item], durations: dict[str, float]) -> list[pytest.Item]:
    """Groups by total measured duration, longest first; within a group, and among unmeasured ones, original order."""
    weight: dict[str, float] = defaultdict(float)
    first_index: dict[str, int] = {}
    keyed = []
    for index, item in enumerate(items):
        group = group_of(item)
        weight[group] += durations.get(base_id(item.nodeid), 0.0)
        first_index.setdefault(group, index)
        keyed.append((group, index, item))
    keyed.sort(key=lambda entry: (-weight[entry[0]], first_index[entry[0]], entry[1]))
    return [item for _, _, item in keyed]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items[:] = longest_first(items, load_durations())


class DurationRecorder:
    """Sums setup, call and teardown per test (on the xdist controller the workers' reports arrive here too)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[base_id(report.nodeid)] += report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(session.config, "workerinput"):  # an xdist worker: the controller writes the file
            return
        merged = load_durations()
        for name, seconds in self.seconds.items():
            if seconds >= RECORD_MIN_S:
                merged[name] = round(seconds, 1)
            else:
                merged.pop(name, None)
        ordered = dict(sorted(merged.items(), key=lambda entry: -entry[1]))
        DURATIONS_FILE.write_text(json.dumps(ordered, indent=1) + "\n", encoding="utf-8")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--store-durations"):
        config.pluginmanager.register(DurationRecorder(), "provision-duration-recorder")
