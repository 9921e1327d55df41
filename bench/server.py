"""`puja serve` (gunicorn) as a subprocess on a free loopback port, stopped for sure when done."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import requests

from bench.common import free_port

PUJA = str(Path(sys.executable).with_name("puja"))


class ServerProcess:
    def __init__(
        self,
        workdir: Path,
        *,
        database_url: str | None,
        bootstrap_token: str,
        workers: int,
        threads: int,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "server.log"
        env = {
            **os.environ,
            "PUJA_DATA_DIR": str(workdir / "var"),
            "PUJA_BOOTSTRAP_ADMIN_TOKEN": bootstrap_token,
            "PUJA_LOG_LEVEL": "WARNING",
        }
        env.pop("PUJA_DATABASE_URL", None)
        if database_url:
            env["PUJA_DATABASE_URL"] = database_url
        self.command = [
            PUJA,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(workers),
            "--threads",
            str(threads),
        ]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        # A session of its own: a Ctrl-C in the terminal reaches only the bench, which stops the server.
        self.process = subprocess.Popen(
            self.command, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited at start-up:\n{self.log_tail()}")
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.1)  # the port is not open yet
        raise RuntimeError(f"the server did not answer /healthz in {timeout} s:\n{self.log_tail()}")

    def projection_lag(self) -> int | None:
        try:
            items = requests.get(self.url + "/api/v1/projections", timeout=10).json()["items"]
        except (requests.RequestException, ValueError, KeyError):
            return None
        return max((int(p["lag"]) for p in items), default=0)

    def wait_projections(self, timeout: float = 300) -> float:
        """Wait until the projections have applied everything; returns the seconds it took."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.projection_lag() == 0:
                break
            time.sleep(0.2)
        return time.monotonic() - start

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # gunicorn: graceful stop of its workers
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # the session this process leads
                self.process.wait(timeout=10)
        self._log.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass
class Served:
    """A `puja serve` for the HTTP measurements, and the tokens its clients send."""

    server: ServerProcess
    bootstrap: str  # the first-run admin token, for registering the innovations
    operator: str
    evaluator: str

    def catch_up(self, timeout: float = 120) -> tuple[int, float]:
        """Have both projections apply everything stored so far; returns how many events the further one had
        left, and the seconds it took. A read with `min_position` wakes the runner at once (no gathering
        pause), so the time is the work left to do."""
        start = time.monotonic()
        url = self.server.url
        items = requests.get(url + "/api/v1/projections", timeout=10).json()["items"]
        head = max(int(p["position"]) + int(p["lag"]) for p in items)
        lag = max(int(p["lag"]) for p in items)
        headers = {"Authorization": f"Bearer {self.operator}"}  # an admin: reads the audit log too
        for view in ("/api/v1/replications", "/api/v1/audit/events"):
            while True:
                answer = requests.get(f"{url}{view}?limit=1&min_position={head}", headers=headers, timeout=30)
                if answer.status_code == 200:
                    break
                if answer.status_code != 503 or time.monotonic() - start > timeout:
                    raise RuntimeError(
                        f"{view} min_position={head}: {answer.status_code} {answer.text[:200]}"
                    )
        return lag, time.monotonic() - start


def serve(workdir: Path, *, database_url: str | None, workers: int, threads: int) -> Served:
    """Tables, migrations and the clients' tokens made before the workers start (as `puja tokens` does), then
    the server started (not yet waited for: `wait_ready`)."""
    from app.runtime import Runtime
    from app.settings import Settings

    runtime = Runtime.open(Settings(data_dir=workdir / "var", database_url=database_url))
    try:
        operator = runtime.tokens.create("bench-operator", "admin")
        evaluator = runtime.tokens.create("bench-evaluator", "evaluator")
    finally:
        runtime.close()
    bootstrap = "puja_bench_" + secrets.token_urlsafe(16)
    server = ServerProcess(
        workdir, database_url=database_url, bootstrap_token=bootstrap, workers=workers, threads=threads
    )
    return Served(server, bootstrap, operator, evaluator)
