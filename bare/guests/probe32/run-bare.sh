#!/bin/sh
# Runs moat-guest-probe32 bare on QEMU: moat-guest-shim32 at EL2 ERETs into AArch32 EL1 with
# HCR_EL2.RW = 0 and no stage 2, so every exception the probe records is the CPU's own. Prints
# the MOAT-PROBE lines (and shim32 lines, which say why a run was refused). Usage, from anywhere:
#   bare/guests/probe32/run-bare.sh [-c CPU] [-m MEM] [-n] "probe.addrs=0x50000000,... probe.mmu=off"
# -c: QEMU -cpu (default cortex-a72; "max" becomes max,pauth-impdef=on), -m: RAM (default 128M),
# -n: do not rebuild. Exit status: 0 if the MOAT-PROBE-DONE line appeared, 1 otherwise.
# Environment: QEMU (default qemu-system-aarch64) and QEMU_ARGS (extra arguments, e.g.
# "-audio none" for an unpacked QEMU 10 beside the installed 7.2).
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
probe=$bare/target/armv7a-none-eabi/release/moat-guest-probe32
shim=$bare/target/aarch64-unknown-none-softfloat/release/moat-guest-shim32
if [ "$build" = 1 ]; then
    (cd "$bare" && env -u RUSTUP_TOOLCHAIN cargo build --release -q -p moat-guest-probe32 \
        --target armv7a-none-eabi)
    (cd "$bare" && env -u RUSTUP_TOOLCHAIN cargo build --release -q -p moat-guest-shim32)
fi
aarch64-linux-gnu-objcopy -O binary "$probe" "$probe.bin"
aarch64-linux-gnu-objcopy -O binary "$shim" "$shim.bin"
# shellcheck disable=SC2086 # QEMU_ARGS is a list of words
out=$(timeout 60 "${QEMU:-qemu-system-aarch64}" ${QEMU_ARGS:-} -M virt,virtualization=on,gic-version=3,highmem=off \
        -cpu "$cpu" -m "$mem" -nographic -kernel "$shim.bin" \
        -device loader,file="$probe.bin",addr=0x40100000 -append "$bootargs" | tr -d '\r')
printf '%s\n' "$out" | grep '^MOAT-PROBE\|^shim32:\|^probe32:'
printf '%s\n' "$out" | grep -q '^MOAT-PROBE-DONE '
