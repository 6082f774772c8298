#!/usr/bin/env bash
# The benchmark: ftpd/ftpc against the machine's limit and the peers
# (vsftpd, sftp), all on loopback, and the object-storage backend against
# the store's own client (aws s3 cp to s3s-fs and to a 3-node Garage
# cluster, ftpd's records in PostgreSQL). Installs what it needs (root, Debian),
# builds the release binaries, then runs bench/bench.py, which prints the
# table and writes docs/BENCHMARKS.md and docs/benchmarks.png.
#
#   bash bench/run.sh            # 5 rounds of every contender
#   ROUNDS=3 bash bench/run.sh   # fewer rounds
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for cmd in vsftpd:vsftpd sshd:openssh-server socat:socat curl:curl; do
    bin=${cmd%%:*}
    command -v "$bin" >/dev/null || [ -x "/usr/sbin/$bin" ] || need+=("${cmd#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "bench: installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" openssh-client
fi
python3 -c 'import matplotlib' 2>/dev/null || python3 -m pip install -q matplotlib
# The object-storage rows: s3s-fs and Garage as the stores (with
# PostgreSQL, as the tests install them), the AWS CLI as their client.
command -v aws >/dev/null || python3 -m pip install -q awscli
bash .ci/setup

cargo build --release --locked --bins
cargo build --release --locked -p ftp-client --example load
exec python3 bench/bench.py "$@"
