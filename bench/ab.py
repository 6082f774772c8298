#!/usr/bin/env python3
"""Two builds of ftpd/ftpc against each other, in alternation, in one run:
the check that a change made no row slower.

    python3 bench/ab.py OLD_BIN_DIR NEW_BIN_DIR

Each directory holds `ftpd` and `ftpc` (a `target/release` of each commit,
e.g. an earlier commit built in a `git worktree`). Both builds serve on the
same disk, with the same settings as bench.py (no fsync, page reporting off
for the run); the rows are 1 GiB put and get in plaintext and TLS, and a
tree of 1000 × 4 KiB put and got with 64 in flight. The builds alternate
round by round (ROUNDS, default 7), and the table gives each one's median
and the new one's ratio to the old. Like bench.py, it first waits out
ext4's recently-deleted-inode window after an earlier run's clean-up (the
small-file rows run several times slower inside it).
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the helpers the benchmark itself uses)

ROUNDS = int(os.environ.get("ROUNDS", "7"))
# AB_ROWS: only the rows whose name contains this text (e.g. "get").
ONLY = os.environ.get("AB_ROWS", "")
SIZE = 1 << 30
SMALL = 1000


class Build:
    def __init__(self, name, bin_dir, work):
        self.name, self.bin, self.work = name, Path(bin_dir), work / name
        self.work.mkdir()
        self.root = self.work / "root"
        self.procs, self.ports = [], {}
        subprocess.run(
            [self.bin / "ftpd", "user", "add", bench.USER, "--root", self.root, "--password-stdin"],
            input=bench.PASSWORD.encode(),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for mode, extra in (("plain", ["--no-tls"]), ("tls", [])):
            port = bench.free_port()
            cmd = [self.bin / "ftpd", "serve", "--root", self.root, "--listen", f"127.0.0.1:{port}"]
            self.procs.append(
                subprocess.Popen(cmd + ["--fsync", "false"] + extra, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
            bench.wait_port(port)
            self.ports[mode] = port
        self.env = dict(os.environ, FTPC_PASSWORD=bench.PASSWORD, FTPC_KNOWN_HOSTS=str(self.work / "known_hosts"))

    def ftpc(self, mode, *args):
        tls = ["--no-tls"] if mode == "plain" else ["--accept-new-host"]
        port = self.ports[mode]
        return [self.bin / "ftpc", "-s", f"127.0.0.1:{port}", "-u", bench.USER, "--quiet", "--fsync", "false", *tls, *args]

    def stop(self):
        for p in self.procs:
            p.kill()
            p.wait()


def main():
    old, new = sys.argv[1:3]
    results = {}
    bench.wait_for_freed_inodes()
    with bench.host_keeps_freed_memory(), tempfile.TemporaryDirectory(dir=bench.WORK_PARENT) as work:
        work = Path(work)
        big = work / "big.bin"
        subprocess.run(["head", "-c", str(SIZE), "/dev/urandom"], stdout=open(big, "wb"), check=True)
        tree = work / "tree"
        tree.mkdir()
        for i in range(SMALL):
            (tree / f"f{i:04}").write_bytes(os.urandom(4096))
        builds = [Build("old", old, work), Build("new", new, work)]
        try:
            for r in range(ROUNDS):
                for b in builds if r % 2 == 0 else reversed(builds):
                    rows = [
                        ("plaintext put", lambda: b.ftpc("plain", "put", big, "big.bin"), SIZE),
                        ("plaintext get", lambda: b.ftpc("plain", "get", "big.bin", b.work / "got.bin"), SIZE),
                        ("TLS put", lambda: b.ftpc("tls", "put", big, "big.bin"), SIZE),
                        ("TLS get", lambda: b.ftpc("tls", "get", "big.bin", b.work / "got.bin"), SIZE),
                        ("1000 × 4 KiB put -r", lambda: b.ftpc("plain", "put", "-r", tree, f"t{r}"), SMALL),
                        ("1000 × 4 KiB get -r", lambda: b.ftpc("plain", "get", "-r", f"t{r}", b.work / f"t{r}"), SMALL),
                    ]
                    for name, cmd, units in (row for row in rows if ONLY in row[0]):
                        bench.rm(b.work / "got.bin")
                        bench.lend_pages(b.work, SIZE if units == SIZE else 0)
                        took = bench.timed(cmd(), env=b.env)
                        rate = units / took / (1e6 if units == SIZE else 1)
                        results.setdefault((name, b.name), []).append(rate)
                        print(f"round {r + 1}/{ROUNDS}  {b.name}  {name:22} {rate:9.0f}", flush=True)
        finally:
            for b in builds:
                b.stop()
            shutil.rmtree(work, ignore_errors=True)
            bench.CLEANED.touch()
    print("\n| row | old (median) | new (median) | new ÷ old | unit |\n|---|---:|---:|---:|---|")
    for name in dict.fromkeys(n for n, _ in results):
        o, n = (statistics.median(results[(name, b)]) for b in ("old", "new"))
        unit = "files/s" if "×" in name else "MB/s"
        print(f"| {name} | {o:.0f} | {n:.0f} | {n / o:.2f} | {unit} |")


if __name__ == "__main__":
    main()
