"""The driver matrix: each client test runs on the pinned release of its driver
and on the newest one (SQLAlchemy on 1.4, 2.0 and 2.1). A pinned Python driver
is the one tests/requirements.txt installs into this interpreter; every other
Python release lives in a `pip --target` directory of its own, which
scripts/test installs and names by an environment variable, and which a child
Python puts first on its PYTHONPATH. An unset variable fails the test rather
than skipping it."""

import importlib.metadata
import os
from pathlib import Path
from typing import NamedTuple

import pytest

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE.parent / "requirements.txt"


def pinned_version(distribution: str) -> str:
    """The version tests/requirements.txt pins `distribution` to."""
    for line in REQUIREMENTS.read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() == distribution:
            return version.strip()
    raise KeyError(f"{distribution} is not pinned in {REQUIREMENTS}")


class PythonDriver(NamedTuple):
    distribution: str  # as PyPI names it: psycopg2-binary, asyncpg, sqlalchemy
    label: str  # the test id: "pinned", "newest", or a SQLAlchemy series
    variable: str | None  # names its --target directory; None: this interpreter's own

    def directory(self) -> str | None:
        if self.variable is None:
            return None
        path = os.environ.get(self.variable)
        assert path, f"set {self.variable} to the directory holding {self.distribution} {self.label} (scripts/test does)"
        assert Path(path).is_dir(), f"{self.variable}={path} is not a directory (scripts/test installs it)"
        return path

    def version(self) -> str:
        """The version installed where this driver is loaded from."""
        path = self.directory()
        if path is None:
            return pinned_version(self.distribution)
        found = [d.version for d in importlib.metadata.distributions(name=self.distribution, path=[path])]
        assert len(found) == 1, f"{path} holds {self.distribution} {found}"
        return found[0]

    def env(self, *extra_paths: str) -> dict:
        """This process's environment, with PYTHONPATH leading to this driver first."""
        env = dict(os.environ)
        paths = [p for p in [self.directory(), *extra_paths] if p]
        if paths:
            env["PYTHONPATH"] = os.pathsep.join(paths)
        return env


def params(*drivers: PythonDriver):
    return [pytest.param(d, id=f"{d.distribution}-{d.label}") for d in drivers]


PSYCOPG2 = params(PythonDriver("psycopg2-binary", "pinned", None),
                  PythonDriver("psycopg2-binary", "newest", "VIVACE_PSYCOPG2_NEWEST"))
ASYNCPG = params(PythonDriver("asyncpg", "pinned", None),
                 PythonDriver("asyncpg", "newest", "VIVACE_ASYNCPG_NEWEST"))
SQLALCHEMY = params(PythonDriver("sqlalchemy", "1.4", "VIVACE_SQLALCHEMY14"),
                    PythonDriver("sqlalchemy", "2.0", None),
                    PythonDriver("sqlalchemy", "2.1", "VIVACE_SQLALCHEMY21"))

# node-postgres: one npm project per release, each with its own package-lock.json
# (scripts/test runs `npm ci` in both); probe.js loads `pg` from the one named.
NODE_PROJECTS = [pytest.param(HERE / "node", id="pg-pinned"), pytest.param(HERE / "node-newest", id="pg-newest")]

# pgjdbc: Debian's libpostgresql-jdbc-java, and the newest jar from Maven Central
# that scripts/test fetches (checked against its SHA-256) and names by VIVACE_PGJDBC_NEWEST.
DEBIAN_PGJDBC = Path("/usr/share/java/postgresql.jar")
PGJDBC = [pytest.param(None, id="pgjdbc-debian"), pytest.param("VIVACE_PGJDBC_NEWEST", id="pgjdbc-newest")]


def pgjdbc_jar(variable: str | None) -> Path:
    if variable is None:
        assert DEBIAN_PGJDBC.exists(), "install libpostgresql-jdbc-java (scripts/test does)"
        return DEBIAN_PGJDBC
    path = os.environ.get(variable)
    assert path, f"set {variable} to the newest pgjdbc jar (scripts/test fetches it)"
    assert Path(path).is_file(), f"{variable}={path} is missing (scripts/test fetches it)"
    return Path(path)


def jar_version(jar: Path) -> str:
    """Implementation-Version from the jar's manifest."""
    import zipfile

    manifest = zipfile.ZipFile(jar).read("META-INF/MANIFEST.MF").decode()
    for line in manifest.splitlines():
        if line.startswith("Implementation-Version:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{jar} names no Implementation-Version")
