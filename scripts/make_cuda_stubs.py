#!/usr/bin/env python3
"""Build tiny stand-ins for the CUDA libraries that PyPI's torch 2.4.0 links but never calls
on a CPU-only machine, so that `import torch` works without ~2.5 GB of nvidia-* wheels.

    python make_cuda_stubs.py TORCH_LIB_DIR

The PyPI torch wheel is a CUDA build: libtorch.so and libtorch_python.so list
libtorch_cuda.so as a needed library, and libtorch_cuda.so in turn needs cuBLAS, cuBLASLt,
cuDNN, cuFFT, cuRAND, cuSPARSE and NCCL. The dynamic loader refuses to load torch unless a
file with each of those names exists and defines every versioned symbol asked for. This
script reads (with `readelf`) which symbols torch's own libraries import from them, and
compiles (with `cc`) one small library per name that defines exactly those symbols. Each
stub function prints its name and aborts: nothing can run on the stubs silently. They are
reached only through CUDA tensors, which a machine without a GPU never has; the CPU kernels
are libtorch_cpu.so's, the same binary gist links.

The stubs go into TORCH_LIB_DIR, which is on the RUNPATH ($ORIGIN) of torch's libraries,
and are listed in TORCH_LIB_DIR/cuda-stubs.txt.
"""
import os
import re
import subprocess
import sys
import tempfile

# soname -> symbol prefixes of unversioned imports (NCCL and cuRAND export no versions).
STUBS = {
    "libcublas.so.12": ("cublas",),
    "libcublasLt.so.12": ("cublasLt",),
    "libcudnn.so.9": ("cudnn",),
    "libcufft.so.11": ("cufft",),
    "libcurand.so.10": ("curand",),
    "libcusparse.so.12": ("cusparse",),
    "libnccl.so.2": ("nccl", "pncclMemAlloc", "pncclMemFree"),
}

UND = re.compile(r"^\s*\d+:\s+\S+\s+\S+\s+(\S+)\s+GLOBAL\s+\S+\s+UND\s+([^@\s]+)(?:@(\S+))?")
DEF = re.compile(r"^\s*\d+:\s+\S+\s+\S+\s+\S+\s+(?:GLOBAL|WEAK)\s+\S+\s+\d+\s+([^@\s]+)")


def readelf(path, *flags):
    try:
        return subprocess.run(["readelf", "-W", *flags, path], check=True,
                              capture_output=True, text=True).stdout
    except FileNotFoundError:
        sys.exit("make_cuda_stubs: readelf not found: apt-get install -y binutils")


def needed(path):
    return set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", readelf(path, "-d")))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    lib = sys.argv[1]
    elves = [os.path.join(lib, f) for f in sorted(os.listdir(lib))
             if ".so" in f and os.path.isfile(os.path.join(lib, f)) and f not in STUBS]
    elves.append(next(os.path.join(lib, "..", f) for f in os.listdir(os.path.join(lib, ".."))
                      if f.startswith("_C.") and f.endswith(".so")))
    defined, wanted = set(), {name: set() for name in STUBS}
    unversioned = set()
    for path in elves:
        links_stub = bool(needed(path) & set(STUBS))
        syms = readelf(path, "--dyn-syms")
        for line in syms.splitlines():
            d = DEF.match(line)
            if d:
                defined.add(d.group(1))
                continue
            u = UND.match(line)
            if not u:
                continue
            _, name, version = u.groups()
            if version in STUBS:
                wanted[version].add(name)
            elif version is None and links_stub:
                unversioned.add(name)
    # Unversioned imports that no real torch library defines go to the stub whose prefix
    # they carry; anything else is left to the loader (it reports what is missing).
    for name in sorted(unversioned - defined):
        owner = max((s for s, prefixes in STUBS.items() if name.startswith(prefixes)),
                    key=lambda s: max(len(p) for p in STUBS[s] if name.startswith(p)),
                    default=None)
        if owner:
            wanted[owner].add(name)
    made = []
    with tempfile.TemporaryDirectory() as tmp:
        for soname, names in wanted.items():
            c = os.path.join(tmp, soname + ".c")
            version_script = os.path.join(tmp, soname + ".map")
            with open(c, "w") as f:
                f.write("#include <stdio.h>\n#include <stdlib.h>\n"
                        "static void stub(const char *name) {\n"
                        f'  fprintf(stderr, "bench/peers: CUDA stub {soname}: %s called; '
                        'this venv runs torch on the CPU only\\n", name);\n'
                        "  abort();\n}\n")
                for name in sorted(names):
                    f.write(f'int {name}(void) {{ stub("{name}"); return 0; }}\n')
            with open(version_script, "w") as f:
                body = "".join(f"    {n};\n" for n in sorted(names))
                exported = f"  global:\n{body}" if names else ""
                f.write(f"{soname} {{\n{exported}  local: *;\n}};\n")
            out = os.path.join(lib, soname)
            try:
                subprocess.run(["cc", "-shared", "-fPIC", "-O0", "-w", "-o", out + ".tmp", c,
                                f"-Wl,-soname,{soname}", f"-Wl,--version-script={version_script}"],
                               check=True)
            except FileNotFoundError:
                sys.exit("make_cuda_stubs: no C compiler (cc): apt-get install -y build-essential")
            os.replace(out + ".tmp", out)
            made.append(f"{soname} {len(names)} symbols")
    with open(os.path.join(lib, "cuda-stubs.txt"), "w") as f:
        f.write("# CPU-only stand-ins written by scripts/make_cuda_stubs.py\n")
        f.write("".join(m + "\n" for m in made))
    print("make_cuda_stubs: " + ", ".join(made))


if __name__ == "__main__":
    main()
