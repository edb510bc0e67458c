"""Counter math: wraps, resets, reboots — never a spike, never a negative rate."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from netmgr.snmp.counters import WRAP32, Sample, rate

GBIT = 1e9


def s(v, t, up=None, bits=32):
    return Sample(v, t, None if up is None else int(up), bits)


def test_plain_rate_in_bits():
    assert rate(s(1000, 0, 0), s(1000 + 125_000, 10, 1000), scale=8) == 100_000.0


def test_counter32_wrap():
    before = WRAP32 - 1000
    r = rate(s(before, 0, 0), s(24_000, 60, 6000), scale=8, max_rate=GBIT)
    assert r == (1000 + 24_000) * 8 / 60


def test_counter64_decrease_is_a_reset():
    assert rate(s(2**40, 0, 0, 64), s(5, 60, 6000, 64), scale=8) is None


def test_reboot_by_uptime_going_back():
    assert rate(s(5_000_000, 0, 900_000), s(10, 60, 3000), scale=8) is None


def test_reboot_hidden_by_long_gap():
    # 10 minutes passed but the agent has been up only 2 minutes: it rebooted in between.
    assert rate(s(100, 0, 50_000), s(200_000, 600, 50_000 + 12_000), scale=8) is None


def test_implausible_wrap_is_discarded():
    # A 100 Mbit/s link "wrapping" would mean ~570 Mbit/s: a reset, not traffic.
    assert rate(s(3_000_000_000, 0, 0), s(1_000, 60, 6000), scale=8, max_rate=100e6) is None


def test_first_sample_and_zero_interval():
    assert rate(None, s(5, 1)) is None
    assert rate(s(5, 1), s(6, 1)) is None


def test_uptime_wrap_after_497_days_keeps_the_rate():
    top = 2**32 - 1000
    assert rate(s(0, 0, top), s(6000, 60, 5000), max_rate=1e6) == 100.0


@given(v0=st.integers(0, WRAP32 - 1), v1=st.integers(0, WRAP32 - 1), dt=st.floats(1, 3600),
       up0=st.integers(0, 2**31), up_jump=st.integers(-2**31, 2**31))
def test_never_negative_never_above_cap(v0, v1, dt, up0, up_jump):
    up1 = max(0, up0 + up_jump)
    r = rate(s(v0, 0, up0), s(v1, dt, up1), scale=8, max_rate=GBIT)
    assert r is None or 0 <= r <= GBIT * 1.1


UP = st.integers(0, 2**31)  # uptime ticks well away from the 497-day wrap
DT = st.floats(1, 3600, allow_nan=False)


@given(v0=st.integers(0, WRAP32 - 1), inc=st.integers(0, WRAP32 - 1), dt=DT, up0=UP)
def test_counter32_recovers_any_single_wrap(v0, inc, dt, up0):
    """Whatever the true increment (less than one full turn), the rate is exactly it over dt."""
    v1 = (v0 + inc) % WRAP32
    r = rate(s(v0, 0, up0), s(v1, dt, up0 + int(dt * 100)))
    assert r is not None and abs(r - inc / dt) <= 1e-9 * max(1.0, inc / dt)


@given(v0=st.integers(0, 2**64 - 1), v1=st.integers(0, 2**64 - 1), dt=DT, up0=UP)
def test_counter64_increase_is_a_rate_decrease_is_nothing(v0, v1, dt, up0):
    r = rate(s(v0, 0, up0, 64), s(v1, dt, up0 + int(dt * 100), 64))
    if v1 >= v0:
        assert r is not None and abs(r - (v1 - v0) / dt) <= 1e-9 * max(1.0, (v1 - v0) / dt)
    else:
        assert r is None


@given(v0=st.integers(0, WRAP32 - 1), v1=st.integers(0, WRAP32 - 1), dt=DT,
       up0=st.integers(10_000, 2**31), back=st.integers(1, 2**31))
def test_uptime_going_backwards_never_yields_a_rate(v0, v1, dt, up0, back):
    up1 = max(0, up0 - back)
    assert rate(s(v0, 0, up0), s(v1, dt, up1), scale=8) is None
    assert rate(s(v0, 0, up0, 64), s(v1, dt, up1, 64), scale=8) is None


@given(v0=st.integers(0, WRAP32 - 1), v1=st.integers(0, WRAP32 - 1), dt=DT, up0=UP,
       speed=st.sampled_from([10e6, 100e6, 1e9, 10e9]))
def test_rate_never_exceeds_the_link(v0, v1, dt, up0, speed):
    r = rate(s(v0, 0, up0), s(v1, dt, up0 + int(dt * 100)), scale=8, max_rate=speed)
    assert r is None or 0 <= r <= speed * 1.1


def test_counter_width_change_gives_no_rate():
    # The agent started answering ifHCInOctets between two polls: the two values are not comparable.
    assert rate(s(5, 0, 0, 32), s(10, 60, 6000, 64)) is None


def test_no_uptime_still_handles_wraps():
    # Agents that do not answer sysUpTime: a wrap is still a wrap, a 64-bit decrease still a reset.
    assert rate(s(WRAP32 - 10, 0), s(10, 10)) == 2.0
    assert rate(s(100, 0, None, 64), s(50, 10, None, 64)) is None
