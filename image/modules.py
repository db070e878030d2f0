#!/usr/bin/env python3
"""Copies the kernel modules the initramfs needs and writes their load order.

Debian's kernel package ships no modules.dep, so the order is computed here, at
image build time, from each module's own `depends=` (read with `modinfo -F depends`).

usage: modules.py MODULES_DIR ROOTS_FILE OUT_DIR
  MODULES_DIR  the kernel's /lib/modules/<version> from the extracted package
  ROOTS_FILE   module names, one a line (# comments), e.g. image/modules.txt
  OUT_DIR      the initramfs's /lib/modules: receives the .ko files and load-order
"""
import os
import shutil
import subprocess
import sys


def normalize(name):
    return name.replace("-", "_")


def index_modules(modules_dir):
    """Module name -> path of its .ko file (relative to modules_dir)."""
    index = {}
    for root, _dirs, files in os.walk(modules_dir):
        for f in files:
            for ext in (".ko", ".ko.xz", ".ko.zst", ".ko.gz"):
                if f.endswith(ext):
                    rel = os.path.relpath(os.path.join(root, f), modules_dir)
                    index[normalize(f[: -len(ext)])] = rel
    return index


def depends(path):
    out = subprocess.run(
        ["modinfo", "-F", "depends", path], check=True, capture_output=True, text=True
    ).stdout.strip()
    return [normalize(d) for d in out.split(",") if d]


def load_order(roots, index, modules_dir):
    """Depth-first post-order: every module after everything it depends on."""
    order, state = [], {}

    def visit(name, chain):
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise SystemExit("modules.py: dependency cycle: " + " -> ".join(chain + [name]))
        if name not in index:
            raise SystemExit(f"modules.py: no module named {name} in {modules_dir}")
        state[name] = "visiting"
        for dep in depends(os.path.join(modules_dir, index[name])):
            visit(dep, chain + [name])
        state[name] = "done"
        order.append(name)

    for root in roots:
        visit(normalize(root), [])
    return order


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    modules_dir, roots_file, out_dir = sys.argv[1:]
    with open(roots_file) as f:
        roots = [l.split("#")[0].strip() for l in f]
    roots = [r for r in roots if r]
    index = index_modules(modules_dir)
    order = load_order(roots, index, modules_dir)
    lines = ["# load order computed by image/modules.py from modinfo depends="]
    for name in order:
        rel = index[name]
        dest = os.path.join(out_dir, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        src = os.path.join(modules_dir, rel)
        # finit_module wants plain ELF: decompress compressed modules here.
        if rel.endswith(".ko"):
            shutil.copyfile(src, dest)
        else:
            tool = {".xz": ["xz", "-dc"], ".zst": ["zstd", "-dcq"], ".gz": ["gzip", "-dc"]}
            ext = os.path.splitext(rel)[1]
            dest = dest[: -len(ext)]
            rel = rel[: -len(ext)]
            with open(dest, "wb") as out:
                subprocess.run(tool[ext] + [src], check=True, stdout=out)
        lines.append(rel)
    with open(os.path.join(out_dir, "load-order"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"modules.py: {len(order)} modules ({len(roots)} asked for)")


if __name__ == "__main__":
    main()
