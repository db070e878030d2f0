#!/usr/bin/env python3
"""piarchive's side of bench/remote: one archive through the S3 remote.

Starts `piarchive serve` on a fresh data dir, sets it up through the HTTP API
(admin, API token, settings, the S3 remote), uploads FILE with one `curl -T`
(ingest: not timed), then times

  backup: from the end of the upload to the archive state `backed_up`;
  cache:  from `POST .../cache` of the uncached archive back to `backed_up`
          (every part fetched, decrypted, verified and the file re-hashed).

The server's peak RSS (VmHWM) is reset through /proc/PID/clear_refs before
each timed phase, so each figure is that phase's own. The CPU time (user +
system) of piarchive and of the S3 server (S3_PID) is counted per phase too.
Prints one line: `backup_s restore_s rss_backup_mib rss_restore_mib
rss_all_mib cpu_backup_s s3_cpu_backup_s cpu_restore_s s3_cpu_restore_s`.

Usage: remote_piarchive.py BINARY WORKDIR ENDPOINT ACCESS_KEY SECRET BUCKET PREFIX FILE [CONCURRENCY [S3_PID]]

For bench/compress: BENCH_BANDWIDTH=bytes/s sets the upload bandwidth limit
(default none), and BENCH_REPORT=PATH writes the figures there as JSON too,
with the ingest time and the archive's size and size on the remote.
"""

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

POLL_SECS = 0.02
LIMIT_SECS = 1800


class Api:
    def __init__(self, base):
        self.base = base
        self.headers = {}

    def call(self, method, path, body=None, expect=(200, 201, 202)):
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(request) as response:
            if response.status not in expect:
                raise RuntimeError(f"{method} {path}: {response.status}")
            text = response.read()
            cookie = response.headers.get("Set-Cookie")
        return (json.loads(text) if text else None), cookie

    def state(self, archive_id):
        archive, _ = self.call("GET", f"/api/v1/archives/{archive_id}")
        if archive["state"] == "damaged":
            raise RuntimeError(f"archive became damaged: {archive}")
        return archive["state"]

    def wait(self, archive_id, states):
        deadline = time.monotonic() + LIMIT_SECS
        while time.monotonic() < deadline:
            if self.state(archive_id) in states:
                return time.time()
            time.sleep(POLL_SECS)
        raise RuntimeError(f"archive {archive_id} did not reach {states}")


class StateWatch:
    """Notes the moment each archive reaches each state, from the server's
    event stream (`/api/v1/events`), on a thread of its own: no polling
    request loads the server while it is being timed."""

    def __init__(self, api):
        request = urllib.request.Request(api.base + "/api/v1/events", headers=dict(api.headers))
        self.stream = urllib.request.urlopen(request)
        self.reached = {}
        self.changed = threading.Condition()
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        event = None
        for raw in self.stream:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: ") and event == "archive":
                data = json.loads(line[len("data: "):])
                with self.changed:
                    self.reached.setdefault((data["id"], data["state"]), []).append(time.time())
                    self.changed.notify_all()

    def wait(self, api, archive_id, state, after):
        """The first time after `after` that `archive_id` reached `state`
        (checked against the API)."""
        deadline = time.monotonic() + LIMIT_SECS
        with self.changed:
            while not any(at > after for at in self.reached.get((archive_id, state), [])):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"archive {archive_id} did not reach {state}")
                self.changed.wait(1.0)
            at = min(at for at in self.reached[(archive_id, state)] if at > after)
        if api.state(archive_id) != state:
            raise RuntimeError(f"archive {archive_id} left {state} at once")
        return at


