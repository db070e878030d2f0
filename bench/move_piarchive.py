#!/usr/bin/env python3
"""bench/move's driver: one remote move timed against `rclone copy`.

Starts `piarchive serve` on a fresh data dir (its default folder remote,
`<data>/remote`), uploads FILE with `curl -T`, waits until it is backed up
to the folder and evicts it (`uncached`: the move then copies the sealed
parts from the folder, not from a local file). Then, in one run:

  rclone: `rclone copy <data>/remote bench:rclone/<prefix>` (--transfers 4);
  piarchive: `PUT /api/v1/admin/remote` with the S3 settings (4 copiers)
             until the move has finished (every part on S3 and checked).

Both copy the same folder to the same S3 server. Prints one line:
`piarchive_s rclone_s bytes piarchive_cpu_s rclone_cpu_s s3_cpu_piarchive_s s3_cpu_rclone_s`.

Usage: move_piarchive.py BINARY WORKDIR ENDPOINT ACCESS_KEY SECRET FILE S3_PID
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from remote_piarchive import Api, StateWatch, cpu_seconds, start_server  # noqa: E402

POLL_SECS = 0.05
LIMIT_SECS = 3600


def folder_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, name)) for name in files)
    return total


def main():
    binary, work, endpoint, access_key, secret, path, s3_pid = sys.argv[1:8]
    s3_pid = int(s3_pid)
    data_dir = os.path.join(work, "piarchive-data")
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
            "transfer_concurrency": 4, "free_space_reserve_bytes": 0,
        })
        api.headers = {"Authorization": "Bearer " + token["token"]}
        watch = StateWatch(api)
        name = os.path.basename(path)
        upload = subprocess.run(
            ["curl", "-sf", "-H", "Authorization: " + api.headers["Authorization"], "-T", path,
             f"{base}/api/v1/archives?name={name}&filename={name}"],
            check=True, capture_output=True,
        )
        uploaded_at = time.time()
        import json
        archive_id = json.loads(upload.stdout)["id"]
        watch.wait(api, archive_id, "backed_up", uploaded_at)
        api.call("POST", f"/api/v1/archives/{archive_id}/uncache")
        api.wait(archive_id, ("uncached",))
        folder = os.path.join(data_dir, "remote")
        size = folder_bytes(folder)
        subprocess.run(["sync"], check=True)

        # rclone first: the move deletes the folder when it is done.
        env = dict(os.environ)
        env.pop("AWS_CA_BUNDLE", None)
        cpu_s3 = cpu_seconds(s3_pid)
        started = time.time()
        subprocess.run(["/usr/bin/time", "-f", "%U %S", "-o", os.path.join(work, "rclone.time"),
                        "rclone", "copy", "--transfers", "4", folder, "bench:rclone/move"],
                       check=True, env=env)
        rclone_s = time.time() - started
        s3_rclone = cpu_seconds(s3_pid) - cpu_s3
        with open(os.path.join(work, "rclone.time")) as timing:
            rclone_cpu = sum(float(x) for x in timing.read().split())

        cpu_s3 = cpu_seconds(s3_pid)
        cpu_own = cpu_seconds(server.pid)
        started = time.time()
        api.call("PUT", "/api/v1/admin/remote", {
            "kind": "s3", "endpoint": endpoint, "region": "us-east-1", "bucket": "piarchive",
            "prefix": "move", "path_style": True, "access_key_id": access_key, "secret_access_key": secret,
        })
        deadline = time.monotonic() + LIMIT_SECS
        while True:
            remote, _ = api.call("GET", "/api/v1/admin/remote")
            if remote.get("move") is None:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the move did not finish")
            time.sleep(POLL_SECS)
        piarchive_s = time.time() - started
        own_cpu = cpu_seconds(server.pid) - cpu_own
        s3_piarchive = cpu_seconds(s3_pid) - cpu_s3
        archive, _ = api.call("GET", f"/api/v1/archives/{archive_id}")
        if archive["parts_remote"] != archive["parts_total"]:
            raise RuntimeError(f"not every part moved: {archive}")
        print(f"{piarchive_s:.3f} {rclone_s:.3f} {size} {own_cpu:.2f} {rclone_cpu:.2f} "
              f"{s3_piarchive:.2f} {s3_rclone:.2f}")
    finally:
        server.terminate()
        server.wait()
        subprocess.run(["rm", "-rf", data_dir], check=False)


if __name__ == "__main__":
    main()
