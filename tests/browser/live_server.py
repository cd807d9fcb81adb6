"""``tokenledger serve`` as a child process on a free loopback port, for a whole test session.

Unlike the short-lived servers of ``test_api_serve``, this one answers many pages: its
stderr is read all along by a thread (a full pipe would block the server), and the log is
kept so that a failing test can show what the server said.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from test_api_serve import STARTUP_TIMEOUT, free_port


class LiveServer:
    def __init__(self, database_url: str, keys_file: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "TOKENLEDGER_KEYS_FILE": str(keys_file)}
        env.pop("TOKENLEDGER_TOKEN", None)
        # The installed console script, as an operator would run it.
        command = [str(Path(sys.executable).with_name("tokenledger")), "--db", database_url]
        command += ["serve", "--port", str(self.port), "--no-access-log"]
        self.process = subprocess.Popen(
            command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, text=True
        )
        self.log: list[str] = []
        self._started = threading.Event()
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        self._started.wait(STARTUP_TIMEOUT)
        if self.process.poll() is not None or "Application startup complete" not in self.output():
            self.process.kill()
            self._reader.join(5)
            assert self.process.stderr is not None
            self.process.stderr.close()
            raise AssertionError("the server did not start:\n" + self.output())

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            if "Application startup complete" in line:
                self._started.set()
        # The server ended (or never started): nobody waits any longer.
        self._started.set()

    def output(self) -> str:
        return "".join(self.log)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._reader.join(5)
            assert self.process.stderr is not None
            self.process.stderr.close()
