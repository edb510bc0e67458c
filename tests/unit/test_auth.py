"""Tokens and the authorization rules of roles and zone scopes (pure, no store)."""

from __future__ import annotations

import hashlib
import re

import pytest

from netmgr.auth import Principal, hash_token, new_token
from netmgr.errors import Forbidden

TAN_PHU = "binh-phuoc/dong-xoai/tan-phu"
TAN_LOI = "binh-phuoc/dong-xoai/tan-loi"


def test_tokens_are_random_prefixed_and_stored_as_sha256():
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200
    for t in tokens:
        assert re.fullmatch(r"nmt_[A-Za-z0-9_-]{43}", t)  # 32 bytes of urlsafe base64
    t = next(iter(tokens))
    assert hash_token(t) == hashlib.sha256(t.encode()).hexdigest()
    assert t not in hash_token(t) and len(hash_token(t)) == 64


def test_operator_writes_only_in_their_subtrees():
    an = Principal("an", "operator", (TAN_PHU,))
    assert an.may_write(TAN_PHU) and an.may_write(f"{TAN_PHU}/ap-1")
    assert not an.may_write(TAN_LOI)
    assert not an.may_write("binh-phuoc/dong-xoai")  # the district above is not theirs
    assert not an.may_write(TAN_PHU + "-2")  # a sibling sharing a prefix is not a subtree
    assert not an.may_write(None)  # unzoned writes (users, ...) are for admins
    with pytest.raises(Forbidden) as ei:
        an.require_write(TAN_LOI)
    assert str(ei.value) == (f"operator 'an' may not write in zone {TAN_LOI}: outside their zones {TAN_PHU}")
    assert ei.value.zone == TAN_LOI


def test_operator_with_several_zones_names_them_all():
    an = Principal("an", "operator", (TAN_PHU, "binh-phuoc/chon-thanh"))
    assert an.may_write("binh-phuoc/chon-thanh/minh-hung")
    with pytest.raises(Forbidden, match=f"outside their zones {TAN_PHU}, binh-phuoc/chon-thanh"):
        an.require_write(TAN_LOI, "ap.add")


def test_viewer_reads_only_and_admin_writes_everywhere():
    vy = Principal("vy", "viewer")
    with pytest.raises(Forbidden, match="viewers have read-only access"):
        vy.require_write(TAN_PHU, "speaker.add")
    with pytest.raises(Forbidden, match="only admins may"):
        vy.require_admin("list users")
    root = Principal("root", "admin")
    root.require_write(TAN_LOI)
    root.require_write(None)
    root.require_admin("list users")
    root.require_emergency()


def test_emergency_needs_the_flag():
    with pytest.raises(Forbidden, match="emergency"):
        Principal("an", "operator", (TAN_PHU,)).require_emergency()
    Principal("an", "operator", (TAN_PHU,), can_emergency=True).require_emergency()
