#!/usr/bin/env python3
"""ftpd/ftpc against the machine's limit and the peers, on loopback.

Run through bench/run.sh, which installs the peers and builds the release
binaries. Every contender moves the same 1 GiB file of random bytes; the
contenders run in alternation, ROUNDS times each, and the table gives
medians and ratios from this one run (the machine is shared and noisy, so
absolute times from different runs are not comparable).
"""

import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# BENCH_BIN: another build's binaries (an earlier commit's, to compare).
BIN = Path(os.environ.get("BENCH_BIN", REPO / "target" / "release"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
SIZE = int(os.environ.get("BENCH_SIZE", str(1 << 30)))
USER = "ftpbench"
PASSWORD = "bench-" + os.urandom(6).hex()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)


def settle():
    """Flushes what earlier contenders left dirty, just before a clock
    starts, so that no contender pays for another's writeback. Right after
    large files were written and deleted, a Python loop created 1,800–3,800
    small files per second without it and 39,000 with it; the limit row
    (socat → file) collapsed to 350–640 MB/s in some rounds of two runs
    without it and held at 1,800–2,200 in the runs since. The sync itself
    takes about 0.04 s."""
    os.sync()


WORK_PARENT = Path("/var/tmp")
CLEANED = WORK_PARENT / "ftpbench.cleaned"
FREED_INODES_RECENT = 360


def wait_for_freed_inodes():
    """Waits until the inodes that an earlier run deleted may be reused.
    On an ext4 filesystem without a journal (this machine's root), ext4
    will not reuse an inode freed in the last 60 s, or in the last 360 s
    while the block holding it is unwritten, and every file it creates
    scans past all such inodes in the group (`recently_deleted()` in
    fs/ext4/ialloc.c). Just after a run's clean-up (some 100,000 files),
    Python created files in /var/tmp at 1,000–4,000 a second for about six
    minutes, against 22,000 after; ftpd's mput and mget fell to 1,000–3,000
    files/s. Each run marks when it cleaned up; the next one waits out the
    rest of those six minutes before its first clock."""
    try:
        since = time.time() - CLEANED.stat().st_mtime
    except FileNotFoundError:
        return
    left = FREED_INODES_RECENT - since
    if left > 0:
        print(f"bench: waiting {left:.0f} s for the inodes the last run freed (see wait_for_freed_inodes)", flush=True)
        time.sleep(left)


PAGE_REPORTING = Path("/sys/module/page_reporting/parameters/page_reporting_order")
# Above the largest block the buddy allocator keeps (order 10): no freed
# block is large enough to be reported.
NO_REPORTING = "11"


@contextmanager
def host_keeps_freed_memory():
    """Stops the guest reporting freed memory to the hypervisor for the run,
    and restores the setting after (on a machine without free page
    reporting, or with BENCH_PAGE_REPORTING=on, it changes nothing). With
    reporting on, memory freed a second earlier has gone back to the host
    and the next write into it waits for the hypervisor: `lend_pages`
    covers a single 1 GiB transfer, but the 200-client row writes 6.7 GB
    in about 4 s, and its rounds took 4.3–5.0 s with reporting on against
    3.5–4.1 s with it off (alternating, same binaries, same minute). The
    setting is the same for every contender; bare metal has no such
    effect."""
    try:
        before = PAGE_REPORTING.read_text().strip()
    except OSError:
        before = None  # no free page reporting here
    changed = before is not None and os.environ.get("BENCH_PAGE_REPORTING") != "on" and set_reporting(before)
    try:
        yield
    finally:
        if changed:
            PAGE_REPORTING.write_text(before)


def set_reporting(before):
    """Turns free page reporting off; false if the kernel refuses."""
    try:
        PAGE_REPORTING.write_text(NO_REPORTING)
    except OSError as e:
        # Kernels that cap the order at the largest block refuse this.
        print(f"bench: cannot turn free page reporting off ({e}); the 200-client row may run slower", flush=True)
        return False
    print(f"bench: free page reporting off for this run ({PAGE_REPORTING} = {NO_REPORTING}, was {before})", flush=True)
    return True


def timed(cmd, **kw):
    settle()
    start = time.perf_counter()
    run(cmd, **kw)
    return time.perf_counter() - start


def rm(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def lend_pages(directory, size):
    """Writes `size` bytes to a scratch file in `directory` and deletes it,
    just before a timed transfer. This machine's balloon driver hands free
    memory back to the host within about a second, and DAMON pages out
    files left alone for a minute; a transfer then writes its file into
    memory the hypervisor has to fault in again, at a fraction of the
    speed. The pages freed here are the ones the kernel hands out next, so
    every contender writes into memory the host still backs, as it would
    on bare metal."""
    block = bytes(256 << 10)
    path = Path(directory) / "lend.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(size // len(block)):
            os.write(fd, block)
    finally:
        os.close(fd)
        os.unlink(path)


def cache(path):
    """Reads `path` through, so that the contender about to read it finds it
    all in the page cache. The benchmark compares transfers with the page
    cache warm, and this machine's kernel pages out file pages left untouched
    for a minute (DAMON): minutes after a run, its source file had under
    10 MiB of its 1 GiB left in the cache."""
    with open(path, "rb", buffering=0) as f:
        while f.read(4 << 20):
            pass


class Rss:
    """Peak resident memory of a process, sampled while a transfer runs."""

    def __init__(self, pid):
        self.pid = pid

    def now(self):
        for line in open(f"/proc/{self.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def during(self, cmd, **kw):
        """Runs `cmd` and returns its wall time and this process's peak RSS
        meanwhile (sampled every 10 ms by a helper thread, so the clock
        stops when `cmd` does)."""
        import threading

        peak = [0]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], self.now())
                done.wait(0.01)

        sampler = threading.Thread(target=sample)
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, **kw)
        sampler.start()
        proc.wait()
        took = time.perf_counter() - start
        done.set()
        sampler.join()
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd} failed")
        return took, max(peak[0], self.now())


