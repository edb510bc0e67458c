"""Real servers for the tests: started as unprivileged processes on 127.0.0.1.

Each server keeps its config template in tests/servers/, runs from a private
folder under /tmp (readable by the unprivileged user), logs to a file whose tail
is shown if it fails to start, and is waited for with a deadline (never a bare
sleep). A missing binary fails with a message saying to run scripts/setup: the
tests never skip a server.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import ipaddress
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .waiting import Fatal, wait_for

TESTS = Path(__file__).resolve().parent.parent
SERVERS = TESTS / "servers"
REPO = TESTS.parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")
RUN_AS = "nobody"

_live: list[ServerProcess] = []
_workdirs: list[Path] = []
_start_log: list[tuple[str, float]] = []


def free_port(kind: str = "tcp") -> int:
    """A port free right now on 127.0.0.1 (TCP or UDP)."""
    stype = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, stype) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require(binary: str) -> str:
    venv_bin = Path(sys.executable).parent  # snmpsim comes with the venv
    path = shutil.which(binary) or shutil.which(binary, path=str(venv_bin))
    if not path and (PG_BIN / binary).exists():
        path = str(PG_BIN / binary)
    if not path:
        raise RuntimeError(f"{binary} is not installed: run scripts/setup (it installs the test servers)")
    return path


def workdir(name: str) -> Path:
    """A private folder the unprivileged server user can use (removed at interpreter exit)."""
    d = Path(tempfile.mkdtemp(prefix=f"netmgr-{name}-"))
    d.chmod(0o755)
    _workdirs.append(d)
    return d


def chown(path: Path, user: str = RUN_AS) -> None:
    if os.geteuid() != 0:
        return
    pw = pwd.getpwnam(user)
    for p in [path, *path.rglob("*")]:
        os.chown(p, pw.pw_uid, pw.pw_gid)


def as_user(argv: list[str], user: str = RUN_AS) -> list[str]:
    """Run as ``user`` when we are root, with a parent-death signal so a killed pytest
    leaves no server behind. setpriv execs in place (runuser would stay as a parent
    that delays every stop by 2 s)."""
    # The parent-death signal fires when the *thread* that forked exits: only ask for
    # it from the main thread (fixtures run there).
    death = ["--pdeathsig", "KILL"] if threading.current_thread() is threading.main_thread() else []
    if os.geteuid() != 0:
        return ["setpriv", *death, *argv] if death and shutil.which("setpriv") else argv
    pw = pwd.getpwnam(user)
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", *death, *argv]


def tcp_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def udp_bound(port: int) -> bool:
    """True once some process has bound the UDP port on 127.0.0.1 or any address.

    Read from /proc/net/udp: probing with our own bind() could steal the port from a
    server that is about to bind it."""
    wanted = {f"0100007F:{port:04X}", f"00000000:{port:04X}"}
    with open("/proc/net/udp", encoding="ascii") as f:
        return any(line.split()[1] in wanted for line in list(f)[1:])


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class PortTaken(RuntimeError):
    """The server could not bind its port: another process took it between our bind-0 probe
    (free_port) and the server's own bind. Starting again on new ports fixes it."""


PORT_TAKEN = re.compile(r"address already in use|address in use|eaddrinuse", re.IGNORECASE)


def start_retrying(launch: Callable[[], None], attempts: int = 4) -> None:
    """Run ``launch`` (pick free ports, write the config, start the server) again, on new ports,
    while it fails with PortTaken."""
    for attempt in range(1, attempts + 1):
        try:
            launch()
            return
        except PortTaken:
            if attempt == attempts:
                raise


