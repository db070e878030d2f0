#!/usr/bin/env python3
"""piarchive's side of bench/soak: many cycles of one archive's whole life.

Starts `piarchive serve` on a fresh data dir, sets it up through the HTTP API
(admin, API token, fast upload settings, the S3 remote, a small log cap), then
runs CYCLES cycles of

  upload (one PUT, or tus in two PATCHes every other cycle) -> backed up ->
  uncache -> cache (fetch back) -> download and compare (SHA-256) -> delete
  for good (`DELETE ...?purge=true`, every third archive from the trash)
  -> gone (and every tenth cycle a login and a logout)

with sizes varied by cycle (1 byte to a few MiB, every 25th cycle larger),
polling states through the API. Every SAMPLE_EVERY cycles (and before the
first) it samples the server: resident memory, open files, threads, the LMDB
file's size, the entries of every LMDB table (`mdb_stat -a`, when installed),
the rows of the system log (through the API), the data folder's size, and
the bucket folder's size. A row every TABLE_EVERY cycles is printed, then
the growth check (see `growth_failures`); exit status 1 names what grew.

Usage: soak_piarchive.py BINARY WORKDIR ENDPOINT ACCESS_KEY SECRET BUCKET_DIR
       [--cycles N] [--sample-every N] [--table-every N] [--log-keep N]
       [--large-mib N] [--json PATH]
"""

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from remote_piarchive import Api  # noqa: E402

POLL_SECS = 0.02
PASSWORD = "soak password"
STATE_LIMIT_SECS = 120

# Sizes cycled through (bytes); every 25th cycle uses --large-mib instead.
SIZES = [1, 700, 4096, 65_537, 300_000, 1 << 20, 2_500_000, (3 << 20) + 7, 150_000, 5 << 20]

# name -> (absolute slack, relative slack, unit shown) for the growth check.
METRICS = {
    "rss_kib": (12 * 1024, 0.10, "KiB"),
    "rss_anon_kib": (12 * 1024, 0.10, "KiB"),
    "fds": (4, 0.0, ""),
    "threads": (2, 0.0, ""),
    "lmdb_bytes": (512 * 1024, 0.10, "B"),
    "lmdb_entries": (8, 0.0, ""),
    "log_rows": (8, 0.0, ""),
    "data_bytes": (1 << 20, 0.10, "B"),
    "bucket_bytes": (256 * 1024, 0.10, "B"),
}


