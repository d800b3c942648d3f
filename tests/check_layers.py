#!/usr/bin/env python3
"""The folders of include/kvgate/ are layers: a header includes only headers of its own folder and of
the folders it builds on (CMakeLists.txt's components, docs/packaging.md). Prints every include that
points the wrong way and exits 1; `include/kvgate/engines.hpp` and `include/kvgate.hpp` sit on top."""
import pathlib, re, sys

builds_on = {
    "model": set(),
    "stats": set(),
    "engine": {"model"},
    "experiment": {"model", "stats", "engine"},
    "http": {"model", "stats", "engine", "experiment"},
    "python": {"model", "stats", "engine", "experiment"},
    "report": {"model", "stats", "engine", "experiment"},
}
root = pathlib.Path(sys.argv[1]) / "include" / "kvgate"
wrong = []
for header in sorted(root.glob("*/*.hpp")):
    folder = header.parent.name
    if folder not in builds_on:
        wrong.append(f"{header}: folder '{folder}' is no layer; add it to tests/check_layers.py and CMakeLists.txt")
        continue
    for n, line in enumerate(header.read_text().splitlines(), 1):
        m = re.match(r'#include "(.*)"', line)
        if not m:
            continue
        target = m.group(1).split("/")
        if len(target) != 3 or target[0] != "kvgate":
            wrong.append(f"{header}:{n}: {line.strip()}: include kvgate's headers as \"kvgate/<folder>/<name>.hpp\"")
        elif target[1] != folder and target[1] not in builds_on[folder]:
            wrong.append(f"{header}:{n}: {folder}/ includes {target[1]}/, which it does not build on")
print("\n".join(wrong) if wrong else f"layers: {len(list(root.glob('*/*.hpp')))} headers, every include points down")
sys.exit(1 if wrong else 0)
