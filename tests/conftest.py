"""Shared fixtures: real servers, started on first use, stopped at the end of the session."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the helpers: `from support import ...`

from support import services

REPO = Path(__file__).resolve().parent.parent
SIM_DIR = REPO / "devices" / "sim"
SHARED_SNMPREC = REPO.parent / "shared" / "data" / "snmprec"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", type=float, default=None, metavar="MINUTES",
                     help="run the soak scenario for this many minutes (tests marked soak)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--soak") is None:
        skip = pytest.mark.skip(reason="soak runs only with --soak MINUTES (see docs/operations.md)")
        for item in items:
            if "soak" in item.keywords:
                item.add_marker(skip)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """One line with how long each test server took to become ready (CI time budget)."""
    times = services.start_times()
    if times:
        parts = ", ".join(f"{name} {seconds:.2f}s" for name, seconds in times)
        terminalreporter.write_line(f"test servers started: {parts}")


@pytest.fixture(scope="session")
def postgres() -> Iterator[services.Postgres]:
    pg = services.Postgres()
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[services.Mosquitto]:
    m = services.Mosquitto()
    yield m
    m.stop()


@pytest.fixture(scope="session")
def mosquitto_factory() -> Iterator:
    made: list[services.Mosquitto] = []

    def make(**kwargs) -> services.Mosquitto:
        m = services.Mosquitto(**kwargs)
        made.append(m)
        return m

    yield make
    for m in made:
        m.stop()


@pytest.fixture(scope="session")
def snmpd() -> Iterator[services.Snmpd]:
    s = services.Snmpd()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def snmpd_factory() -> Iterator:
    made: list[services.Snmpd] = []

    def make(**kwargs) -> services.Snmpd:
        s = services.Snmpd(**kwargs)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


@pytest.fixture(scope="session")
def snmpsim_factory() -> Iterator:
    made: list[services.Snmpsim] = []

    def make(data_dir: Path) -> services.Snmpsim:
        s = services.Snmpsim(Path(data_dir))
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


@pytest.fixture(scope="session")
def snmpsim(snmpsim_factory) -> services.Snmpsim:
    """snmpsim serving the project's own recordings in devices/sim."""
    return snmpsim_factory(SIM_DIR)


@pytest.fixture(scope="session")
def shared_snmprec() -> Path:
    """The real device captures (LibreNMS test fixtures), kept outside the project in
    ../shared/data/snmprec; the tests using them skip when the folder is absent."""
    if not SHARED_SNMPREC.is_dir():
        pytest.skip(f"the real captures in ../shared/data/snmprec are absent ({SHARED_SNMPREC})")
    return SHARED_SNMPREC


@pytest.fixture(scope="session")
def victoriametrics() -> Iterator[services.VictoriaMetrics]:
    vm = services.VictoriaMetrics()
    yield vm
    vm.stop()


@pytest.fixture(scope="session")
def influxdb1() -> Iterator[services.InfluxDB1]:
    db = services.InfluxDB1()
    yield db
    db.stop()