def start_server(binary, data_dir, log_path):
    """`piarchive serve` on free loopback ports (HTTP and HTTPS); the server
    process and its HTTP base URL."""
    log = open(log_path, "a")
    seen = os.path.getsize(log_path)
    server = subprocess.Popen(
        [binary, "serve", "--data", data_dir, "--listen", "127.0.0.1:0", "--listen-https", "127.0.0.1:0"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with open(log_path) as out:
            out.seek(seen)
            for line in out:
                if "listening on http://" in line:
                    return server, "http://" + line.split("http://", 1)[1].split()[0]
        if server.poll() is not None:
            raise RuntimeError(f"piarchive exited: {open(log_path).read()[-2000:]}")
        time.sleep(0.05)
    server.terminate()
    raise RuntimeError("piarchive did not start in 60 s")


def status_field(pid, name):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {name} in /proc/{pid}/status")


def tree_bytes(path):
    """Bytes the files under `path` take on disk (allocated blocks, as `du`)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                pass  # removed while walking
    return total


def find_lmdb(data_dir):
    for root, _dirs, files in os.walk(data_dir):
        if "data.mdb" in files:
            return root
    raise RuntimeError(f"no data.mdb under {data_dir}")


def lmdb_entries(lmdb_dir):
    """Entries per table, from `mdb_stat -a` (None without lmdb-utils). The
    server's LMDB (lmdb-master-sys) keeps its lock file in another format
    than Debian's lmdb-utils, so a copy of data.mdb is read, without a lock
    (the server is idle between cycles; a torn copy is taken again)."""
    if shutil.which("mdb_stat") is None:
        return None
    with tempfile.TemporaryDirectory() as copy:
        for _ in range(5):
            shutil.copyfile(os.path.join(lmdb_dir, "data.mdb"), os.path.join(copy, "data.mdb"))
            done = subprocess.run(["mdb_stat", "-a", copy], capture_output=True, text=True)
            if done.returncode == 0:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"mdb_stat failed: {done.stderr}")
    tables, name = {}, None
    for line in done.stdout.splitlines():
        found = re.match(r"Status of (.+)", line.strip())
        if found:
            name = found.group(1)
        found = re.match(r"Entries: (\d+)", line.strip())
        if found and name not in (None, "Main DB"):
            tables[name] = int(found.group(1))
    return tables


def log_rows(api):
    """Rows of the system log, counted page by page (1000 a page)."""
    count, before = 0, ""
    for _ in range(1000):
        page, _ = api.call("GET", "/api/v1/admin/log?limit=1000" + (f"&before={before}" if before else ""))
        count += len(page["entries"])
        if not page["next_before"]:
            return count
        before = page["next_before"]
    raise RuntimeError("the log has more than a million rows")


def settle(api):
    """Waits (at most a minute) for the transfer queue to empty: a purged
    archive's remote objects are deleted by a job after it is gone from the
    API. Returns the seconds waited."""
    began = time.monotonic()
    while time.monotonic() - began < 60:
        _, metrics = raw(api, "GET", "/metrics")
        found = re.search(rb"^piarchive_queue_length (\d+)", metrics, re.M)
        if found and int(found.group(1)) == 0:
            break
        time.sleep(POLL_SECS)
    return time.monotonic() - began


def sample(server, api, data_dir, bucket_dir, cycle):
    pid = server.pid
    settle(api)
    lmdb_dir = find_lmdb(data_dir)
    tables = lmdb_entries(lmdb_dir)
    return {
        "cycle": cycle,
        "rss_kib": status_field(pid, "VmRSS"),
        # The heap's share (the rest is the binary and LMDB's map, file pages).
        "rss_anon_kib": status_field(pid, "RssAnon"),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": status_field(pid, "Threads"),
        "lmdb_bytes": os.path.getsize(os.path.join(lmdb_dir, "data.mdb")),
        "lmdb_entries": None if tables is None else sum(v for k, v in tables.items() if k != "log"),
        "log_rows": log_rows(api),
        "data_bytes": tree_bytes(data_dir),
        "bucket_bytes": tree_bytes(bucket_dir),
        "tables": tables,
    }


def wait_state(api, archive_id, states):
    deadline = time.monotonic() + STATE_LIMIT_SECS
    while time.monotonic() < deadline:
        state = api.state(archive_id)
        if state in states:
            return state
        time.sleep(POLL_SECS)
    raise RuntimeError(f"archive {archive_id} did not reach {states} in {STATE_LIMIT_SECS} s")


def wait_gone(api, archive_id):
    deadline = time.monotonic() + STATE_LIMIT_SECS
    while time.monotonic() < deadline:
        try:
            api.call("GET", f"/api/v1/archives/{archive_id}")
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return
            raise
        time.sleep(POLL_SECS)
    raise RuntimeError(f"archive {archive_id} was not gone {STATE_LIMIT_SECS} s after its purge")


def raw(api, method, path, body=None):
    request = urllib.request.Request(api.base + path, data=body, method=method, headers=dict(api.headers))
    with urllib.request.urlopen(request, timeout=STATE_LIMIT_SECS) as response:
        return response.status, response.read()


def tus_upload(api, name, body):
    """A tus 1.0.0 upload in two PATCHes (resumed at the offset the first
    left); the archive id the last PATCH names."""
    meta = ",".join(f"{key} {base64.b64encode(name.encode()).decode()}" for key in ("name", "filename"))
    request = urllib.request.Request(api.base + "/api/v1/uploads", method="POST", headers={
        **api.headers, "Tus-Resumable": "1.0.0", "Upload-Length": str(len(body)), "Upload-Metadata": meta})
    with urllib.request.urlopen(request, timeout=STATE_LIMIT_SECS) as response:
        location = response.headers["Location"]
    if location.startswith("/"):
        location = api.base + location
    archive_id, offset = None, 0
    for piece in (body[: len(body) // 2], body[len(body) // 2:]):
        if not piece:
            continue
        request = urllib.request.Request(location, data=piece, method="PATCH", headers={
            **api.headers, "Tus-Resumable": "1.0.0", "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream"})
        with urllib.request.urlopen(request, timeout=STATE_LIMIT_SECS) as response:
            offset = int(response.headers["Upload-Offset"])
            archive_id = response.headers.get("Archive-Id") or archive_id
    if archive_id is None:
        raise RuntimeError(f"tus upload of {name}: no Archive-Id after the last byte")
    return archive_id


def log_in_and_out(api, password):
    """A session started and ended, as a browser does (the sessions table
    must not keep it)."""
    request = urllib.request.Request(api.base + "/api/v1/session", method="POST",
                                     data=json.dumps({"username": "soak", "password": password}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=STATE_LIMIT_SECS) as response:
        cookie = response.headers["Set-Cookie"].split(";", 1)[0]
        csrf = json.loads(response.read())["csrf_token"]
    request = urllib.request.Request(api.base + "/api/v1/session", method="DELETE",
                                     headers={"Cookie": cookie, "X-CSRF-Token": csrf})
    with urllib.request.urlopen(request, timeout=STATE_LIMIT_SECS):
        pass


def cycle_once(api, cycle, large_mib):
    """One archive's life. Odd cycles upload through tus (two PATCHes), even
    ones with one PUT; every third archive goes to the trash before it is
    deleted for good from there; every tenth cycle logs in and out."""
    size = large_mib << 20 if cycle % 25 == 24 else SIZES[cycle % len(SIZES)]
    body = os.urandom(size)
    name = f"soak-{cycle}.bin"
    if cycle % 2:
        archive_id = tus_upload(api, name, body)
    else:
        status, text = raw(api, "PUT", f"/api/v1/archives?name={name}&filename={name}", body)
        if status != 201:
            raise RuntimeError(f"upload {cycle}: {status}")
        archive_id = json.loads(text)["id"]
    wait_state(api, archive_id, ("backed_up",))
    api.call("POST", f"/api/v1/archives/{archive_id}/uncache")
    wait_state(api, archive_id, ("uncached",))
    api.call("POST", f"/api/v1/archives/{archive_id}/cache")
    wait_state(api, archive_id, ("backed_up",))
    _, back = raw(api, "GET", f"/api/v1/archives/{archive_id}/content")
    if hashlib.sha256(back).digest() != hashlib.sha256(body).digest():
        raise RuntimeError(f"cycle {cycle}: the fetched-back {size} bytes differ from the upload")
    if cycle % 3 == 0:
        api.call("DELETE", f"/api/v1/archives/{archive_id}")
    api.call("DELETE", f"/api/v1/archives/{archive_id}?purge=true")
    wait_gone(api, archive_id)
    if cycle % 10 == 9:
        log_in_and_out(api, PASSWORD)
    return size


def growth_failures(samples, cycles):
    """The growth check. Samples of the first quarter (warm-up: allocator
    arenas, LMDB pages, the log filling up to its cap) are left out. For each
    metric, the highest value of the last quarter is compared with the
    highest of the second quarter: anything bounded has reached its level by
    then, so the last quarter may exceed it only by the slack (an absolute
    amount, or a fraction of the level, whichever is larger). Maxima, not
    single samples or a fitted slope, so a sawtooth (LMDB's free pages,
    allocator arenas) passes and a steady climb fails: a leak of L per cycle
    shows as about L * cycles / 2."""
    q2 = [s for s in samples if cycles / 4 < s["cycle"] <= cycles / 2]
    q4 = [s for s in samples if s["cycle"] > cycles * 3 / 4]
    if not q2 or not q4:
        return ["too few samples for the growth check (sample more often)"]
    failures = []
    for metric, (slack_abs, slack_rel, unit) in METRICS.items():
        if q2[0][metric] is None:
            continue
        level = max(s[metric] for s in q2)
        last = max(s[metric] for s in q4)
        allowed = level + max(slack_abs, slack_rel * level)
        if last > allowed:
            failures.append(
                f"{metric} grew: highest {last}{unit} in cycles {int(cycles * 3 / 4) + 1}-{cycles}, "
                f"against {level}{unit} in cycles {int(cycles / 4) + 1}-{int(cycles / 2)} "
                f"(allowed up to {int(allowed)}{unit})"
            )
    if q2[0]["tables"] is not None:
        for table in q4[-1]["tables"]:
            before = max(s["tables"].get(table, 0) for s in q2)
            after = max(s["tables"].get(table, 0) for s in q4)
            if table != "log" and after > before + METRICS["lmdb_entries"][0]:
                failures.append(f"LMDB table {table} grew from {before} to {after} entries")
    return failures


def slopes(samples, cycles):
    """For the record (not the rule): each figure's least-squares slope over
    the second half of the run, per 1,000 cycles."""
    half = [s for s in samples if s["cycle"] > cycles / 2]
    if len(half) < 2:
        return ""
    xs = [s["cycle"] for s in half]
    mean_x = sum(xs) / len(xs)
    spread = sum((x - mean_x) ** 2 for x in xs) or 1
    out = []
    for metric, (_, _, unit) in METRICS.items():
        if half[0][metric] is None:
            continue
        ys = [s[metric] for s in half]
        mean_y = sum(ys) / len(ys)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread
        out.append(f"{metric} {slope * 1000:+.1f}{unit}")
    return "slope over the second half, per 1,000 cycles: " + ", ".join(out)


def print_table(samples, every):
    print(
        f"{'cycle':>6} {'RSS MiB':>8} {'anon MiB':>8} {'files':>6} {'threads':>8} {'LMDB KiB':>9} "
        f"{'entries':>8} {'log rows':>9} {'data KiB':>9} {'bucket KiB':>11} {'s/cycle':>8}"
    )
    for s in samples:
        if s["cycle"] % every:
            continue
        entries = "-" if s["lmdb_entries"] is None else s["lmdb_entries"]
        print(
            f"{s['cycle']:>6} {s['rss_kib'] / 1024:>8.1f} {s['rss_anon_kib'] / 1024:>8.1f} {s['fds']:>6} {s['threads']:>8} "
            f"{s['lmdb_bytes'] // 1024:>9} {entries:>8} {s['log_rows']:>9} {s['data_bytes'] // 1024:>9} "
            f"{s['bucket_bytes'] // 1024:>11} {s.get('secs_per_cycle', 0):>8.2f}"
        )


def set_up(binary, data_dir, log_path, args, endpoint, access_key, secret, bucket):
    server, base = start_server(binary, data_dir, log_path)
    try:
        return configure(server, base, binary, data_dir, log_path, args, endpoint, access_key, secret, bucket)
    except BaseException:
        server.terminate()
        server.wait()
        raise


def configure(server, base, binary, data_dir, log_path, args, endpoint, access_key, secret, bucket):
    api = Api(base)
    setup, cookie = api.call("POST", "/api/v1/setup", {"username": "soak", "password": PASSWORD})
    api.headers = {"Cookie": cookie.split(";", 1)[0], "X-CSRF-Token": setup["csrf_token"]}
    token, _ = api.call("POST", "/api/v1/tokens", {"name": "soak"})
    settings, _ = api.call("GET", "/api/v1/admin/settings")
    settings.update({
        "upload_bandwidth_bytes_per_sec": 0, "upload_window": None,
        "transfer_concurrency": 2, "free_space_reserve_bytes": 0,
    })
    api.call("PUT", "/api/v1/admin/settings", settings)
    api.call("PUT", "/api/v1/admin/log/settings", {"max_entries": args.log_keep, "max_age_days": 90})
    api.call("PUT", "/api/v1/admin/remote", {
        "kind": "s3", "endpoint": endpoint, "region": "us-east-1", "bucket": bucket, "prefix": "soak",
        "path_style": True, "access_key_id": access_key, "secret_access_key": secret,
    })
    # The engine reads transfer_concurrency once, at start.
    server.terminate()
    server.wait()
    server, base = start_server(binary, data_dir, log_path)
    api = Api(base)
    api.headers = {"Authorization": "Bearer " + token["token"]}
    return server, api


def main():
    parser = argparse.ArgumentParser()
    for name in ("binary", "work", "endpoint", "access_key", "secret", "bucket_dir"):
        parser.add_argument(name)
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--sample-every", type=int, default=10)
    parser.add_argument("--table-every", type=int, default=100)
    parser.add_argument("--log-keep", type=int, default=200)
    parser.add_argument("--large-mib", type=int, default=24)
    parser.add_argument("--json")
    args = parser.parse_args()
    data_dir = os.path.join(args.work, "piarchive-data")
    subprocess.run(["rm", "-rf", data_dir], check=True)
    log_path = os.path.join(args.work, "piarchive.out")
    bucket = os.path.basename(os.path.normpath(args.bucket_dir))
    server, api = set_up(args.binary, data_dir, log_path, args, args.endpoint, args.access_key, args.secret, bucket)
    samples, began, total_bytes = [], time.monotonic(), 0
    try:
        samples.append(sample(server, api, data_dir, args.bucket_dir, 0))
        mark = time.monotonic()
        for cycle in range(args.cycles):
            total_bytes += cycle_once(api, cycle, args.large_mib)
            done = cycle + 1
            if done % args.sample_every == 0 or done == args.cycles:
                now = time.monotonic()
                row = sample(server, api, data_dir, args.bucket_dir, done)
                row["secs_per_cycle"] = (now - mark) / args.sample_every
                mark = now
                samples.append(row)
                if done % args.table_every == 0:
                    print(f"cycle {done}: {row['rss_kib'] // 1024} MiB RSS, {row['fds']} files, "
                          f"{row['threads']} threads, {(now - began) / done:.2f} s/cycle", file=sys.stderr)
    finally:
        server.terminate()
        server.wait()
        if args.json:
            with open(args.json, "w") as out:
                json.dump(samples, out)
    elapsed = time.monotonic() - began
    print(f"{args.cycles} cycles in {elapsed:.0f} s ({elapsed / args.cycles:.2f} s each), "
          f"{total_bytes / (1 << 20):.0f} MiB uploaded and fetched back; a sample every {args.sample_every} cycles")
    print_table(samples, args.table_every)
    if samples[-1]["tables"] is not None:
        print("LMDB entries at the end: " + ", ".join(f"{k} {v}" for k, v in sorted(samples[-1]["tables"].items())))
    print(slopes(samples, args.cycles))
    failures = growth_failures(samples, args.cycles)
    for failure in failures:
        print("soak: " + failure, file=sys.stderr)
    if failures:
        sys.exit(1)
    print("soak: nothing grew without bound (last quarter's highest within the slack of the second quarter's)")


if __name__ == "__main__":
    main()
