#!/bin/sh
# The bare-QEMU evidence of README.md: every CPU model × MMU setting the README reports, each run
# twice and compared byte for byte. Output files go to ${OUT:-/tmp/moat-probe}.
# Usage: bare/guests/probe/matrix.sh   (builds once, then ~40 QEMU runs of 0.1 s each)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-/tmp/moat-probe}
mkdir -p "$out"
"$here/run-bare.sh" "probe.kinds=brk_el1h" > /dev/null   # build once
A53="0x50000000,0x100000000,0xfffffff000,0x10000000000,0x100000000000,0x1000000000000"
A72="0x50000000,0x100000000,0xffffffff000,0x100000000000,0xfffffffff000,0x1000000000000"
N1="0x50000000,0x100000000,0xffffffff000,0x100000000000,0xfffffffff000,0x1000000000000"
MAX="0x50000000,0x100000000,0xfffffffff000,0x1000000000000,0xffffffffff000,0x10000000000000"
status=0
run() { # name cpu bootargs
    for i in 1 2; do "$here/run-bare.sh" -n -c "$2" "$3" > "$out/$1.$i.txt" || status=1; done
    if cmp -s "$out/$1.1.txt" "$out/$1.2.txt"; then same=identical; else same=DIFFERENT; status=1; fi
    echo "$1: $(grep -c '^MOAT-PROBE ' "$out/$1.1.txt") cases, runs $same"
}
for cpu in a53:cortex-a53:$A53 a72:cortex-a72:$A72 n1:neoverse-n1:$N1 max:max:$MAX; do
    name=${cpu%%:*}; rest=${cpu#*:}; model=${rest%%:*}; addrs=${rest#*:}
    run "$name-off" "$model" "probe.addrs=$addrs probe.mmu=off"
    for ips in 40 44 48; do
        run "$name-on-ips$ips" "$model" "probe.addrs=$addrs probe.mmu=on probe.ips=$ips"
    done
    run "$name-on-span0" "$model" "probe.addrs=$addrs probe.mmu=on probe.span=0"
done
exit $status
