"""Start the real `vivace` binary (the one `cargo test` builds for the integration
tests) for Python client tests."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def vivace_binary() -> Path:
    # As in the Rust tests: VIVACE_TEST_BINARY runs another build.
    if os.environ.get("VIVACE_TEST_BINARY"):
        return Path(os.environ["VIVACE_TEST_BINARY"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    binary = target / "debug" / "vivace"
    if not binary.exists():
        raise RuntimeError(f"{binary} is missing: run `cargo test` first (scripts/test does)")
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, root: Path, *args: str):
        self.root = root
        self.port = free_port()
        self.log = open(root / "server.log", "w")
        self.proc = subprocess.Popen(
            [str(vivace_binary()), "serve", "--listen", f"127.0.0.1:{self.port}",
             "--data-dir", str(root / "data"), *args],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 60
        while True:
            assert self.proc.poll() is None, (root / "server.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert time.time() < deadline, "vivace did not start"
                time.sleep(0.1)

    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=vivace dbname=vivace"

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()
        # A panic is not an answer, even where the server survived it.
        log = (self.root / "server.log").read_text()
        assert "panicked at" not in log, log


@pytest.fixture
def server():
    with tempfile.TemporaryDirectory(prefix="vivace-py-") as tmp:
        s = Server(Path(tmp))
        try:
            yield s
        finally:
            s.stop()


# --- A real PostgreSQL 15 holding the same rows, for differential tests ---------

PG_BIN = Path("/usr/lib/postgresql/15/bin")

# The rows every driver test reads, from Vivace (a CSV external table) and from
# PostgreSQL (a table loaded from the same file).
ITEMS_COLUMNS = "id BIGINT, name TEXT, qty INTEGER, price DOUBLE PRECISION, created DATE, active BOOLEAN"
ITEMS = [
    (1, "apple", 3, 0.5, "2024-01-01", True),
    (2, "pear", 0, 1.25, "2024-01-02", False),
    (3, "plum's", 12, 2.0, "2024-02-29", True),
    (4, "kiwi", 7, 0.75, "2024-03-01", False),
]


def write_items_csv(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "items.csv"
    lines = ["id,name,qty,price,created,active"]
    lines += [",".join(str(v).lower() if isinstance(v, bool) else str(v) for v in row) for row in ITEMS]
    path.write_text("\n".join(lines) + "\n")
    return path


class Postgres:
    """A throwaway PostgreSQL 15 cluster on a private port (trust auth on loopback).
    initdb refuses root, so the cluster belongs to the `postgres` user."""

    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.data = root / "pgdata"
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        subprocess.run(as_postgres + [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                                      "--auth=trust", "-E", "UTF8", "--locale=C"],
                       check=True, capture_output=True)
        subprocess.run(as_postgres + [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(root / "pg.log"),
                                      "-o", f"-p {self.port} -k {root} -c listen_addresses=127.0.0.1",
                                      "-w", "start"], check=True, capture_output=True)
        self.as_postgres = as_postgres
        self.psql("CREATE ROLE vivace SUPERUSER LOGIN")
        self.psql("CREATE DATABASE vivace OWNER vivace")

    def psql(self, sql: str, db: str = "postgres", user: str = "postgres"):
        subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
                        "-U", user, db, "-c", sql], check=True, capture_output=True)

    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=vivace dbname=vivace"

    def stop(self):
        subprocess.run(self.as_postgres + [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True)


# A view over `items`, on both servers of the pair.
ITEMS_VIEW = "CREATE VIEW big_items AS SELECT id, name FROM items WHERE qty > 5"


@pytest.fixture(scope="session")
def pair():
    """(vivace, postgres): both serving table `items` with the same rows, and
    the view `big_items` over it. Vivace runs read-only: the rows stay the
    same whatever a test tries."""
    with tempfile.TemporaryDirectory(prefix="vivace-pair-") as tmp:
        root = Path(tmp)
        os.chmod(root, 0o755)
        csv = write_items_csv(root / "items")
        os.chmod(root / "items", 0o755)
        os.chmod(csv, 0o644)
        vivace = Server(root, "--read-only")
        pg = Postgres(root / "pg")
        try:
            import psycopg2
            with psycopg2.connect(vivace.dsn()) as conn, conn.cursor() as cur:
                cur.execute(f"CREATE EXTERNAL TABLE items ({ITEMS_COLUMNS}) STORED AS CSV "
                            f"LOCATION '{csv.parent}/'")
                cur.execute(ITEMS_VIEW)
            pg.psql(f"CREATE TABLE items ({ITEMS_COLUMNS})", db="vivace", user="vivace")
            pg.psql(ITEMS_VIEW, db="vivace", user="vivace")
            pg.psql(f"COPY items FROM '{csv}' WITH (FORMAT csv, HEADER true)", db="vivace")
            yield vivace, pg
        finally:
            vivace.stop()
            pg.stop()