def vm_hwm_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def cpu_seconds(pid):
    """User + system CPU time of a process and its threads so far (0 without a process)."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_hwm(pid):
    # "5" resets the peak RSS (Linux >= 4.0; needs the right to ptrace it).
    with open(f"/proc/{pid}/clear_refs", "w") as clear:
        clear.write("5")


def start_server(binary, data_dir, log_path):
    log = open(log_path, "w")
    server = subprocess.Popen(
        [binary, "serve", "--data", data_dir, "--listen", "127.0.0.1:0"], stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with open(log_path) as out:
            for line in out:
                if "listening on http://" in line:
                    address = line.split("http://", 1)[1].split()[0]
                    return server, "http://" + address
        if server.poll() is not None:
            raise RuntimeError(f"piarchive exited: {open(log_path).read()}")
        time.sleep(0.05)
    raise RuntimeError("piarchive did not start")


def main():
    binary, work, endpoint, access_key, secret, bucket, prefix, path = sys.argv[1:9]
    concurrency = int(sys.argv[9]) if len(sys.argv) > 9 else 2
    # The S3 server's process, to count the CPU time it spends serving us.
    s3_pid = int(sys.argv[10]) if len(sys.argv) > 10 else None
    data_dir = os.path.join(work, "piarchive-data")
    subprocess.run(["rm", "-rf", data_dir], check=True)
    log_path = os.path.join(work, "piarchive.out")

    server, base = start_server(binary, data_dir, log_path)
    try:
        api = Api(base)
        setup, cookie = api.call("POST", "/api/v1/setup", {"username": "bench", "password": "bench password"})
        api.headers = {"Cookie": cookie.split(";", 1)[0], "X-CSRF-Token": setup["csrf_token"]}
        token, _ = api.call("POST", "/api/v1/tokens", {"name": "bench"})
        api.call(
            "PUT",
            "/api/v1/admin/settings",
            {
                "registration_open": True,
                "upload_bandwidth_bytes_per_sec": int(os.environ.get("BENCH_BANDWIDTH", "0")),
                "upload_window": None,
                "transfer_concurrency": concurrency,
                "free_space_reserve_bytes": 0,
            },
        )
        api.call(
            "PUT",
            "/api/v1/admin/remote",
            {
                "kind": "s3",
                "endpoint": endpoint,
                "region": "us-east-1",
                "bucket": bucket,
                "prefix": prefix,
                "path_style": True,
                "access_key_id": access_key,
                "secret_access_key": secret,
            },
        )
        # The engine reads transfer_concurrency once, at start.
        server.terminate()
        server.wait()
        server, base = start_server(binary, data_dir, log_path)
        api = Api(base)
        api.headers = {"Authorization": "Bearer " + token["token"]}
        name = os.path.basename(path)
        watch = StateWatch(api)

        upload_started = time.time()
        upload = subprocess.run(
            ["curl", "-sf", "-H", "Authorization: " + api.headers["Authorization"], "-T", path,
             f"{base}/api/v1/archives?name={name}&filename={name}"],
            check=True, capture_output=True,
        )
        uploaded_at = time.time()
        reset_hwm(server.pid)
        cpu_at_upload = (cpu_seconds(server.pid), cpu_seconds(s3_pid))
        archive_id = json.loads(upload.stdout)["id"]
        backed_up_at = watch.wait(api, archive_id, "backed_up", uploaded_at)
        rss_backup = vm_hwm_mib(server.pid)
        cpu_backup = [cpu_seconds(pid) - before for pid, before in zip((server.pid, s3_pid), cpu_at_upload)]

        api.call("POST", f"/api/v1/archives/{archive_id}/uncache")
        api.wait(archive_id, ("uncached",))
        reset_hwm(server.pid)
        cache_started = time.time()
        cpu_at_cache = (cpu_seconds(server.pid), cpu_seconds(s3_pid))
        api.call("POST", f"/api/v1/archives/{archive_id}/cache")
        # The POST sets `caching`; `backed_up` (with the local copy) once it is back.
        cached_at = watch.wait(api, archive_id, "backed_up", cache_started)
        rss_restore = vm_hwm_mib(server.pid)
        cpu_restore = [cpu_seconds(pid) - before for pid, before in zip((server.pid, s3_pid), cpu_at_cache)]
        report_path = os.environ.get("BENCH_REPORT")
        if report_path:
            archive, _ = api.call("GET", f"/api/v1/archives/{archive_id}")
            with open(report_path, "w") as report:
                json.dump({"ingest_s": uploaded_at - upload_started, "backup_s": backed_up_at - uploaded_at,
                           "cache_s": cached_at - cache_started, "size": archive["size"],
                           "stored_size": archive.get("stored_size"), "rss_backup_mib": rss_backup,
                           "rss_cache_mib": rss_restore}, report)
        print(
            f"{backed_up_at - uploaded_at:.3f} {cached_at - cache_started:.3f} "
            f"{rss_backup:.1f} {rss_restore:.1f} {max(rss_backup, rss_restore):.1f} "
            f"{cpu_backup[0]:.2f} {cpu_backup[1]:.2f} {cpu_restore[0]:.2f} {cpu_restore[1]:.2f}"
        )
    finally:
        server.terminate()
        server.wait()
        subprocess.run(["rm", "-rf", data_dir], check=False)


if __name__ == "__main__":
    main()
