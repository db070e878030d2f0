#!/usr/bin/env python3
"""bench/destinations' driver: one archive backed up to one or two S3 servers.

Starts `piarchive serve` on a fresh data dir, sets it up through the HTTP API
(admin, API token, settings, the main destination on ENDPOINT and, when
ENDPOINT2 is given, a copy destination there: `POST /api/v1/admin/remotes`),
uploads FILE with one `curl -T` (ingest: not timed), then times the backup:
from the end of the upload to the archive state `backed_up`, which with two
destinations means complete on both. The server's peak RSS (VmHWM) is reset
at the end of the upload, so it is the backup's own.

Prints one line: `backup_s peak_rss_mib`.

Usage: destinations_piarchive.py BINARY WORKDIR ACCESS_KEY SECRET FILE CONCURRENCY PREFIX ENDPOINT [ENDPOINT2]
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from remote_piarchive import Api, StateWatch, reset_hwm, start_server, vm_hwm_mib  # noqa: E402


def s3(endpoint, access_key, secret, prefix):
    return {"kind": "s3", "endpoint": endpoint, "region": "us-east-1", "bucket": "piarchive",
            "prefix": prefix, "path_style": True, "access_key_id": access_key, "secret_access_key": secret}


def main():
    binary, work, access_key, secret, path, concurrency, prefix, endpoint = sys.argv[1:9]
    second = sys.argv[9] if len(sys.argv) > 9 else None
    data_dir = os.path.join(work, "piarchive-data-" + prefix)
    subprocess.run(["rm", "-rf", data_dir], check=True)
    log_path = os.path.join(work, "piarchive.out")
    server, base = start_server(binary, data_dir, log_path)
    try:
        api = Api(base)
        setup, cookie = api.call("POST", "/api/v1/setup", {"username": "bench", "password": "bench password"})
        api.headers = {"Cookie": cookie.split(";", 1)[0], "X-CSRF-Token": setup["csrf_token"]}
        token, _ = api.call("POST", "/api/v1/tokens", {"name": "bench"})
        api.call("PUT", "/api/v1/admin/settings", {
            "registration_open": True, "upload_bandwidth_bytes_per_sec": 0, "upload_window": None,
            "transfer_concurrency": int(concurrency), "free_space_reserve_bytes": 0,
        })
        api.call("PUT", "/api/v1/admin/remote", s3(endpoint, access_key, secret, prefix))
        if second is not None:
            copy = dict(s3(second, access_key, secret, prefix), name="second server")
            api.call("POST", "/api/v1/admin/remotes", copy)
        # The engine reads transfer_concurrency once, at start.
        server.terminate()
        server.wait()
        server, base = start_server(binary, data_dir, log_path)
        api = Api(base)
        api.headers = {"Authorization": "Bearer " + token["token"]}
        watch = StateWatch(api)
        name = os.path.basename(path)
        upload = subprocess.run(
            ["curl", "-sf", "-H", "Authorization: " + api.headers["Authorization"], "-T", path,
             f"{base}/api/v1/archives?name={name}&filename={name}"],
            check=True, capture_output=True,
        )
        uploaded_at = time.time()
        reset_hwm(server.pid)
        archive_id = json.loads(upload.stdout)["id"]
        backed_up_at = watch.wait(api, archive_id, "backed_up", uploaded_at)
        rss = vm_hwm_mib(server.pid)
        archive, _ = api.call("GET", f"/api/v1/archives/{archive_id}")
        copies = archive.get("copies") or []
        if any(copy.get("state") != "complete" for copy in copies):
            raise RuntimeError(f"backed up before every copy was complete: {archive}")
        if len(copies) != (2 if second else 1):
            raise RuntimeError(f"unexpected copies: {copies}")
        print(f"{backed_up_at - uploaded_at:.3f} {rss:.1f}")
    finally:
        server.terminate()
        server.wait()
        subprocess.run(["rm", "-rf", data_dir], check=False)


if __name__ == "__main__":
    main()
