#!/usr/bin/env python3
"""bench/scale's driver: the cost of the queue, the lists and the device
feed at the sizes of a big family archive, on the real store and the real
server binary over a real socket.

  (a) lease + finish of one job with 10k, 100k and 300k jobs waiting
      (`bench_scale run-jobs`: the real engine in-process);
  (b) a user with 10,000 archives: the home page and `GET /api/v1/archives`;
  (c) an archive with 262,144 part records (1 TiB of 4 MiB parts, records
      only): its detail page, its first parts page, and the server's CPU per
      second while the device feed shows a running upload of it;
  (d) the peak RSS (VmHWM) of the process in each case.

Request times are the median of 5 after one untimed request, each on a new
connection. Prints a Markdown table.

Usage: scale_piarchive.py SERVER_BINARY BENCH_SCALE_BINARY WORKDIR
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from remote_piarchive import Api, cpu_seconds, start_server, vm_hwm_mib  # noqa: E402

JOB_COUNTS = [10_000, 100_000, 300_000]
ARCHIVES = 10_000
PARTS = 262_144
FEED_SECS = 10
rows = []


def row(case, measure, value, target=""):
    rows.append((case, measure, value, target))
    print(f"  {case}: {measure} = {value}", file=sys.stderr, flush=True)


def run(*args):
    return subprocess.run(list(args), check=True, capture_output=True, text=True).stdout.strip()


def timed_get(base, path, headers):
    """Median milliseconds of 5 GETs (after one untimed), and the last status."""
    times, status = [], None
    for attempt in range(6):
        request = urllib.request.Request(base + path, headers=headers)
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                response.read()
                status = response.status
        except urllib.error.HTTPError as err:
            err.read()
            status = err.code
        if attempt:
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), status


def stop(server):
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=60)


def fresh_appliance(binary, data, log, bandwidth=0):
    """A set-up appliance, stopped: (user id, session headers, token headers)."""
    subprocess.run(["rm", "-rf", data], check=True)
    server, base = start_server(binary, data, log)
    try:
        api = Api(base)
        setup, cookie = api.call("POST", "/api/v1/setup", {"username": "bench", "password": "bench password"})
        session = {"Cookie": cookie.split(";", 1)[0]}
        api.headers = dict(session, **{"X-CSRF-Token": setup["csrf_token"]})
        token, _ = api.call("POST", "/api/v1/tokens", {"name": "bench"})
        api.call("PUT", "/api/v1/admin/settings", {
            "registration_open": False, "upload_bandwidth_bytes_per_sec": bandwidth,
            "upload_window": None, "transfer_concurrency": 2, "free_space_reserve_bytes": 0,
        })
        me, _ = api.call("GET", "/api/v1/me")
    finally:
        stop(server)
    return me["id"], session, {"Authorization": "Bearer " + token["token"]}


def jobs(tool, work):
    for count in JOB_COUNTS:
        data = os.path.join(work, f"jobs-{count}")
        subprocess.run(["rm", "-rf", data], check=True)
        run(tool, "fill-jobs", data, str(count))
        micros, timed, hwm_kib = run(tool, "run-jobs", data).split()
        row(f"(a) {count:,} jobs", "lease + finish, µs/job", f"{float(micros):,.0f} ({timed} timed)")
        row(f"(a) {count:,} jobs", "peak RSS (bench process), MiB", f"{int(hwm_kib) / 1024:.1f}")
        subprocess.run(["rm", "-rf", data], check=True)


def archive_list(binary, tool, work):
    data, log = os.path.join(work, "archives"), os.path.join(work, "archives.out")
    owner, session, token = fresh_appliance(binary, data, log)
    run(tool, "fill-archives", data, owner, str(ARCHIVES))
    server, base = start_server(binary, data, log)
    try:
        ms, status = timed_get(base, "/", session)
        row(f"(b) {ARCHIVES:,} archives", f"home page, ms (HTTP {status})", f"{ms:.1f}", "≤ 50")
        ms, status = timed_get(base, "/api/v1/archives", token)
        row(f"(b) {ARCHIVES:,} archives", f"GET /api/v1/archives, ms (HTTP {status})", f"{ms:.1f}", "≤ 50")
        row(f"(b) {ARCHIVES:,} archives", "server peak RSS, MiB", f"{vm_hwm_mib(server.pid):.1f}")
    finally:
        stop(server)
    subprocess.run(["rm", "-rf", data], check=True)


def parts(binary, tool, work):
    data, log = os.path.join(work, "parts"), os.path.join(work, "parts.out")
    # 1 byte/s: the first part's upload waits in the bandwidth limit, running.
    owner, session, token = fresh_appliance(binary, data, log, bandwidth=1)
    archive_id = run(tool, "fill-parts", data, owner, str(PARTS))
    server, base = start_server(binary, data, log)
    try:
        ms, status = timed_get(base, f"/archives/{archive_id}", session)
        row(f"(c) {PARTS:,} parts", f"detail page, ms (HTTP {status})", f"{ms:.1f}", "≤ 50")
        ms, status = timed_get(base, f"/api/v1/archives/{archive_id}/parts", token)
        if status == 404:  # no parts pages: the archive answer carries every part
            ms, status = timed_get(base, f"/api/v1/archives/{archive_id}", token)
            row(f"(c) {PARTS:,} parts", f"GET /api/v1/archives/{{id}} (all parts), ms (HTTP {status})", f"{ms:.1f}", "≤ 50")
        else:
            row(f"(c) {PARTS:,} parts", f"GET .../parts (first page), ms (HTTP {status})", f"{ms:.1f}", "≤ 50")
        # The engine leases the upload; the device shows it within a second or two.
        deadline, uploading = time.monotonic() + 60, False
        while time.monotonic() < deadline and not uploading:
            request = urllib.request.Request(base + "/api/v1/admin/device", headers=token)
            with urllib.request.urlopen(request, timeout=60) as response:
                uploading = json.loads(response.read())["status"]["activity"] == "uploading"
            time.sleep(0.2)
        if not uploading:
            raise RuntimeError("the device never showed the upload running")
        time.sleep(1)
        before, started = cpu_seconds(server.pid), time.monotonic()
        time.sleep(FEED_SECS)
        per_sec = (cpu_seconds(server.pid) - before) / (time.monotonic() - started) * 1000
        row(f"(c) {PARTS:,} parts", "server CPU while idle with a running upload, ms/s", f"{per_sec:.1f}")
        row(f"(c) {PARTS:,} parts", "server peak RSS, MiB", f"{vm_hwm_mib(server.pid):.1f}")
    finally:
        stop(server)
    subprocess.run(["rm", "-rf", data], check=True)


def main():
    binary, tool, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    jobs(tool, work)
    archive_list(binary, tool, work)
    parts(binary, tool, work)
    print("| case | measure | value | target |")
    print("|---|---|---:|---|")
    for case, measure, value, target in rows:
        print(f"| {case} | {measure} | {value} | {target} |")


if __name__ == "__main__":
    main()
