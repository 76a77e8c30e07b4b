"""Health and metrics over real HTTP from a real `serve`: /livez, /readyz (database, schema,
receivers), /metrics in Prometheus text with the names the README lists and no personal
data; a busy web port is one line in the log and mail is still taken."""

from __future__ import annotations

import json
import re
import signal
import smtplib
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from mailflow import clock
from mailflow.app import App
from tests.conftest import ROOT, run_cli
from tests.mail import outlook_forward, wire
from tests.test_serve import free_port, wait_for

NAMES = ("mailflow_messages_received_total", "mailflow_pipeline_seconds_bucket",
         "mailflow_spool_waiting", "mailflow_holding_pen_items",
         "mailflow_holding_pen_oldest_age_seconds", "mailflow_outbox_messages",
         "mailflow_mail_sent_total", "mailflow_requests_overdue", "mailflow_job_runs_total",
         "mailflow_job_last_success_timestamp_seconds", "mailflow_build_info")


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def serve(config_file: Path, *extra: str) -> tuple[int, int, subprocess.Popen[bytes]]:
    smtp_port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailflow.cli", "--config", str(config_file), "serve",
         "--port", str(smtp_port), *extra], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    line, HEAD[proc.pid] = "", []
    while "mailflow: SMTP on" not in line:
        line = proc.stdout.readline().decode()
        HEAD[proc.pid].append(line)
        assert line or proc.poll() is None, "serve stopped before listening"
    found = re.search(r"web http://127\.0\.0\.1:(\d+)", line)
    return smtp_port, int(found.group(1)) if found else 0, proc


HEAD: dict[int, list[str]] = {}  # what serve printed before it listened, by process


def stop(proc: subprocess.Popen[bytes]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    return "".join(HEAD.pop(proc.pid, [])) + out.decode()


def test_health_and_metrics_from_serve(app: App, config_file: Path) -> None:
    smtp_port, web_port, proc = serve(config_file)
    try:
        base = f"http://127.0.0.1:{web_port}"
        assert get(f"{base}/livez")[::2] == (200, "ok\n")
        status, _, body = get(f"{base}/readyz")
        assert status == 200, body
        assert json.loads(body) == {"status": "ready", "checks": {
            "database": "ok", "schema": "ok", "smtp": "ok", "pipeline": "ok"}}

        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as s:
            s.sendmail("cllr.jane@council.example", ["casework@council.example"],
                       wire(outlook_forward()))

        def sent() -> str | None:
            """The request delivered, and the job that delivered it counted (its run is
            counted when it returns, a moment after the mail is)."""
            text = get(f"{base}/metrics")[2]
            done = ('mailflow_mail_sent_total{kind="request",result="sent"} 1.0' in text
                    and "mailflow_spool_waiting 0.0" in text
                    and re.search(r'^mailflow_job_runs_total\{job="deliver_outbox",'
                                  r'result="ok"\} [1-9]', text, re.M))
            return text if done else None

        text = str(wait_for("the request to be delivered", sent))
        status, ctype, _ = get(f"{base}/metrics")
        assert status == 200 and ctype.startswith("text/plain")
        for name in NAMES:
            assert re.search(rf"^{name}[{{ ]", text, re.M), name
        assert 'mailflow_messages_received_total{receiver="smtp",result="stored"} 1.0' in text
        assert "mailflow_spool_waiting 0.0" in text
        assert re.search(r'^mailflow_build_info\{version="[^"]+"\} 1\.0$', text, re.M)
        # No personal data: no address, name or subject of the forward in any label or value.
        for secret in ("@", "Mary", "Pothole", "pothole"):
            assert secret not in "\n".join(line for line in text.splitlines()
                                           if not line.startswith("#")), secret
    finally:
        stop(proc)


def test_readyz_says_when_the_schema_is_behind(app: App, config_file: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "mailflow.cli", "--config", str(config_file),
                             "web", "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        wait_for("web to answer", lambda: _answers(port))
        assert get(f"http://127.0.0.1:{port}/readyz")[0] == 200
        with __import__("mailflow.db", fromlist=["engine"]).engine(app.url).begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0001'")
        status, _, body = get(f"http://127.0.0.1:{port}/readyz")
        assert status == 503
        assert json.loads(body)["checks"]["schema"].endswith("run mailflow init")
    finally:
        stop(proc)


def _answers(port: int) -> bool:
    try:
        return get(f"http://127.0.0.1:{port}/livez")[0] == 200
    except OSError:
        return False


def test_a_busy_web_port_is_one_line_and_mail_still_flows(app: App, config_file: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        smtp_port, web_port, proc = serve(config_file, "--web-port", str(taken))
        assert web_port == 0
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as s:
            s.noop()
        out = stop(proc)
    errors = [line for line in out.splitlines() if "web: cannot listen" in line]
    assert len(errors) == 1 and f":{taken} " in errors[0] and "Traceback" not in out


def test_web_alone_on_a_busy_port_exits_75(app: App, config_file: Path) -> None:
    clock.pin(None)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        done = run_cli(config_file, "web", "--port", str(busy.getsockname()[1]))
    assert done.returncode == 75 and "cannot listen" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
