#!/usr/bin/env bash
# Run one xdpipe receive check in a running guest (see guest.sh start):
#   xdp-check.sh STATE_DIR igb|vio XDP_MODE BIND QUEUES [GEN_BIND] [extra run args...]
# xdpipe run on igb1/vio1 (receiver), xdpipe gen on igb0/vio0 after 2 s (64 flows,
# 20 kpps, 3 s). Prints gen's line, run's stderr and a compact summary of run's JSON.
set -euo pipefail
G=$(dirname "$0")/guest.sh
s=${1:?STATE_DIR} kind=${2:?igb|vio} xmode=${3:?xdp mode} bind=${4:?bind} queues=${5:?queues}
gbind=${6:-copy}
shift 5; [ $# -gt 0 ] && shift
case $kind in
  igb) tx=igb0 rx=igb1 src=10.78.0.1 dst=10.78.0.2 mac=52:54:00:78:00:02 ;;
  vio) tx=vio0 rx=vio1 src=10.79.0.1 dst=10.79.0.2 mac=52:54:00:79:00:02 ;;
  *) echo "kind must be igb or vio" >&2; exit 2 ;;
esac
exec "$G" exec "$s" --timeout 120 -- "
xdpipe run --iface $rx --queues $queues --xdp-mode $xmode --bind $bind -d 6 --json $* > /tmp/run.json 2> /tmp/run.err &
rp=\$!
sleep 2
xdpipe gen --iface $tx --bind $gbind --src-ip $src --dst-ip $dst --dst-mac $mac --flows 64 -r 20000 -d 3 2>&1 | grep -v INFO
wait \$rp; rc=\$?
echo \"run rc=\$rc\"
grep -v '^ *[0-9.]*s  rx' /tmp/run.err
sed -E 's/\"batch_hist\":\\[[^]]*\\],//g' /tmp/run.json | tr -d '\\n' | head -c 6000; echo
exit \$rc
"
