#!/bin/sh
# The bare-QEMU evidence of README.md: every CPU model × translation setting the README reports,
# each run twice and compared byte for byte. Output files go to ${OUT:-/tmp/moat-probe32}.
# Usage: bare/guests/probe32/matrix.sh   (builds once, then 80 QEMU runs of about 0.2 s each)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-/tmp/moat-probe32}
mkdir -p "$out"
"$here/run-bare.sh" "probe.kinds=bkpt_svc" > /dev/null   # build once
# A hole, the last page below 4 GiB, 4 GiB, 2^40 - 4K, 2^40 (LPAE: descriptor bits [47:40] set),
# 2^44 - 4K.
ADDRS="0x50000000,0xfffff000,0x100000000,0xfffffff000,0x10000000000,0xffffffff000"
status=0
run() { # name cpu bootargs
    for i in 1 2; do "$here/run-bare.sh" -n -c "$2" "$3" > "$out/$1.$i.txt" || status=1; done
    if cmp -s "$out/$1.1.txt" "$out/$1.2.txt"; then same=identical; else same=DIFFERENT; status=1; fi
    echo "$1: $(grep -c '^MOAT-PROBE ' "$out/$1.1.txt") cases, runs $same"
}
for cpu in a53:cortex-a53 a57:cortex-a57 a72:cortex-a72 max:max; do
    name=${cpu%%:*}; model=${cpu#*:}
    run "$name-off" "$model" "probe.addrs=$ADDRS probe.mmu=off"
    run "$name-off-ee" "$model" "probe.addrs=$ADDRS probe.mmu=off probe.ee=1"
    run "$name-lpae" "$model" "probe.addrs=$ADDRS probe.mmu=lpae"
    run "$name-lpae-hivecs-ee" "$model" "probe.addrs=$ADDRS probe.mmu=lpae probe.hivecs=1 probe.ee=1"
    run "$name-short" "$model" "probe.addrs=$ADDRS probe.mmu=short"
    run "$name-short-hivecs" "$model" "probe.addrs=$ADDRS probe.mmu=short probe.hivecs=1"
    run "$name-short-ee" "$model" "probe.addrs=$ADDRS probe.mmu=short probe.ee=1"
    run "$name-off-te-span0" "$model" "probe.addrs=$ADDRS probe.te=1 probe.span=0"
    run "$name-lpae-te-span0-dssbs" "$model" \
        "probe.addrs=$ADDRS probe.mmu=lpae probe.te=1 probe.span=0 probe.dssbs=1"
    run "$name-short-hivecs-te-span0" "$model" \
        "probe.addrs=$ADDRS probe.mmu=short probe.hivecs=1 probe.te=1 probe.span=0"
done
for cpu in cortex-a76 neoverse-n1 a64fx; do   # AArch64-only EL1: the shim must refuse them
    if "$here/run-bare.sh" -n -c "$cpu" "probe.kinds=bkpt_svc" > "$out/refused-$cpu.txt"; then
        echo "$cpu: NOT refused"; status=1
    else
        echo "$cpu: $(cat "$out/refused-$cpu.txt")"
    fi
done
exit $status
