#!/usr/bin/env bash
# Prints gist's module-level import graph, read from the code's own `crate::…` paths (and
# `gist::…` in src/main.rs), and fails when the layers do not point one way:
#   - any import cycle between top-level modules;
#   - any edge from the client to anything but the generated API (`pb`);
#   - any edge that reaches up the declared order below.
# Usage: scripts/layers.sh [--dot]   (--dot prints the graph in Graphviz form instead)
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 - "$@" <<'PY'
import collections, pathlib, re, sys

# The layers, lowest first. A module may import modules of a lower rank, and base modules
# may import each other (acyclically). The client may import only `pb`.
RANKS = {
    "error": 0, "metrics": 0, "pb": 0, "role": 0,   # base: used by any layer
    "text": 1,
    "engine": 2,
    "tasks": 3, "models": 3,
    "worker": 4, "eval": 4,
    "server": 5,
    "client": 5,
    "cli": 6,
    "main": 7,
}
CLIENT_MAY_USE = {"pb"}

src = pathlib.Path("src")
edges = collections.defaultdict(set)
where = {}
path_re = re.compile(r"\b(crate|gist)::([a-z_][a-z0-9_]*)")
# `use crate::{a, b::c}` groups name several modules at once.
group_re = re.compile(r"\b(?:crate|gist)::\{([^}]*)\}")
super_re = re.compile(r"\bsuper::([a-z_][a-z0-9_]*)")

def strip_comments(text):
    out = []
    for line in text.splitlines():
        code = line.split("//", 1)[0] if "//" in line else line
        out.append(code)
    return "\n".join(out)

for file in sorted(src.rglob("*.rs")):
    rel = file.relative_to(src)
    if rel.parts == ("lib.rs",):
        continue
    module = "main" if rel.parts == ("main.rs",) else rel.parts[0].removesuffix(".rs")
    if module not in RANKS:
        sys.exit(f"layers: {file} belongs to module `{module}`, which has no layer: add it to scripts/layers.sh")
    code = strip_comments(file.read_text())
    targets = {m.group(2) for m in path_re.finditer(code)}
    for g in group_re.finditer(code):
        targets |= {part.strip().split("::")[0] for part in g.group(1).split(",") if part.strip()}
    # In a top-level module's own root file, `super::` is the crate root.
    if len(rel.parts) == 1 or rel.parts[1:] == ("mod.rs",):
        targets |= {m.group(1) for m in super_re.finditer(code)}
    for target in targets:
        if target in RANKS and target != module:
            edges[module].add(target)
            where.setdefault((module, target), str(file))

if "--dot" in sys.argv[1:]:
    print("digraph gist {")
    for m in sorted(RANKS, key=lambda m: (RANKS[m], m)):
        for t in sorted(edges.get(m, ())):
            print(f'  "{m}" -> "{t}";')
    print("}")
    sys.exit(0)

print("module-level imports (module -> what it uses):")
for m in sorted(RANKS, key=lambda m: (-RANKS[m], m)):
    print(f"  {m:8} -> {', '.join(sorted(edges.get(m, ()))) or '-'}")

problems = []
for m, targets in edges.items():
    for t in targets:
        if m == "client" and t not in CLIENT_MAY_USE:
            problems.append(f"client -> {t} ({where[(m, t)]}): the client may use only {', '.join(sorted(CLIENT_MAY_USE))}")
        elif RANKS[t] > RANKS[m] or (RANKS[t] == RANKS[m] and RANKS[m] != 0):
            problems.append(f"{m} -> {t} ({where[(m, t)]}): reaches up or sideways (rank {RANKS[m]} -> {RANKS[t]})")

# Cycles, by depth-first search (also among base modules).
state, stack = {}, []
def visit(m):
    state[m] = "open"
    stack.append(m)
    for t in sorted(edges.get(m, ())):
        if state.get(t) == "open":
            cycle = stack[stack.index(t):] + [t]
            problems.append("cycle: " + " -> ".join(cycle))
        elif t not in state:
            visit(t)
    stack.pop()
    state[m] = "done"
for m in sorted(RANKS):
    if m not in state:
        visit(m)

if problems:
    print("\nlayers: FAILED")
    for p in problems:
        print("  " + p)
    sys.exit(1)
print(f"\nlayers: OK ({sum(len(t) for t in edges.values())} edges, no cycle, the client uses only pb)")
PY
