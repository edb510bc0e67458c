"""`netmgr run` as a real process: sd_notify, /healthz, SIGHUP reload, SIGTERM within 10 s."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NotifyListener:
    """The systemd side of sd_notify: a datagram socket collecting messages."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.path = path
        self.messages: list[str] = []

    def expect(self, pred, timeout: float, what: str) -> str:
        """Read the socket until a message matches ``pred`` and return it (every message read is
        kept in ``messages``); fail naming ``what`` at the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                msg = self.sock.recv(65536).decode()
            except TimeoutError:
                break
            self.messages.append(msg)
            if pred(msg):
                return msg
        raise AssertionError(f"no sd_notify message {what} within {timeout}s; got {self.messages}")


def write_config(path, state_dir, port, log_level="info"):
    path.write_text(
        f'[daemon]\nstate_dir = "{state_dir}"\nlog_level = "{log_level}"\n'
        f'[api]\nport = {port}\n[mqtt]\nenabled = false\n[snmp]\nenabled = false\n',
        encoding="utf-8",
    )


@pytest.fixture
def daemon_env(tmp_path):
    listener = NotifyListener(str(tmp_path / "notify.sock"))
    env = dict(os.environ, NOTIFY_SOCKET=listener.path, WATCHDOG_USEC="1000000")
    env.pop("NETMGR_CONFIG", None)
    yield listener, env
    listener.sock.close()


def start(cfg, env, log):
    return subprocess.Popen(
        [sys.executable, "-m", "netmgr", "--config", str(cfg), "run"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )


def test_run_notify_health_reload_and_sigterm(tmp_path, daemon_env):
    listener, env = daemon_env
    port = free_tcp_port()
    cfg = tmp_path / "netmgr.toml"
    write_config(cfg, tmp_path / "state", port)
    with open(tmp_path / "daemon.log", "w") as log:
        proc = start(cfg, env, log)
        try:
            listener.expect(lambda m: "READY=1" in m, 30, "READY=1")
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()
            assert health["services"]["api"]["state"] == "running"
            listener.expect(lambda m: m == "WATCHDOG=1", 3, "WATCHDOG=1")

            write_config(cfg, tmp_path / "state", port, log_level="debug")
            proc.send_signal(signal.SIGHUP)
            listener.expect(lambda m: m.startswith("RELOADING=1"), 5, "RELOADING=1")
            listener.expect(lambda m: "READY=1" in m and "STATUS=reloaded" in m, 5, "READY after reload")

            cfg.write_text("[snmp]\nintervall = 3\n", encoding="utf-8")
            proc.send_signal(signal.SIGHUP)
            listener.expect(lambda m: "reload failed" in m, 5, "reload failed status")
            assert proc.poll() is None
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200

            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            listener.expect(lambda m: m == "STOPPING=1", 5, "STOPPING=1")
            assert proc.wait(timeout=10) == 0
            assert time.monotonic() - t0 < 10
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    logtext = (tmp_path / "daemon.log").read_text()
    assert "reload refused, keeping the running config" in logtext
    assert "snmp.intervall: unknown key" in logtext


def test_run_refuses_bad_config_and_starts_nothing(tmp_path, daemon_env):
    listener, env = daemon_env
    cfg = tmp_path / "netmgr.toml"
    state = tmp_path / "state"
    cfg.write_text(f'[daemon]\nstate_dir = "{state}"\nlog_levl = "x"\n[api]\nport = "x"\n')
    r = subprocess.run([sys.executable, "-m", "netmgr", "--config", str(cfg), "run"],
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert f"{cfg}: daemon.log_levl: unknown key" in r.stderr
    assert f"{cfg}: api.port: " in r.stderr
    assert not state.exists()
    listener.sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        listener.sock.recv(100)


def test_run_names_a_taken_port(tmp_path, daemon_env):
    """The API port already in use: the api service fails with a clear line and is retried."""
    _listener, env = daemon_env
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        cfg = tmp_path / "netmgr.toml"
        write_config(cfg, tmp_path / "state", port)
        with open(tmp_path / "daemon.log", "w") as log:
            proc = start(cfg, env, log)
            try:
                deadline = time.monotonic() + 30
                text = ""
                while time.monotonic() < deadline:
                    text = (tmp_path / "daemon.log").read_text()
                    if "service failed service=api" in text:
                        break
                    time.sleep(0.05)
                assert f"api: cannot listen on 127.0.0.1:{port}: Address already in use" in text
                assert proc.poll() is None
            finally:
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=10) == 0
