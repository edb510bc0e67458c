"""Node MQTT identities: passwords in mosquitto's format, and the password and ACL files.

A node's identity is its node id as user name and a random password that
`netmgr speaker credentials` shows once; the store keeps only mosquitto's hash
of it (``$7$``: PBKDF2-HMAC-SHA512, as ``mosquitto_passwd`` writes). The
passwords are 32 random URL-safe characters (192 bits), so key stretching adds
nothing against guessing; mosquitto's default iteration count keeps CONNECT
cheap when 2,000 nodes reconnect at once after an outage.

The ACL gives each node exactly its own topics (docs/protocol.md, "Security"):
write status, telemetry and reply; read cmd and schedule, its status (to repair a
late last will) and its zones' cmd topics; the daemon's identity may do
everything under ``netmgr/v1/``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from netmgr.radio.protocol import ROOT, node_topic, zone_topics

ITERATIONS = 101  # mosquitto_passwd's default


def new_password() -> str:
    return secrets.token_urlsafe(24)


def mosquitto_hash(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """``$7$<iterations>$<salt>$<hash>`` (base64), the format of mosquitto 2's password file."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    dk = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(dk).decode()}"


def verify(password: str, stored: str) -> bool:
    """True if ``password`` matches a ``$7$`` hash (used by tests and `speaker credentials --check`)."""
    try:
        _, alg, it, salt, dk = stored.split("$")
        if alg != "7":
            return False
        got = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(it), 64)
    except ValueError:
        return False
    return hmac.compare_digest(base64.b64encode(got).decode(), dk)


INBOUND_SUFFIX = "-in"  # the daemon's subscriber identity: {username}-in


def daemon_users(daemon_user: str) -> list[str]:
    """The daemon's identities: ``user`` (publisher) and ``user-in`` (subscriber). Two, so that with
    mosquitto's ``use_username_as_clientid`` each connection has its own client id, and no other
    identity can take either of them (issue 12, item 13; docs/operations.md, "Client ids")."""
    return [daemon_user, daemon_user + INBOUND_SUFFIX] if daemon_user else []


def render_passwd(daemon_user: str, daemon_password: str, nodes: dict[str, str]) -> str:
    """The password file: the daemon's identities, then every node with a credential (id -> hash)."""
    lines = ["# written by `netmgr mqtt render`; do not edit (regenerate instead)"]
    for user in daemon_users(daemon_user):
        lines.append(f"{user}:{mosquitto_hash(daemon_password)}")
    daemon = set(daemon_users(daemon_user))  # a node may never be given the daemon's identity
    lines += [f"{nid}:{h}" for nid, h in sorted(nodes.items()) if nid not in daemon]
    return "\n".join(lines) + "\n"


def render_acl(daemon_user: str, nodes: dict[str, str]) -> str:
    """The ACL file for ``nodes`` (node id -> zone path)."""
    out = ["# written by `netmgr mqtt render`; do not edit (regenerate instead)",
           "# Anything not granted here is refused: a node cannot publish as another node.",
           "# With `use_username_as_clientid true` in mosquitto.conf no client can take another's",
           "# client id either (docs/operations.md, \"Client ids\").", ""]
    for user in daemon_users(daemon_user):
        out += [f"user {user}", f"topic readwrite {ROOT}/#", ""]
    daemon = set(daemon_users(daemon_user))  # a node may never be given the daemon's identity
    for nid, zone in sorted(nodes.items()):
        if nid in daemon:
            continue
        out.append(f"user {nid}")
        out += [f"topic write {node_topic(nid, k)}" for k in ("telemetry", "reply")]
        out.append(f"topic readwrite {node_topic(nid, 'status')}")
        out += [f"topic read {node_topic(nid, k)}" for k in ("cmd", "schedule")]
        out += [f"topic read {t}" for t in zone_topics(zone)]
        out.append("")
    return "\n".join(out)
