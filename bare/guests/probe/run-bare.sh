#!/bin/sh
# Runs moat-guest-probe bare on QEMU (no hypervisor: the probe itself at EL1) and prints its
# MOAT-PROBE lines. Usage, from anywhere:
#   bare/guests/probe/run-bare.sh [-c CPU] [-m MEM] [-n] "probe.addrs=0x50000000,... probe.mmu=off"
# -c: QEMU -cpu (default cortex-a72; "max" becomes max,pauth-impdef=on), -m: RAM (default 128M),
# -n: do not rebuild. Exit status: 0 if the MOAT-PROBE-DONE line appeared, 1 otherwise.
set -eu
cpu=cortex-a72
mem=128M
build=1
while getopts c:m:n opt; do
    case $opt in
        c) cpu=$OPTARG ;;
        m) mem=$OPTARG ;;
        n) build=0 ;;
        *) echo "usage: $0 [-c CPU] [-m MEM] [-n] BOOTARGS" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
bootargs=${1:-}
[ "$cpu" = max ] && cpu=max,pauth-impdef=on
bare=$(cd "$(dirname "$0")/../.." && pwd)
elf=$bare/target/aarch64-unknown-none-softfloat/release/moat-guest-probe
bin=$bare/target/aarch64-unknown-none-softfloat/release/moat-guest-probe.bin
if [ "$build" = 1 ]; then
    (cd "$bare" && env -u RUSTUP_TOOLCHAIN cargo build --release -q -p moat-guest-probe)
fi
aarch64-linux-gnu-objcopy -O binary "$elf" "$bin"
out=$(timeout 60 qemu-system-aarch64 -M virt,gic-version=3,highmem=off -cpu "$cpu" -m "$mem" \
        -nographic -kernel "$bin" -append "$bootargs" | tr -d '\r')
printf '%s\n' "$out" | grep '^MOAT-PROBE'
printf '%s\n' "$out" | grep -q '^MOAT-PROBE-DONE '
