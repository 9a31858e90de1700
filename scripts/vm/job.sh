# Prelude of every agent job in the xdpipe test guest (/etc/job.sh): busybox's shell runs
# its own applets before searching PATH, so the real iproute2 tools are shell functions.
[ -x /usr/sbin/ip ] && ip() { /usr/sbin/ip "$@"; }
[ -x /usr/sbin/tc ] && tc() { /usr/sbin/tc "$@"; }
cd /host
. "$1"
