"""The tests' helpers, in one package (tests/conftest.py puts tests/ on sys.path).

Test modules import from here and never from one another (tests/unit/test_test_support.py
checks it):

- ``waiting``: ``until`` (async), ``wait_for`` (sync), ``read_until``: the one way to wait.
- ``services``: real servers started on 127.0.0.1 (mosquitto, snmpd, snmpsim, PostgreSQL,
  VictoriaMetrics, InfluxDB 1.6), ports, plain HTTP GET.
- ``apistack``: the API in process over a real store with users of every kind, or served by
  uvicorn in a thread.
- ``radio_stack``: a RadioService running on a broker, the daemon's broker credentials.
- ``broadcast_stack``: `netmgr run` as a process and the CLI in subprocesses, with the two-commune
  inventory the broadcast end-to-end tests share.
- ``telemetry``: the TelemetryService in the test's loop, VictoriaMetrics and InfluxDB read back,
  a province's points.
- ``fleet``: a simulated province (APs from the recordings, speaker telemetry) for telemetry tests
  and bench/.
- ``grafana_fleet``, ``grafana_schemas``, ``grafana_standin``: the dashboards' data, the
  schemas they are checked against, and a Grafana stand-in for the push tests.
- ``lineproto_reader``: an independent InfluxDB line protocol parser.
- ``ber``: pysnmp as the oracle for the BER codec tests, and their value strategies.
"""
