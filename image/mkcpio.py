#!/usr/bin/env python3
"""Writes a cpio archive in the "newc" format the kernel unpacks as its initramfs.

No root needed: device nodes are written as archive entries, not created on the host.
Every entry is owned by root with a fixed mtime, so the output is reproducible.

usage: mkcpio.py ROOT_DIR OUT_FILE
  Archives ROOT_DIR's files, directories and symlinks, plus /dev/console (5,1) and
  /dev/null (1,3), which the kernel needs before devtmpfs is mounted.
"""
import os
import stat
import sys

MTIME = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))


class Writer:
    def __init__(self, out):
        self.out = out
        self.ino = 1
        self.size = 0

    def entry(self, name, mode, data=b"", rdev=(0, 0), nlink=1):
        namez = name.encode() + b"\0"
        fields = [
            self.ino, mode, 0, 0, nlink, MTIME, len(data),
            0, 0, rdev[0], rdev[1], len(namez), 0,
        ]
        self.ino += 1
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self.write(header + namez)
        self.pad()
        self.write(data)
        self.pad()

    def write(self, b):
        self.out.write(b)
        self.size += len(b)

    def pad(self):
        self.write(b"\0" * ((4 - self.size % 4) % 4))

    def trailer(self):
        self.entry("TRAILER!!!", 0)
        self.write(b"\0" * ((512 - self.size % 512) % 512))


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    root, out_file = sys.argv[1:]
    with open(out_file, "wb") as out:
        w = Writer(out)
        names = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for n in sorted(dirnames + filenames):
                names.append(os.path.relpath(os.path.join(dirpath, n), root))
        has_dev = "dev" in names
        if not has_dev:
            w.entry("dev", stat.S_IFDIR | 0o755, nlink=2)
        for rel in sorted(names):
            path = os.path.join(root, rel)
            st = os.lstat(path)
            perm = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                w.entry(rel, stat.S_IFLNK | 0o777, os.readlink(path).encode())
            elif stat.S_ISDIR(st.st_mode):
                w.entry(rel, stat.S_IFDIR | perm, nlink=2)
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    w.entry(rel, stat.S_IFREG | perm, f.read())
        w.entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
        w.entry("dev/null", stat.S_IFCHR | 0o666, rdev=(1, 3))
        w.trailer()


if __name__ == "__main__":
    main()
