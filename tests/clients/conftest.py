"""Start the real `vivace` binary (built by `cargo test`) for Python client tests."""

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def vivace_binary() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    binary = target / "debug" / "vivace"
    if not binary.exists():
        raise RuntimeError(f"{binary} is missing: run `cargo build` first (scripts/test does)")
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.log = open(root / "server.log", "w")
        self.proc = subprocess.Popen(
            [str(vivace_binary()), "serve", "--listen", f"127.0.0.1:{self.port}",
             "--data-dir", str(root / "data")],
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


@pytest.fixture
def server():
    with tempfile.TemporaryDirectory(prefix="vivace-py-") as tmp:
        s = Server(Path(tmp))
        try:
            yield s
        finally:
            s.stop()
