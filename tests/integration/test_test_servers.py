"""The test servers themselves: a port taken between the free-port probe and the server's own
bind (another process on a busy machine) makes the server start again on new ports."""

from __future__ import annotations

import socket

from support import services


def test_a_server_whose_port_was_taken_starts_on_another(monkeypatch):
    real = services.free_port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))  # bound, not listening: connects are refused, binds fail
        taken = squatter.getsockname()[1]
        handed: list[int] = []

        def racy_free_port(kind: str = "tcp") -> int:
            port = taken if not handed else real(kind)
            handed.append(port)
            return port

        monkeypatch.setattr(services, "free_port", racy_free_port)
        m = services.Mosquitto()
        try:
            assert handed[0] == taken and m.port != taken
            assert services.tcp_open(m.port)
            assert "Address already in use" in m.server.log_path.read_text()  # the first attempt's
        finally:
            m.stop()
