"""This process's counters for Prometheus (`/metrics`, mailflow/web/health.py), in the style of
the Postfix and Dovecot exporters. No personal data in labels: receivers, results, mail
kinds and job names only. Each node counts its own; the gauges that describe the whole
system (spool, holding pen, outbox, overdue requests) are read from the database at scrape
time (mailflow/web/health.py), so every node reports the same figures for them."""

from __future__ import annotations

import time
from importlib import metadata

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

REGISTRY = CollectorRegistry()


def _version() -> str:
    try:
        return metadata.version("mailflow")
    except metadata.PackageNotFoundError:  # run from a checkout without installing
        return "unknown"


RECEIVED = Counter("mailflow_messages_received", "Messages offered to a receiver, by result "
                   "(stored, duplicate, refused, too_big, failed)", ["receiver", "result"],
                   registry=REGISTRY)
PIPELINE = Histogram("mailflow_pipeline_seconds", "Time to take one stored message through "
                     "the pipeline (parse, dispatch, case change, mail queued)",
                     buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
                     registry=REGISTRY)
SENT = Counter("mailflow_mail_sent", "Outbound delivery attempts by mail kind and outcome "
               "(sent, retrying, failed)", ["kind", "result"], registry=REGISTRY)
JOB_RUNS = Counter("mailflow_job_runs", "Scheduled job runs by result (ok, failed)",
                   ["job", "result"], registry=REGISTRY)
JOB_LAST_SUCCESS = Gauge("mailflow_job_last_success_timestamp_seconds",
                         "When each job last ran without an error (Unix time)", ["job"],
                         registry=REGISTRY)
IMAP_LAST_SUCCESS = Gauge("mailflow_imap_last_success_timestamp_seconds",
                          "When the IMAP receiver last fetched its folder without an error",
                          registry=REGISTRY)
BUILD = Info("mailflow_build", "The running mailflow", registry=REGISTRY)
BUILD.info({"version": _version()})


def job_ran(job: str, ok: bool) -> None:
    JOB_RUNS.labels(job, "ok" if ok else "failed").inc()
    if ok:
        JOB_LAST_SUCCESS.labels(job).set(time.time())