class Bench:
    def __init__(self, work):
        self.work = Path(work)
        self.src = self.work / "big.bin"
        self.procs = []
        self.times = {}
        self.rss = {}
        # What the small-file and tree rows leave behind: removed
        # only at the end of the run, since creating files shortly after
        # mass deletions is slow here (see `wait_for_freed_inodes`).
        self.leftovers = []

    def record(self, name, seconds):
        self.times.setdefault(name, []).append(seconds)

    # ---------------------------------------------------------------- setup
    def setup(self):
        if not self.src.exists() or self.src.stat().st_size != SIZE:
            with open(self.src, "wb") as f:
                left = SIZE
                while left:
                    n = min(left, 64 << 20)
                    f.write(os.urandom(n))
                    left -= n
        self.user()
        self.ftpd()
        self.vsftpd()
        self.sshd()

    def user(self):
        if subprocess.run(["id", USER], capture_output=True).returncode != 0:
            run(["useradd", "-m", "-s", "/bin/bash", USER])
        subprocess.run(["chpasswd"], input=f"{USER}:{PASSWORD}\n".encode(), check=True)
        # The peers' files live in the same tree as ftpd's (vsftpd and sshd
        # log the user in at the home directory in passwd), so every
        # contender writes into the same part of the filesystem.
        self.home = self.work / "home"
        self.home.mkdir(exist_ok=True)
        shutil.chown(self.home, USER, USER)
        run(["usermod", "-d", self.home, USER])

    def spawn(self, cmd, **kw):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    def ftpd(self):
        self.root = self.work / "ftpd"
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir()
        subprocess.run(
            [BIN / "ftpd", "user", "add", USER, "--root", self.root, "--password-stdin"],
            input=PASSWORD.encode(),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        self.ports = {}
        self.ftpd_pids = {}
        for mode, extra in (("plain", ["--no-tls"]), ("tls", [])):
            port = free_port()
            p = self.spawn(
                [BIN / "ftpd", "serve", "--root", self.root, "--listen", f"127.0.0.1:{port}", "--fsync", "false"]
                + extra
            )
            wait_port(port)
            self.ports[mode] = port
            self.ftpd_pids[mode] = p.pid
        # A third daemon for the load rows, with limits raised for 10,000
        # sessions of one user from one address.
        port = free_port()
        many = ["--max-connections", "20000", "--max-sessions-per-user", "20000", "--max-sessions-per-ip", "20000"]
        many += ["--max-unauthenticated", "1000", "--max-unauthenticated-per-ip", "1000"]
        p = self.spawn(
            [BIN / "ftpd", "serve", "--root", self.root, "--listen", f"127.0.0.1:{port}", "--fsync", "false", "--no-tls"]
            + many
        )
        wait_port(port)
        self.ports["load"] = port
        self.ftpd_pids["load"] = p.pid
        self.known_hosts = self.work / "known_hosts"
        rm(self.known_hosts)
        self.ftpc_env = dict(os.environ, FTPC_PASSWORD=PASSWORD, FTPC_KNOWN_HOSTS=str(self.known_hosts))
        self.dl = self.work / "dl"
        self.dl.mkdir(exist_ok=True)

    def ftpc(self, mode, *args):
        tls = ["--no-tls"] if mode == "plain" else ["--accept-new-host"]
        # No fsync on the client either: neither curl nor sftp syncs.
        sync = ["--fsync", "false"]
        return [BIN / "ftpc", "-s", f"127.0.0.1:{self.ports[mode]}", "-u", USER, "--quiet", *sync, *tls, *args]

    def vsftpd(self):
        Path("/var/run/vsftpd/empty").mkdir(parents=True, exist_ok=True)
        self.vport = free_port()
        conf = self.work / "vsftpd.conf"
        conf.write_text(
            "\n".join(
                [
                    "listen=YES",
                    "listen_ipv6=NO",
                    "listen_address=127.0.0.1",
                    f"listen_port={self.vport}",
                    "background=NO",
                    "anonymous_enable=NO",
                    "local_enable=YES",
                    "write_enable=YES",
                    "pasv_enable=YES",
                    "pasv_address=127.0.0.1",
                    "pasv_min_port=30000",
                    "pasv_max_port=39999",
                    "xferlog_enable=NO",
                    "secure_chroot_dir=/var/run/vsftpd/empty",
                    "pam_service_name=vsftpd",
                    "ssl_enable=NO",
                    "use_sendfile=YES",
                    "",
                ]
            )
        )
        self.spawn(["vsftpd", conf])
        wait_port(self.vport)
        self.vurl = f"ftp://{USER}:{PASSWORD}@127.0.0.1:{self.vport}"

    def sshd(self):
        d = self.work / "ssh"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d / "host"])
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d / "client"])
        ssh_dir = self.home / ".ssh"
        ssh_dir.mkdir(exist_ok=True)
        keys = ssh_dir / "authorized_keys"
        keys.write_text((d / "client.pub").read_text())
        os.chmod(keys, 0o600)
        shutil.chown(ssh_dir, USER, USER)
        shutil.chown(keys, USER, USER)
        Path("/run/sshd").mkdir(exist_ok=True)
        self.sport = free_port()
        (d / "sshd_config").write_text(
            f"Port {self.sport}\nListenAddress 127.0.0.1\nHostKey {d}/host\nPidFile {d}/sshd.pid\n"
            "PasswordAuthentication no\nUsePAM no\nUseDNS no\nSubsystem sftp /usr/lib/openssh/sftp-server\n"
        )
        self.spawn(["/usr/sbin/sshd", "-D", "-e", "-f", d / "sshd_config"])
        wait_port(self.sport)
        (d / "ssh_config").write_text(
            f"Host bench\n  HostName 127.0.0.1\n  Port {self.sport}\n  User {USER}\n  IdentityFile {d}/client\n"
            f"  BatchMode yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile {d}/known_hosts\n"
        )
        self.ssh_config = d / "ssh_config"

    def stop(self):
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()

    # ----------------------------------------------------------- contenders
    def socat(self, sink):
        port = free_port()
        out = "/dev/null" if sink == "null" else str(self.work / "socat.out")
        if sink != "null":
            rm(out)
        recv = subprocess.Popen(
            ["socat", "-u", "-b", "131072", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr", f"OPEN:{out},creat,trunc"]
        )
        wait_port_listening(port)
        start = time.perf_counter()
        run(["socat", "-u", "-b", "131072", f"OPEN:{self.src}", f"TCP:127.0.0.1:{port}"])
        recv.wait()
        took = time.perf_counter() - start
        if sink != "null":
            rm(out)
        return took

    def ftpd_put(self, mode):
        rm(self.root / USER / "big.bin")
        rss = Rss(self.ftpd_pids[mode])
        took, peak = rss.during(self.ftpc(mode, "put", self.src), env=self.ftpc_env)
        self.rss[mode] = max(self.rss.get(mode, 0), peak)
        return took

    def ftpd_overwrite(self, mode):
        """A put over the 1 GiB file the put before it left (it must cost
        no more than writing anew)."""
        assert (self.root / USER / "big.bin").exists()
        rss = Rss(self.ftpd_pids[mode])
        took, peak = rss.during(self.ftpc(mode, "put", self.src), env=self.ftpc_env)
        self.rss[mode] = max(self.rss.get(mode, 0), peak)
        return took

    def ftpd_get(self, mode, *dest):
        """A get into the download directory, or into `dest` (/dev/null:
        the client still receives and hashes every byte)."""
        rm(self.dl / "big.bin")
        rss = Rss(self.ftpd_pids[mode])
        took, peak = rss.during(self.ftpc(mode, "get", "big.bin", *dest), env=self.ftpc_env, cwd=self.dl)
        self.rss[mode] = max(self.rss.get(mode, 0), peak)
        return took

    def vsftpd_put(self):
        rm(self.home / "big.bin")
        return timed(["curl", "-sS", "-T", self.src, f"{self.vurl}/big.bin"])

    def vsftpd_get(self):
        rm(self.dl / "v.bin")
        return timed(["curl", "-sS", "-o", self.dl / "v.bin", f"{self.vurl}/big.bin"])

    def sftp(self, direction, cipher):
        opts = ["-o", f"Ciphers={cipher}"] if cipher else []
        if direction == "put":
            rm(self.home / "s.bin")
            script = f"put {self.src} s.bin\n"
        else:
            rm(self.dl / "s.bin")
            script = f"get s.bin {self.dl}/s.bin\n"
        return timed(["sftp", "-q", "-F", self.ssh_config, *opts, "-b", "-", "bench"], input=script.encode())

    def rounds(self):
        # Each contender with the file it reads.
        src, ours, theirs, sftps = self.src, self.root / USER / "big.bin", self.home / "big.bin", self.home / "s.bin"
        contenders = [
            ("socat → file", lambda: self.socat("file"), src),
            ("socat → /dev/null", lambda: self.socat("null"), src),
            ("ftpd plaintext put", lambda: self.ftpd_put("plain"), src),
            ("ftpd plaintext put over a file", lambda: self.ftpd_overwrite("plain"), src),
            ("ftpd plaintext get", lambda: self.ftpd_get("plain"), ours),
            ("ftpd plaintext get → /dev/null", lambda: self.ftpd_get("plain", "/dev/null"), ours),
            ("vsftpd put", self.vsftpd_put, src),
            ("vsftpd get", self.vsftpd_get, theirs),
            ("ftpd TLS put", lambda: self.ftpd_put("tls"), src),
            ("ftpd TLS get", lambda: self.ftpd_get("tls"), ours),
            ("ftpd TLS get → /dev/null", lambda: self.ftpd_get("tls", "/dev/null"), ours),
            ("sftp put", lambda: self.sftp("put", None), src),
            ("sftp get", lambda: self.sftp("get", None), sftps),
            ("sftp aes128-gcm put", lambda: self.sftp("put", "aes128-gcm@openssh.com"), src),
            ("sftp aes128-gcm get", lambda: self.sftp("get", "aes128-gcm@openssh.com"), sftps),
        ]
        # BENCH_ONLY_ROWS="name,name": only those rows (in their order);
        # "all": every 1 GiB row, and nothing else of the run.
        only = os.environ.get("BENCH_ONLY_ROWS")
        if only and only != "all":
            contenders = [c for c in contenders if c[0] in only.split(",")]
        for r in range(ROUNDS):
            for name, fn, reads in contenders:
                cache(reads)
                lend_pages(self.work, SIZE + (64 << 20))
                took = fn()
                self.record(name, took)
                print(f"round {r + 1}/{ROUNDS}  {name:24} {SIZE / took / 1e6:8.0f} MB/s", flush=True)
        for f in ("big.bin", "s.bin"):
            rm(self.home / f)


SMALL_COUNT = int(os.environ.get("BENCH_SMALL", "1000"))
SMALL_SIZE = 4096


def small_rows(b):
    """SMALL_COUNT files of 4 KiB put and got in one session: ftpc mput/mget
    (pipelined) against one curl session on vsftpd (URL globbing reuses the
    control connection). Every round writes into fresh directories on both
    sides, and nothing is deleted before the end of the run."""
    src = b.work / "small"
    if not src.exists():
        src.mkdir()
        for i in range(1, SMALL_COUNT + 1):
            (src / f"f{i:04d}.bin").write_bytes(os.urandom(SMALL_SIZE))
    files = sorted(str(p) for p in src.iterdir())
    names = [os.path.basename(f) for f in files]
    glob = f"f[0001-{SMALL_COUNT:04d}].bin"
    b.small = {}

    def rec(name, took):
        b.small.setdefault(name, []).append(took)
        print(f"round {r + 1}/{ROUNDS}  {name:24} {SMALL_COUNT / took:8.0f} files/s", flush=True)

    for r in range(ROUNDS):
        for mode in ("plain", "tls"):
            label = "plaintext" if mode == "plain" else "TLS"
            d = f"{mode}{r}"
            subprocess.run(b.ftpc(mode, "mkdir", d), env=b.ftpc_env, check=True)
            rec(f"ftpd {label} mput", timed(b.ftpc(mode, "mput", "--to", d, *files), env=b.ftpc_env))
            local = b.dl / f"{mode}{r}"
            local.mkdir()
            remote = [f"{d}/{n}" for n in names]
            rec(f"ftpd {label} mget", timed(b.ftpc(mode, "mget", "--to", local, *remote), env=b.ftpc_env))
        d = f"v{r}"
        rec(
            "vsftpd put (curl)",
            timed(["curl", "-sS", "--ftp-create-dirs", "-T", f"{src}/{glob}", f"{b.vurl}/{d}/"]),
        )
        local = b.dl / d
        local.mkdir()
        rec("vsftpd get (curl)", timed(["curl", "-sS", f"{b.vurl}/{d}/{glob}", "-o", f"{local}/#1.bin"]))
        b.leftovers += [b.home / d, local]
        # OpenSSH sftp, one session each way: the honest anchor (it
        # pipelines requests, where vsftpd opens a data connection per file).
        d = f"s{r}"
        sftp = ["sftp", "-q", "-F", b.ssh_config, "-b", "-", "bench"]
        rec("sftp put -r", timed(sftp, input=f"put -r {src} {d}\n".encode()))
        local = b.dl / d
        rec("sftp get -r", timed(sftp, input=f"get -r {d} {local}\n".encode()))
        b.leftovers += [b.home / d, local]
        for mode in ("plain", "tls"):
            b.leftovers += [b.root / USER / f"{mode}{r}", b.dl / f"{mode}{r}"]


TREE_FILES = int(os.environ.get("BENCH_TREE", "2000"))
TREE_DELAY_MS = int(os.environ.get("BENCH_TREE_DELAY_MS", "1"))


def tree_rows(b):
    """A tree of TREE_FILES files of 4 KiB in 20 directories, put -r and
    get -r, with 64 files in flight against one at a time (-j 1): on
    loopback, and through a proxy that adds TREE_DELAY_MS of latency each
    way (a nearby network; loopback hides what waiting for each reply
    costs). Remote and local copies are removed only at the end of the
    run (see `Bench.leftovers`)."""
    src = b.work / "tree"
    if not src.exists():
        for i in range(TREE_FILES):
            d = src / f"d{i % 20:02d}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"f{i:05d}.bin").write_bytes(os.urandom(SMALL_SIZE))
    proxy = subprocess.Popen(
        [BIN / "examples" / "load", "delay", f"127.0.0.1:{b.ports['plain']}", str(TREE_DELAY_MS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    delayed = int(proxy.stdout.readline().split()[1])
    b.tree = {}
    try:
        for r in range(ROUNDS):
            for net, port in (("loopback", b.ports["plain"]), (f"+{TREE_DELAY_MS} ms", delayed)):
                for jobs in ("1", "64"):
                    label = f"{net}, " + ("one at a time" if jobs == "1" else "64 in flight")
                    remote = f"tree-{r}-{port}-{jobs}"
                    local = b.dl / remote
                    b.leftovers += [b.root / USER / remote, local]
                    cmd = [BIN / "ftpc", "-s", f"127.0.0.1:{port}", "-u", USER, "--quiet", "--fsync", "false", "--no-tls", "-j", jobs]
                    took = timed(cmd + ["put", "-r", src, remote], env=b.ftpc_env)
                    b.tree.setdefault(f"put -r, {label}", []).append(took)
                    took = timed(cmd + ["get", "-r", remote, local], env=b.ftpc_env)
                    b.tree.setdefault(f"get -r, {label}", []).append(took)
                    print(f"round {r + 1}/{ROUNDS}  tree {label}: done", flush=True)
    finally:
        proxy.stdin.close()
        proxy.wait()


def s3s_fs_bin():
    for cand in (REPO / "target" / "tools" / "bin" / "s3s-fs", shutil.which("s3s-fs")):
        if cand and Path(cand).exists():
            return Path(cand)
    raise RuntimeError("s3s-fs not found: bench/run.sh installs it into target/tools")


GARAGE_KEY = ("GK0123456789abcdef01234567", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")


def garage_bin():
    for cand in (REPO / "target" / "tools" / "bin" / "garage", shutil.which("garage")):
        if cand and Path(cand).exists():
            return Path(cand)
    raise RuntimeError("garage not found: bench/run.sh installs it into target/tools")


def garage_cluster(b, nodes=3):
    """Garage 2.5 on loopback: `nodes` nodes, each in its own zone, every
    block kept on all of them (`consistency_mode = "consistent"`), with the
    bucket `ftpd` and a key. Returns the S3 endpoint of each node."""
    base = b.work / "garage"
    shutil.rmtree(base, ignore_errors=True)
    confs, endpoints = [], []
    for n in range(nodes):
        d = base / f"n{n}"
        d.mkdir(parents=True)
        s3, rpc, admin = free_port(), free_port(), free_port()
        (d / "garage.toml").write_text(
            f'metadata_dir = "{d}/meta"\ndata_dir = "{d}/data"\ndb_engine = "sqlite"\n'
            f"metadata_fsync = false\ndata_fsync = false\nreplication_factor = {nodes}\n"
            f'consistency_mode = "consistent"\nrpc_bind_addr = "127.0.0.1:{rpc}"\n'
            f'rpc_public_addr = "127.0.0.1:{rpc}"\nrpc_secret = "{"4f1c0e9a" * 8}"\n\n'
            f'[s3_api]\ns3_region = "garage"\napi_bind_addr = "127.0.0.1:{s3}"\n'
            f'root_domain = ".s3.garage.localhost"\n\n[admin]\napi_bind_addr = "127.0.0.1:{admin}"\n'
        )
        b.spawn([garage_bin(), "-c", d / "garage.toml", "server"], env=dict(os.environ, RUST_LOG="garage=warn"))
        confs.append(d / "garage.toml")
        endpoints.append(f"http://127.0.0.1:{s3}")

    def garage(conf, *args):
        return subprocess.run([garage_bin(), "-c", conf, *args], check=True, capture_output=True, text=True).stdout

    for conf in confs:
        end = time.time() + 60
        while subprocess.run([garage_bin(), "-c", conf, "status"], capture_output=True).returncode != 0:
            if time.time() > end:
                raise RuntimeError("garage did not come up")
            time.sleep(0.2)
    ids = [garage(conf, "node", "id", "-q").strip() for conf in confs]
    for node in ids[1:]:
        garage(confs[0], "node", "connect", node)
    for n, node in enumerate(ids):
        garage(confs[0], "layout", "assign", "-z", f"dc{n}", "-c", "10G", node.split("@")[0][:16])
    garage(confs[0], "layout", "apply", "--version", "1")
    garage(confs[0], "bucket", "create", "ftpd")
    garage(confs[0], "key", "import", "--yes", "-n", "bench", *GARAGE_KEY)
    garage(confs[0], "bucket", "allow", "--read", "--write", "--owner", "ftpd", "--key", "bench")
    b.leftovers.append(base)
    return endpoints


def pg_bin():
    dirs = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not dirs:
        raise RuntimeError("PostgreSQL is not installed: bench/run.sh installs Debian's postgresql")
    return dirs[-1].parent


def postgres(b):
    """A PostgreSQL of its own (initdb into the work directory, run as
    nobody: it refuses root), on a free port. Returns its URL."""
    d = b.work / "pg"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    run(["chown", "nobody:nogroup", d])
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]
    run(as_nobody + [pg_bin() / "initdb", "-A", "trust", "-U", "ftpd", "--no-sync", "-E", "UTF8", "-D", d / "data"])
    port = free_port()
    b.spawn(as_nobody + [pg_bin() / "postgres", "-D", d / "data", "-h", "127.0.0.1", "-p", str(port), "-k", d])
    end = time.time() + 60
    while subprocess.run([pg_bin() / "pg_isready", "-h", "127.0.0.1", "-p", str(port)], capture_output=True).returncode:
        if time.time() > end:
            raise RuntimeError("postgres did not start")
        time.sleep(0.1)
    run([pg_bin() / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "ftpd", "ftpd"])
    b.leftovers.append(d)
    return f"postgres://ftpd@127.0.0.1:{port}/ftpd"


def object_rows(b):
    """The object-storage backend: ftpc put/get through an ftpd whose files
    live in a bucket, against the same bytes sent to the store directly by
    its own client (`aws s3 cp`, the AWS CLI's default 8 MiB parts, 10 in
    flight). Two stores: s3s-fs (one process writing each part to a file
    and copying the parts into the object on completion) and a 3-node
    Garage cluster keeping three copies, with ftpd's records in
    PostgreSQL, as a scaled-out deployment runs. The filesystem rows of the
    same run give the third comparison."""
    b.objects, b.objects_rss = {}, {}
    if not os.environ.get("BENCH_SKIP_S3S"):
        store = b.work / "s3"
        shutil.rmtree(store, ignore_errors=True)
        (store / "bucket").mkdir(parents=True)
        s3port = free_port()
        key = ("bench", "bench-secret")
        b.spawn([s3s_fs_bin(), "--host", "127.0.0.1", "--port", str(s3port), "--access-key", key[0], "--secret-key", key[1], store])
        wait_port(s3port)
        object_contenders(b, "s3s-fs", f"http://127.0.0.1:{s3port}", "bucket", "us-east-1", key, [])
        shutil.rmtree(store, ignore_errors=True)
    endpoints = garage_cluster(b)
    url = postgres(b)
    object_contenders(b, "garage ×3", endpoints[0], "ftpd", "garage", GARAGE_KEY, ["--database", url])


def object_contenders(b, label, endpoint, bucket, region, key, extra):
    """ftpd on `bucket` at `endpoint` against `aws s3 cp` to it, alternated."""
    port = free_port()
    s3 = ["--storage", "s3", "--s3-endpoint", endpoint, "--s3-bucket", bucket, "--s3-prefix", "ftpd"]
    s3 += ["--s3-region", region, "--s3-access-key-id", key[0], "--s3-secret-access-key", key[1]]
    if extra:
        # The users are in the database: the same account, added there.
        env = dict(os.environ, FTPD_STORAGE="s3", FTPD_S3_BUCKET=bucket, FTPD_S3_PREFIX="ftpd")
        env.update(FTPD_S3_ACCESS_KEY_ID=key[0], FTPD_S3_SECRET_ACCESS_KEY=key[1], FTPD_DATABASE=extra[1])
        subprocess.run([BIN / "ftpd", "user", "add", USER, "--password-stdin"], input=PASSWORD.encode(), env=env, check=True, stdout=subprocess.DEVNULL)
    p = b.spawn([BIN / "ftpd", "serve", "--root", b.root, "--listen", f"127.0.0.1:{port}", "--no-tls"] + s3 + extra)
    wait_port(port, timeout=60)
    aws_env = dict(os.environ, AWS_ACCESS_KEY_ID=key[0], AWS_SECRET_ACCESS_KEY=key[1], AWS_DEFAULT_REGION=region)
    aws = ["aws", "--endpoint-url", endpoint, "--only-show-errors", "s3"]
    ftpc = [BIN / "ftpc", "-s", f"127.0.0.1:{port}", "-u", USER, "--quiet", "--fsync", "false", "--no-tls"]
    peak = 0

    def ftpd_put():
        nonlocal peak
        subprocess.run(ftpc + ["rm", "big.bin"], env=b.ftpc_env, capture_output=True)
        took, top = Rss(p.pid).during(ftpc + ["put", b.src], env=b.ftpc_env)
        peak = max(peak, top)
        return took

    def ftpd_get():
        nonlocal peak
        rm(b.dl / "big.bin")
        took, top = Rss(p.pid).during(ftpc + ["get", "big.bin"], env=b.ftpc_env, cwd=b.dl)
        peak = max(peak, top)
        return took

    def aws_put():
        subprocess.run(aws + ["rm", f"s3://{bucket}/direct/big.bin"], env=aws_env, capture_output=True)
        return timed(aws + ["cp", b.src, f"s3://{bucket}/direct/big.bin"], env=aws_env)

    def aws_get():
        rm(b.dl / "a.bin")
        return timed(aws + ["cp", f"s3://{bucket}/direct/big.bin", b.dl / "a.bin"], env=aws_env)

    contenders = [
        (f"ftpd on {label} put", ftpd_put),
        (f"ftpd on {label} get", ftpd_get),
        (f"aws s3 cp to {label} put", aws_put),
        (f"aws s3 cp to {label} get", aws_get),
    ]
    for r in range(ROUNDS):
        for name, fn in contenders:
            took = fn()
            b.objects.setdefault(name, []).append(took)
            print(f"round {r + 1}/{ROUNDS}  {name:32} {SIZE / took / 1e6:8.0f} MB/s", flush=True)
    b.objects_rss[label] = peak
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=30)
    for f in (b.dl / "big.bin", b.dl / "a.bin"):
        rm(f)


CLIENTS = int(os.environ.get("BENCH_CLIENTS", "1000"))
CLIENT_SIZE = int(os.environ.get("BENCH_CLIENT_MIB", "4")) << 20
IDLE = int(os.environ.get("BENCH_IDLE", "10000"))


def load_rows(b):
    """1000 clients at once, each putting and getting 4 MiB (verified),
    ROUNDS times (medians), with the daemon's peak memory meanwhile, and
    its memory with 10,000 idle logged-in sessions."""
    load = BIN / "examples" / "load"
    env = b.ftpc_env
    addr = f"127.0.0.1:{b.ports['load']}"
    small = b.work / "client.bin"
    with open(small, "wb") as f:
        f.write(os.urandom(CLIENT_SIZE))
    import json

    runs = []
    for r in range(ROUNDS):
        gen = subprocess.Popen(
            [load, "transfer", addr, USER, small, str(CLIENTS), b.dl, "--gate"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        if gen.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"load generator failed: exit {gen.wait()}")
        # Once all are logged in, as for the single-stream rows: the files
        # the transfer writes are deleted (the previous round's uploads) and
        # memory the host backs is made ready for the uploads.
        for i in range(CLIENTS):
            rm(b.root / USER / f"load-{i}.bin")
        lend_pages(b.work, CLIENTS * CLIENT_SIZE + (256 << 20))
        out, _ = gen.communicate(b"go\n")
        b.load_peak = max(getattr(b, "load_peak", 0), peak_rss(b.ftpd_pids["load"]))
        if gen.returncode != 0:
            raise RuntimeError(f"load generator failed: exit {gen.returncode}")
        runs.append(json.loads(out))
        print(f"round {r + 1}/{ROUNDS}  {CLIENTS} clients: {runs[-1]}", flush=True)
    b.load = dict(runs[0])
    b.load["seconds"] = statistics.median(run["seconds"] for run in runs)
    b.load["slowest"] = statistics.median(run["slowest"] for run in runs)
    for i in range(CLIENTS):
        rm(b.root / USER / f"load-{i}.bin")
    pid = b.ftpd_pids["load"]
    rss = Rss(pid)
    subprocess.run(b.ftpc("plain", "ls"), env=env, check=True, stdout=subprocess.DEVNULL)
    before = rss.now()
    start = time.perf_counter()
    idle = subprocess.Popen([load, "idle", addr, USER, str(IDLE)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    line = idle.stdout.readline().decode()
    took = time.perf_counter() - start
    if not line.startswith("ready"):
        idle.kill()
        raise RuntimeError("idle sessions failed")
    b.idle = (IDLE, rss.now(), before, took)
    print(f"{IDLE} idle sessions: {b.idle[1] >> 20} MiB (from {before >> 20} MiB), logins took {took:.0f} s", flush=True)
    idle.stdin.close()
    idle.wait()


def peak_rss(pid):
    """The peak resident memory of a process so far (VmHWM)."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def wait_port_listening(port, timeout=10.0):
    """Waits until a listener is on `port`, without connecting to it (socat
    would take a probe connection for the transfer)."""
    end = time.time() + timeout
    hexport = f"{port:04X}"
    while time.time() < end:
        for line in open("/proc/net/tcp").read().splitlines()[1:]:
            fields = line.split()
            if fields[1].endswith(":" + hexport) and fields[3] == "0A":
                return
        time.sleep(0.02)
    raise RuntimeError(f"socat did not listen on {port}")


RATE_SIZE = 64 << 20
RATE = 8 << 20


def rate_rows(b):
    """A 64 MiB put and get by a user capped at 8 MiB/s each way: the cap
    is checked here, by the clock, rather than in a timed test."""
    for args in (["add", "capped", "--password-stdin"], ["set", "capped", "--upload-rate", "8MiB", "--download-rate", "8MiB"]):
        subprocess.run([BIN / "ftpd", "user", *args, "--root", b.root], input=PASSWORD.encode(), check=True, stdout=subprocess.DEVNULL)
    src = b.work / "rate.bin"
    with open(b.src, "rb") as f, open(src, "wb") as out:
        out.write(f.read(RATE_SIZE))
    ftpc = [BIN / "ftpc", "-s", f"127.0.0.1:{b.ports['plain']}", "-u", "capped", "--quiet", "--no-tls"]
    b.rates = {}
    for _ in range(ROUNDS):
        rm(b.root / "capped" / "rate.bin")
        b.rates.setdefault("put", []).append(timed(ftpc + ["put", src], env=b.ftpc_env))
        rm(b.dl / "rate.bin")
        b.rates.setdefault("get", []).append(timed(ftpc + ["get", "rate.bin", b.dl / "rate.bin"], env=b.ftpc_env))
    rm(src)
    rm(b.dl / "rate.bin")


def machine():
    cpu = "unknown CPU"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(open("/proc/meminfo").readline().split()[1]) // (1024 * 1024)
    return f"{os.cpu_count()} × {cpu}, {mem} GiB RAM, Linux {platform.release()}"


def report(b):
    med = {k: statistics.median(v) for k, v in b.times.items()}
    mbs = {k: SIZE / v / 1e6 for k, v in med.items()}
    limit = mbs["socat → file"]
    rows = []
    for name in b.times:
        peer = ""
        if name.startswith("ftpd") and name.endswith("→ /dev/null"):
            peer = f"{mbs[name] / mbs['socat → /dev/null']:.2f}× socat → /dev/null"
        elif name.startswith("ftpd"):
            direction = "put" if " put" in name else "get"
            vs = mbs[f"vsftpd {direction}"]
            sf = mbs[f"sftp {direction}"]
            peer = f"{mbs[name] / vs:.2f}× vsftpd, {mbs[name] / sf:.2f}× sftp"
        each = " ".join(f"{SIZE / t / 1e6:.0f}" for t in b.times[name])
        rows.append((name, mbs[name], mbs[name] / limit, peer, each))
    lines = [
        "| contender | MB/s (median) | × socat → file | against the peers | each round, MB/s |",
        "|---|---:|---:|---|---|",
    ]
    for name, rate, ratio, peer, each in rows:
        lines.append(f"| {name} | {rate:.0f} | {ratio:.2f} | {peer} | {each} |")
    mem = [
        "| daemon | peak RSS during 1 GiB put and get |",
        "|---|---:|",
    ]
    for mode, peak in b.rss.items():
        mem.append(f"| ftpd {'plaintext' if mode == 'plain' else 'TLS'} | {peak / (1 << 20):.1f} MiB |")
    single = 2 * SIZE / (med["ftpd plaintext put"] + med["ftpd plaintext get"]) / 1e6
    if hasattr(b, "load"):
        agg = b.load["bytes"] / b.load["seconds"] / 1e6
        mem.append("")
        mem.append("| load | figure |")
        mem.append("|---|---:|")
        mem.append(
            f"| {b.load['clients']} clients × (put + get {CLIENT_SIZE >> 20} MiB), all verified: aggregate | {agg:.0f} MB/s "
            f"({agg / single:.2f}× single-stream plaintext put+get, {single:.0f} MB/s) |"
        )
        mem.append(f"| slowest of the {b.load['clients']} clients | {b.load['slowest']:.2f} s |")
        mem.append(f"| ftpd peak RSS (VmHWM) with the {b.load['clients']} clients | {b.load_peak / (1 << 20):.0f} MiB |")
    if hasattr(b, "idle"):
        n, after, before, took = b.idle
        mem.append(f"| ftpd RSS with {n} idle logged-in sessions | {after / (1 << 20):.0f} MiB |")
        mem.append(f"| per idle session | {(after - before) / n / 1024:.1f} KiB |")
    if hasattr(b, "small"):
        fps = {k: SMALL_COUNT / statistics.median(v) for k, v in b.small.items()}
        mem.append("")
        mem.append(f"| {SMALL_COUNT} × 4 KiB in one session | files/s (median) | × vsftpd | × sftp -r |")
        mem.append("|---|---:|---:|---:|")
        for name, rate in fps.items():
            up = "put" in name
            vs = fps["vsftpd put (curl)"] if up else fps["vsftpd get (curl)"]
            sf = fps["sftp put -r"] if up else fps["sftp get -r"]
            mem.append(f"| {name} | {rate:.0f} | {rate / vs:.2f} | {rate / sf:.2f} |")
    if hasattr(b, "tree"):
        fps = {k: TREE_FILES / statistics.median(v) for k, v in b.tree.items()}
        mem.append("")
        mem.append(f"| tree of {TREE_FILES} × 4 KiB in 20 directories | files/s (median) | × one at a time |")
        mem.append("|---|---:|---:|")
        for name, rate in fps.items():
            base = fps[name.rsplit(",", 1)[0] + ", one at a time"]
            mem.append(f"| ftpc {name} | {rate:.0f} | {rate / base:.2f} |")
    if hasattr(b, "objects"):
        ombs = {k: SIZE / statistics.median(v) / 1e6 for k, v in b.objects.items()}
        mem.append("")
        mem.append("| object storage (loopback) | MB/s (median) | × aws s3 cp to the same store | × ftpd on the filesystem |")
        mem.append("|---|---:|---:|---:|")
        for name, rate in ombs.items():
            direction = name.split()[-1]
            store = name.removeprefix("ftpd on ").removeprefix("aws s3 cp to ").rsplit(" ", 1)[0]
            fs = mbs[f"ftpd plaintext {direction}"]
            aws = ombs[f"aws s3 cp to {store} {direction}"]
            mem.append(f"| {name} | {rate:.0f} | {rate / aws:.2f} | {rate / fs:.2f} |")
        for store, peak in b.objects_rss.items():
            mem.append(f"| ftpd peak RSS during the transfers on {store} | {peak / (1 << 20):.1f} MiB | | |")
    if hasattr(b, "rates"):
        mem.append("")
        mem.append(f"| {RATE_SIZE >> 20} MiB by a user capped at {RATE >> 20} MiB/s | seconds (median) | each round | effective MiB/s |")
        mem.append("|---|---:|---|---:|")
        for name, took in b.rates.items():
            m = statistics.median(took)
            each = " ".join(f"{t:.2f}" for t in took)
            mem.append(f"| ftpc {name} | {m:.2f} | {each} | {RATE_SIZE / m / (1 << 20):.2f} |")
    goals = [
        "| goal (issue 21) | measured |",
        "|---|---:|",
        f"| TLS put ÷ plaintext put (≥ 0.9) | {mbs['ftpd TLS put'] / mbs['ftpd plaintext put']:.2f} |",
        f"| TLS get ÷ plaintext get (≥ 0.9) | {mbs['ftpd TLS get'] / mbs['ftpd plaintext get']:.2f} |",
        f"| plaintext get → /dev/null ÷ socat → /dev/null (≥ 0.9) | "
        f"{mbs['ftpd plaintext get → /dev/null'] / mbs['socat → /dev/null']:.2f} |",
        f"| put over a file ÷ put to a new name, time (≤ 1.0) | "
        f"{med['ftpd plaintext put over a file'] / med['ftpd plaintext put']:.2f} |",
    ]
    mem = goals + [""] + mem
    table = "\n".join(lines)
    print()
    print(table)
    print()
    print("\n".join(mem))
    chart(rows)
    doc = REPO / "docs" / "BENCHMARKS.md"
    text = doc.read_text() if doc.exists() else ""
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    body = (
        f"{start}\nMeasured {time.strftime('%Y-%m-%d')} on {machine()}; {ROUNDS} rounds, "
        f"{SIZE >> 20} MiB of random bytes, loopback, page cache warm, no fsync on any side.\n\n"
        f"{table}\n\n" + "\n".join(mem) + f"\n\n![throughput](benchmarks.png)\n{end}"
    )
    if start in text:
        text = text[: text.index(start)] + body + text[text.index(end) + len(end) :]
    else:
        text = text + "\n" + body + "\n"
    doc.write_text(text)
    print(f"\nwritten to {doc}")


def chart(rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r[0] for r in rows]
    rates = [r[1] for r in rows]
    colors = ["#888888" if n.startswith("socat") else "#1f77b4" if n.startswith("ftpd") else "#ff7f0e" for n in names]
    fig, ax = plt.subplots(figsize=(9, 5))
    ax.barh(names[::-1], rates[::-1], color=colors[::-1])
    ax.set_xlabel("MB/s (median, 1 GiB over loopback)")
    ax.set_title("ftpd/ftpc (blue) against the limit (grey) and the peers (orange)")
    for i, v in enumerate(rates[::-1]):
        ax.text(v, i, f" {v:.0f}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(REPO / "docs" / "benchmarks.png", dpi=100)


def main():
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if os.geteuid() != 0:
        sys.exit("bench: run as root (it creates a local user for vsftpd and sftp)")
    # Killed, it still stops its daemons and restores what it changed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    keep = os.environ.get("BENCH_DIR")
    work = keep or tempfile.mkdtemp(prefix="ftpbench.", dir=WORK_PARENT)
    Path(work).mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o755)
    b = Bench(work)
    try:
        with host_keeps_freed_memory():
            measure(b)
    finally:
        b.stop()
        for path in b.leftovers:
            shutil.rmtree(path, ignore_errors=True)
        if not keep:
            # About 4 GiB of test files: a temporary directory goes with the run.
            shutil.rmtree(work, ignore_errors=True)
        CLEANED.touch()
    if os.environ.get("BENCH_ONLY_OBJECTS"):
        print({k: [round(SIZE / t / 1e6) for t in v] for k, v in b.objects.items()}, {k: v >> 20 for k, v in b.objects_rss.items()}, "MiB")
        return
    if os.environ.get("BENCH_ONLY_ROWS"):
        print({k: [round(t, 3) for t in v] for k, v in b.times.items()}, "s")
        return
    if os.environ.get("BENCH_ONLY_RATES"):
        print({k: [round(t, 2) for t in v] for k, v in b.rates.items()}, f"s for {RATE_SIZE >> 20} MiB at {RATE >> 20} MiB/s")
        return
    if os.environ.get("BENCH_ONLY_SMALL"):
        print({k: [round(SMALL_COUNT / t) for t in v] for k, v in b.small.items()})
        print({k: [round(TREE_FILES / t) for t in v] for k, v in b.tree.items()})
        return
    report(b)


def measure(b):
    """Every row, in the order that keeps them from disturbing each other."""
    b.setup()
    wait_for_freed_inodes()
    if os.environ.get("BENCH_ONLY_OBJECTS"):
        object_rows(b)
        return
    if os.environ.get("BENCH_ONLY_ROWS"):
        b.rounds()
        return
    rate_rows(b)
    if os.environ.get("BENCH_ONLY_RATES"):
        return
    # The small-file rows first, before the large-file rounds: after them,
    # the first rounds of ftpd's mput and mget and of vsftpd's get ran up to
    # 3 times slower than the later ones.
    small_rows(b)
    tree_rows(b)
    if not os.environ.get("BENCH_ONLY_SMALL"):
        b.rounds()
    object_rows(b)
    if not os.environ.get("BENCH_ONLY_SMALL"):
        load_rows(b)


if __name__ == "__main__":
    main()
