#!/usr/bin/env python3
"""The corpus of bench/compress: about 1 GiB made on this machine, as one tar
file (what a family member's backup client would send the appliance).

  docs/    text and manual pages from /usr/share (doc, man, info, common-licenses, ...)
  lib/     binaries and libraries from /usr/lib and /usr/bin
  db.sqlite  an SQLite database filled here (orders, customers, notes)
  photos/  random data standing in for photos (incompressible)

Usage: compress_corpus.py OUT.tar RANDOM.bin [MiB for docs lib db random]
Writes RANDOM.bin too: the random share alone, for its own timing.
Deterministic for one machine (files sorted, seeded random data).
"""

import os
import random
import sqlite3
import sys
import tarfile
import tempfile

MIB = 1024 * 1024


def add_tree(tar, roots, arc_root, budget):
    """Adds regular files under `roots` (sorted walk) until `budget` bytes."""
    used = 0
    for root in roots:
        for directory, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(directory, name)
                try:
                    if os.path.islink(path) or not os.path.isfile(path):
                        continue
                    size = os.path.getsize(path)
                    if used + size > budget:
                        continue
                    tar.add(path, arcname=os.path.join(arc_root, path.lstrip("/")), recursive=False)
                except OSError:
                    continue
                used += size
                if used >= budget * 0.99:
                    return used
    return used


def make_db(path, budget):
    rng = random.Random(7)
    words = open("/usr/share/dict/words").read().split() if os.path.exists("/usr/share/dict/words") else [
        "order", "invoice", "garden", "kitchen", "shipping", "paid", "open", "closed", "family",
        "school", "holiday", "receipt", "insurance", "car", "house", "doctor", "bank", "music"]
    db = sqlite3.connect(path)
    db.execute("create table customers (id integer primary key, name text, email text, city text)")
    db.execute("create table orders (id integer primary key, customer integer, day text, total real, state text, note text)")
    cities = ["Lyon", "Bern", "Graz", "Leeds", "Porto", "Gent", "Turku", "Cork"]
    for i in range(20000):
        name = f"{rng.choice(words).title()} {rng.choice(words).title()}"
        db.execute("insert into customers values (?,?,?,?)",
                   (i, name, name.lower().replace(" ", ".") + "@example.org", rng.choice(cities)))
    order = 0
    while os.path.getsize(path) < budget:
        rows = []
        for _ in range(20000):
            order += 1
            note = " ".join(rng.choice(words) for _ in range(rng.randint(3, 25)))
            rows.append((order, rng.randrange(20000), f"2025-{rng.randint(1, 12):02}-{rng.randint(1, 28):02}",
                         round(rng.uniform(1, 900), 2), rng.choice(["paid", "open", "shipped"]), note))
        db.executemany("insert into orders values (?,?,?,?,?,?)", rows)
        db.commit()
    db.close()


def main():
    out, random_path = sys.argv[1:3]
    docs, lib, db_mib, random_mib = (int(x) for x in (sys.argv[3:7] or [300, 380, 160, 256]))
    with open(random_path, "wb") as photos:
        rng = random.Random(11)
        for _ in range(random_mib):
            photos.write(rng.randbytes(MIB))
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(out))) as tmp:
        db_path = os.path.join(tmp, "db.sqlite")
        make_db(db_path, db_mib * MIB)
        with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
            shares = {
                "docs": add_tree(tar, ["/usr/share/doc", "/usr/share/man", "/usr/share/info",
                                       "/usr/share/common-licenses", "/usr/share/perl", "/usr/share/python3",
                                       "/usr/share/vim", "/usr/share/X11", "/usr/share/zoneinfo"], "docs", docs * MIB),
                "lib": add_tree(tar, ["/usr/lib/x86_64-linux-gnu", "/usr/bin", "/usr/lib"], "lib", lib * MIB),
            }
            tar.add(db_path, arcname="db.sqlite")
            shares["db"] = os.path.getsize(db_path)
            tar.add(random_path, arcname="photos/random.bin")
            shares["random"] = random_mib * MIB
    print(" ".join(f"{name}={size // MIB}MiB" for name, size in shares.items()),
          f"tar={os.path.getsize(out) // MIB}MiB")


if __name__ == "__main__":
    main()
