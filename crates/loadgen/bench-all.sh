#!/bin/sh
# Every number in BENCHMARKS.md, in one go: builds release binaries, then runs
# each scenario (JSON reports into $OUT) and the criterion micro-benchmarks,
# printing the load average before each run. Run it on a quiet machine:
#
#   crates/loadgen/bench-all.sh [out-dir]
#
# PostgreSQL runs need a server on 127.0.0.1:5432 (user postgres), or
# FIELDCAST_TEST_POSTGRES pointing at one; a fresh database is created and
# dropped per run.
set -eu
cd "$(dirname "$0")/../.."
OUT=${1:-target/loadgen}
T=${CARGO_TARGET_DIR:-target}
mkdir -p "$OUT"
cargo build --release -p fieldcast -p loadgen
LG="$T/release/loadgen"

run() {
    name=$1
    shift
    echo "== $name: $(uptime)"
    "$LG" --out "$OUT/$name.json" "$@" | tee "$OUT/$name.txt"
}

# Media: a 1.5 Mbit/s stream to 200, 500 and 1,000 viewers; 0.6 Mbit/s to 800.
run viewers-200 viewers --viewers 200 --ramp 50 --duration 20
run viewers-500 viewers --viewers 500 --ramp 50 --duration 20
run viewers-1000 viewers --viewers 1000 --ramp 50 --duration 20
run viewers-800-600k viewers --viewers 800 --ramp 75 --duration 20 --video-kbps 600

# Chat: 20 messages/s to 1,000, 5,000 and 10,000 connections.
run chat-1000 chat --viewers 1000 --rate 20 --duration 20
run chat-5000 chat --viewers 5000 --rate 20 --duration 20
run chat-10000 chat --viewers 10000 --rate 20 --duration 20

# Flash sale: everyone at once (closed loop), then open loop at fixed rates.
run sale-sqlite-http sale --buyers 2000 --taps 5
run sale-sqlite-ws sale --buyers 2000 --taps 5 --via ws
run sale-postgres-http --db postgres sale --buyers 2000 --taps 5
run sale-postgres-ws --db postgres sale --buyers 2000 --taps 5 --via ws
run sale-sqlite-ws-open20k sale --buyers 2000 --taps 30 --via ws --rate 20000
run sale-postgres-ws-open20k --db postgres sale --buyers 2000 --taps 30 --via ws --rate 20000
run sale-sqlite-http-open5k sale --buyers 2000 --taps 10 --rate 5000

echo "== hot_offer (in-process order service): $(uptime)"
for a in "sqlite 100000 2000" "postgres 100000 2000" "sqlite 60000 0 rate=20000" "postgres 60000 0 rate=20000"; do
    # shellcheck disable=SC2086
    cargo run --release -p orders --example hot_offer -- $a | tee -a "$OUT/hot_offer.txt"
done

echo "== criterion: $(uptime)"
cargo bench -p sfu --features testkit --bench forwarding | tee "$OUT/bench-forwarding.txt"
cargo bench -p live --bench fanout | tee "$OUT/bench-fanout.txt"
cargo bench -p orders --bench ledger | tee "$OUT/bench-ledger.txt"
cargo bench -p loadgen --bench generator | tee "$OUT/bench-generator.txt"
echo "== done: $(uptime)"