class ServerProcess:
    """One server process: start (and wait until ready), stop, kill, restart on the same ports."""

    def __init__(self, name: str, argv: list[str], ready: Callable[[], Any], *,
                 cwd: Path, env: dict[str, str] | None = None, user: str = RUN_AS,
                 start_timeout: float = 30.0, stop_signal: int = signal.SIGTERM) -> None:
        self.name = name
        self.argv = argv
        self.ready = ready
        self.cwd = cwd
        self.env = env
        self.user = user
        self.start_timeout = start_timeout
        self.stop_signal = stop_signal
        self.log_path = cwd / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_seconds: float | None = None

    def start(self) -> ServerProcess:
        if self.proc and self.proc.poll() is None:
            return self
        env = dict(os.environ if self.env is None else self.env)
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the process's life
        log_start = log.tell()
        t0 = time.monotonic()
        self.proc = subprocess.Popen(as_user(self.argv, self.user), cwd=self.cwd, env=env,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

        def up() -> Any:
            if self.proc is not None and self.proc.poll() is not None:
                raise Fatal(f"{self.name} exited with {self.proc.returncode}")
            return self.ready()

        try:
            wait_for(up, self.start_timeout, f"{self.name} to be ready")
        except (TimeoutError, Fatal) as e:
            tail = self.log_tail()
            self.kill()
            error = PortTaken if PORT_TAKEN.search(self.log_since(log_start)) else RuntimeError
            raise error(f"{self.name} did not start: {e}\n--- {self.log_path} ---\n{tail}") from None
        self.start_seconds = time.monotonic() - t0
        _start_log.append((self.name, self.start_seconds))
        if self not in _live:
            _live.append(self)
        return self

    def log_since(self, offset: int) -> str:
        """What the server logged from byte ``offset`` on (this start's lines only)."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def _signal_group(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        if not self.proc or self.proc.poll() is not None:
            return
        self._signal_group(self.stop_signal)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        self._signal_group(signal.SIGKILL)
        if self.proc:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)

    def restart(self) -> ServerProcess:
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return bool(self.proc and self.proc.poll() is None)


@atexit.register
def _stop_all() -> None:
    for s in reversed(_live):
        s.kill()
    if not os.environ.get("NETMGR_KEEP_TEST_DIRS"):  # set it to read the servers' logs afterwards
        for d in _workdirs:
            shutil.rmtree(d, ignore_errors=True)


def start_times() -> list[tuple[str, float]]:
    """(server name, seconds from spawn to ready) of every start in this session."""
    return list(_start_log)


def render(template: str, dest: Path, **values: Any) -> Path:
    text = (SERVERS / template).read_text(encoding="utf-8")
    for k, v in values.items():
        text = text.replace("{{" + k + "}}", str(v))
    dest.write_text(text, encoding="utf-8")
    return dest


# --------------------------------------------------------------------------- PostgreSQL


class Postgres:
    """A private PostgreSQL cluster (trust auth on loopback, fsync off)."""

    def __init__(self) -> None:
        require("initdb")
        self.dir = workdir("pg")
        self.data = self.dir / "data"
        self.port = free_port()
        chown(self.dir, "postgres")
        t0 = time.monotonic()
        # initdb refuses to run as root; --no-sync and fsync=off below: the cluster is throwaway.
        r = subprocess.run(as_user([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "netmgr",
                                    "-E", "UTF8", "--no-sync", "--locale=C.UTF-8"], "postgres"),
                           capture_output=True, text=True, cwd=self.dir, check=False)
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed ({r.returncode}) in {self.data}:\n{r.stdout}{r.stderr}")
        _start_log.append(("postgres initdb", time.monotonic() - t0))
        argv = [str(PG_BIN / "postgres"), "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port),
                "-k", str(self.dir), "-c", "fsync=off", "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off", "-c", "max_connections=200"]
        self.server = ServerProcess("postgres", argv, self._ready, cwd=self.dir, user="postgres",
                                    stop_signal=signal.SIGINT)  # "fast" shutdown: no waiting for clients
        self.server.start()
        self._n = 0
        self.url = self.create_database("netmgr")

    def _ready(self) -> bool:
        r = subprocess.run([str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                           check=False)
        return r.returncode == 0

    def create_database(self, name: str) -> str:
        """Create database ``name`` (owner netmgr) and return its URL."""
        r = subprocess.run([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "netmgr",
                            name], capture_output=True, text=True, check=False)
        if r.returncode != 0:
            raise RuntimeError(f"createdb {name} on 127.0.0.1:{self.port} failed: {r.stderr.strip()}")
        return f"postgresql://netmgr@127.0.0.1:{self.port}/{name}"

    def fresh_database(self) -> str:
        """A new empty database; its URL."""
        self._n += 1
        return self.create_database(f"t{os.getpid()}_{self._n}")

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()


# --------------------------------------------------------------------------- TLS


def make_tls(dest: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    ca_key = key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "netmgr test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    srv_key = key()
    srv = (x509.CertificateBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
           .issuer_name(ca_name).public_key(srv_key.public_key())
           .serial_number(x509.random_serial_number())
           .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))
           .add_extension(x509.SubjectAlternativeName([
               x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
           .sign(ca_key, hashes.SHA256()))
    dest.mkdir(parents=True, exist_ok=True)
    out = {"ca": dest / "ca.pem", "cert": dest / "server.pem", "key": dest / "server.key"}
    out["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out["cert"].write_bytes(srv.public_bytes(serialization.Encoding.PEM))
    out["key"].write_bytes(srv_key.private_bytes(serialization.Encoding.PEM,
                                                 serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    return out


# --------------------------------------------------------------------------- mosquitto


class Mosquitto:
    """A mosquitto broker: plain listener (anonymous unless a password file is given), optional TLS."""

    def __init__(self, *, tls: bool = False, passwd_file: Path | None = None,
                 acl_file: Path | None = None, conf_text_extra: str = "") -> None:
        binary = require("mosquitto")
        self.host = "127.0.0.1"
        self.dir = workdir("mosquitto")

        def launch() -> None:  # new ports on each attempt
            self.port = free_port()
            self.tls_port: int | None = None
            self.ca_file: Path | None = None
            lines = ["per_listener_settings false", "persistence false", "log_dest stderr",
                     "log_type error", "log_type warning", "log_type notice",
                     "max_queued_messages 100000", "max_inflight_messages 0",
                     f"listener {self.port} 127.0.0.1"]
            if tls:
                files = make_tls(self.dir / "tls")
                self.ca_file = files["ca"]
                self.tls_port = free_port()
                lines += [f"listener {self.tls_port} 127.0.0.1", f"cafile {files['ca']}",
                          f"certfile {files['cert']}", f"keyfile {files['key']}"]
            if passwd_file:
                shutil.copy(passwd_file, self.dir / "passwd")
                lines += [f"password_file {self.dir / 'passwd'}", "allow_anonymous false"]
            else:
                lines += ["allow_anonymous true"]
            if acl_file:
                shutil.copy(acl_file, self.dir / "acl")
                lines += [f"acl_file {self.dir / 'acl'}"]
            conf = self.dir / "mosquitto.conf"
            conf.write_text("\n".join(lines) + "\n" + conf_text_extra + "\n", encoding="utf-8")
            chown(self.dir)
            for f in self.dir.rglob("*"):
                if f.is_file():
                    f.chmod(0o600)
            self.server = ServerProcess("mosquitto", [binary, "-c", str(conf)], lambda: tcp_open(self.port),
                                        cwd=self.dir)
            self.server.start()

        start_retrying(launch)

    def stop(self) -> None:
        self.server.stop()

    def kill(self) -> None:
        self.server.kill()

    def start(self) -> None:
        self.server.start()

    def reload_auth(self, passwd_file: Path, acl_file: Path) -> None:
        """Install new password and ACL files (as `netmgr mqtt render` wrote them) and SIGHUP the
        broker, as an operator would with `systemctl reload mosquitto`."""
        for src, name in ((passwd_file, "passwd"), (acl_file, "acl")):
            dest = self.dir / name
            shutil.copy(src, dest)
            chown(dest)
            dest.chmod(0o600)
        self.server._signal_group(signal.SIGHUP)


# --------------------------------------------------------------------------- net-snmp snmpd

SNMP_V3 = {"user": "netmgrv3", "auth_proto": "SHA", "auth_key": "authpass-0123",
           "priv_proto": "AES", "priv_key": "privpass-0123"}


def snmpget_ok(port: int, community: str, oid: str = "1.3.6.1.2.1.1.3.0") -> bool:
    """The agent on ``port`` answers a v2c GET (checked only once the port is bound,
    so the wait does not sit in snmpget's timeout)."""
    if not udp_bound(port):
        return False
    r = subprocess.run([require("snmpget"), "-v2c", "-c", community, "-t", "0.3", "-r", "0", "-On",
                        f"127.0.0.1:{port}", oid], capture_output=True, check=False,
                       env=dict(os.environ, MIBS=""))
    return r.returncode == 0 and b"Timeout" not in r.stdout


class Snmpd:
    """net-snmp snmpd on a private UDP port: v2c community and a v3 authPriv user (SHA/AES)."""

    def __init__(self, extra_config: str = "", community: str = "netmgr-test",
                 disable_modules: str = "") -> None:
        binary = require("snmpd")
        self.host = "127.0.0.1"
        self.dir = workdir("snmpd")
        (self.dir / "persist").mkdir()

        def launch() -> None:  # new ports on each attempt
            self.port = free_port("udp")
            self.community = community
            self.v3 = dict(SNMP_V3)
            conf = render("snmpd.conf", self.dir / "snmpd.conf", community=community, **self.v3)
            with conf.open("a", encoding="utf-8") as f:
                f.write("\n" + extra_config + "\n")
            chown(self.dir)
            modules = "-smux" + (f",{disable_modules}" if disable_modules else "")
            argv = [binary, "-f", "-C", "-c", str(conf), "-I", modules, "-Lo", "-p",
                    str(self.dir / "snmpd.pid"), f"udp:127.0.0.1:{self.port}"]
            env = dict(os.environ, MIBS="", SNMP_PERSISTENT_DIR=str(self.dir / "persist"),
                       SNMPCONFPATH=str(self.dir))
            self.server = ServerProcess("snmpd", argv, lambda: snmpget_ok(self.port, community),
                                        cwd=self.dir, env=env)
            self.server.start()

        start_retrying(launch)

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()

    def restart(self) -> None:
        self.server.restart()


# --------------------------------------------------------------------------- snmpsim


def check_runnable_as_user(binary: str, user: str = RUN_AS) -> None:
    """snmpsim runs from the project's venv as ``user``: every folder above it must be
    searchable by that user (a clone under /root is not)."""
    if os.geteuid() != 0:
        return
    python = Path(binary).parent / "python"
    probe = [str(python), "-c", "import snmpsim"] if python.exists() else [binary, "--help"]
    r = subprocess.run(as_user(probe, user), capture_output=True, text=True, check=False, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(
            f"{binary} cannot run as user {user} ({r.returncode}: {(r.stderr or r.stdout).strip()[-300:]}); "
            f"the test servers run unprivileged: put the clone and its .venv in folders {user} can read "
            f"(e.g. chmod o+rx on each parent folder), then run scripts/setup")


class Snmpsim:
    """snmpsim serving a folder of .snmprec recordings; community = file name."""

    def __init__(self, data_dir: Path) -> None:
        binary = require("snmpsim-command-responder")
        self.host = "127.0.0.1"
        self.dir = workdir("snmpsim")
        self.data_dir = self.dir / "data"
        shutil.copytree(data_dir, self.data_dir)

        def launch() -> None:  # new ports on each attempt
            self.port = free_port("udp")
            self.communities = sorted(p.stem for p in self.data_dir.glob("*.snmprec"))
            if not self.communities:
                raise RuntimeError(f"no .snmprec recordings in {data_dir}")
            chown(self.dir)
            check_runnable_as_user(binary)
            argv = [binary, f"--data-dir={self.data_dir}", f"--cache-dir={self.dir / 'cache'}",
                    f"--agent-udpv4-endpoint=127.0.0.1:{self.port}"]
            self.server = ServerProcess("snmpsim", argv, lambda: snmpget_ok(self.port, self.communities[0]),
                                        cwd=self.dir, start_timeout=60)
            self.server.start()

        start_retrying(launch)

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()


# --------------------------------------------------------------------------- VictoriaMetrics


class VictoriaMetrics:
    """victoria-metrics single node; accepts InfluxDB line protocol on /api/v2/write and /write."""

    def __init__(self) -> None:
        binary = require("victoria-metrics")
        self.dir = workdir("vm")
        (self.dir / "data").mkdir()

        def launch() -> None:  # new ports on each attempt
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            chown(self.dir)
            argv = [binary, f"-storageDataPath={self.dir / 'data'}", f"-httpListenAddr=127.0.0.1:{self.port}",
                    "-retentionPeriod=100y", "-search.latencyOffset=0s", "-loggerLevel=ERROR",
                    "-search.disableCache", "-dedup.minScrapeInterval=0s"]
            self.server = ServerProcess("victoria-metrics", argv,
                                        lambda: http_get(self.url + "/health")[0] == 200, cwd=self.dir)
            self.server.start()

        start_retrying(launch)

    def stop(self) -> None:
        self.server.stop()

    def kill(self) -> None:
        self.server.kill()

    def start(self) -> None:
        self.server.start()

    def force_flush(self) -> None:
        status, body = http_get(self.url + "/internal/force_flush")
        if status != 200:
            raise RuntimeError(f"force_flush: HTTP {status} {body[:200]!r}")

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        q = {"query": promql, **({"time": str(at)} if at else {})}
        status, body = http_get(f"{self.url}/api/v1/query?{urllib.parse.urlencode(q)}")
        if status != 200:
            raise RuntimeError(f"query {promql}: HTTP {status} {body[:300]!r}")
        return json.loads(body)["data"]["result"]

    def export(self, match: str) -> list[dict[str, Any]]:
        """Every stored sample of the series matching ``match`` (JSON lines of /api/v1/export)."""
        self.force_flush()
        status, body = http_get(f"{self.url}/api/v1/export?{urllib.parse.urlencode({'match[]': match})}")
        if status != 200:
            raise RuntimeError(f"export {match}: HTTP {status} {body[:300]!r}")
        return [json.loads(line) for line in body.splitlines() if line.strip()]


# --------------------------------------------------------------------------- influxdb 1.6


class InfluxDB1:
    """Debian's influxdb 1.6 (InfluxQL engine; v1 /write and /query)."""

    def __init__(self) -> None:
        binary = require("influxd")
        self.dir = workdir("influxdb")

        def launch() -> None:  # new ports on each attempt
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            conf = render("influxdb.conf", self.dir / "influxdb.conf", dir=self.dir, port=self.port,
                          bind_port=free_port())
            chown(self.dir)
            self.server = ServerProcess("influxd", [binary, "-config", str(conf)],
                                        lambda: http_get(self.url + "/ping")[0] == 204, cwd=self.dir)
            self.server.start()

        start_retrying(launch)

    def create_db(self, name: str) -> None:
        self.query(f'CREATE DATABASE "{name}"', method="POST")

    def query(self, q: str, db: str | None = None, method: str = "GET") -> dict[str, Any]:
        params = urllib.parse.urlencode({"q": q, **({"db": db} if db else {}), "epoch": "ns"})
        if method == "POST":
            req = urllib.request.Request(f"{self.url}/query", data=params.encode(), method="POST")
        else:
            req = urllib.request.Request(f"{self.url}/query?{params}")
        with urllib.request.urlopen(req, timeout=10) as r:
            data = json.loads(r.read())
        for res in data.get("results", []):
            if "error" in res:
                raise RuntimeError(f"influxdb query {q!r}: {res['error']}")
        return data

    def write(self, db: str, lines: bytes, precision: str = "ns") -> None:
        req = urllib.request.Request(f"{self.url}/write?db={db}&precision={precision}", data=lines,
                                     method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            if r.status != 204:
                raise RuntimeError(f"influxdb write: HTTP {r.status}")

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()
