#!/usr/bin/env bash
# benches/throughput.sh — portcullis against OpenSSH, same machine, same run.
#
# Legs, all with the same cipher (BENCH_CIPHER, default aes256-gcm@openssh.com)
# on every hop:
#   direct      ssh                          -> test sshd
#   ssh -J      ssh -J relay sshd            -> test sshd (the relay is a
#               second sshd in the same namespace, so its CPU is its own)
#   portcullis  ssh alice+web01@portcullis   -> test sshd
#   unrecorded  ssh alice+web01m@portcullis  -> the same sshd, a target that
#               records metadata only: the recording's cost is the ratio
#               of these two legs
#   pc -J       ssh -J alice@portcullis tuser@web01 (nested SSH answered by
#               portcullis with a host certificate, then proxied like the
#               leg above) -> test sshd
#   pc -J unrec the same to web01m (metadata-only recording)
# For each: upload and download of BENCH_BYTES (1 GiB) in MiB/s, and the
# median wall time of BENCH_SETUP_RUNS (20) `ssh ... true`. Then it opens
# BENCH_IDLE_SESSIONS (500) idle sessions through portcullis and reports the
# bastion's VmRSS/VmHWM before and after, per session.
#
# Run on demand as root (not by CI):  benches/throughput.sh
# It needs root for `unshare -m` (the test sshd gets its own /run and test
# copies of /etc/passwd, /etc/shadow, /etc/group with a user `tuser`), never
# touches the host's sshd, accounts or ~/.ssh, and removes everything on exit.
#
# Environment knobs:
#   BENCH_CIPHER            aes256-gcm@openssh.com (chacha20-poly1305@openssh.com also works)
#   BENCH_KEX               curve25519-sha256 (client side, every hop: common to
#                           OpenSSH and russh; OpenSSH's default sntrup761 hybrid
#                           costs ~100 ms more per setup on a small machine)
#   BENCH_BYTES             1073741824
#   BENCH_SETUP_RUNS        20
#   BENCH_IDLE_SESSIONS     500
#   BENCH_IDLE_BATCH        10   sessions opened concurrently while ramping up
#   BENCH_SKIP_PORTCULLIS=1 only the two OpenSSH legs (no build needed)
#   BENCH_NO_BUILD=1        do not run `cargo build --release`; use the binary as is
#   PORTCULLIS_BIN          default $CARGO_TARGET_DIR/release/portcullis
#   CARGO_TARGET_DIR        default /work/target
#   BENCH_KEEP=1            keep the temp dir (logs) instead of deleting it
#   BENCH_TEXT=1            download printable base64 lines instead of zeros
#   BENCH_TTY=1             download those lines through a pty (ssh -tt): what a
#                           shell session shows, recorded as a shell session
#   BENCH_LEGS="direct portcullis"  measure only these legs (ratios of the
#                           others print n/a)
#   BENCH_DIRS="down"       only these directions (up, down)
#   BENCH_ROUNDS=1          transfers per leg and direction; the median counts
#   BENCH_ECHO_KEYS=300     keystrokes timed per leg (one byte to `cat` in a
#                           pty and back, benches/echo_probe.py); 0: skip
#   BENCH_PIN=1             the bastion (portcullis, or OpenSSH's relay sshd)
#                           on CPU 1, every client, target sshd and `head` on
#                           CPU 0: a bastion host with a core of its own, as
#                           deployed, instead of one box where the bastion's
#                           cost slows the endpoints it serves
#
# Besides MiB/s it reports CPU seconds per GiB moved: the whole machine's
# (every ssh, sshd and bastion process; the fair cost when all run on one
# box) and the bastion's own (portcullis, or for `ssh -J` the relay sshd and
# its session processes). For portcullis also the bastion's CPU until it is
# idle again after the transfer: sealing a recording and building its search
# index happen after the client has gone, and cost per recording too.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target}"

CIPHER=${BENCH_CIPHER:-aes256-gcm@openssh.com}
KEX=${BENCH_KEX:-curve25519-sha256}
BYTES=${BENCH_BYTES:-1073741824}
SETUP_RUNS=${BENCH_SETUP_RUNS:-20}
IDLE=${BENCH_IDLE_SESSIONS:-500}
IDLE_BATCH=${BENCH_IDLE_BATCH:-10}
SKIP_PC=${BENCH_SKIP_PORTCULLIS:-0}
ROUNDS=${BENCH_ROUNDS:-1}
DIRS=${BENCH_DIRS:-up down}
NO_BUILD=${BENCH_NO_BUILD:-0}
PIN=${BENCH_PIN:-0}
ECHO_KEYS=${BENCH_ECHO_KEYS:-300}
PC_BIN=${PORTCULLIS_BIN:-$CARGO_TARGET_DIR/release/portcullis}

say() { printf '%s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

[[ $(id -u) -eq 0 ]] || die "run as root: the test sshd needs unshare -m and bind mounts"
for c in unshare openssl ssh ssh-keygen head awk sort setsid pgrep taskset python3; do
    command -v "$c" >/dev/null || die "$c not found"
done
[[ -x /usr/sbin/sshd ]] || die "/usr/sbin/sshd not found (apt-get install openssh-server)"

# ------------------------------------------------------------ cleanup ----

tmp=""
sshd_pid=""     # the `unshare` process; the sshd tree dies with it (pid namespace)
bastion_pid=""
relay_pid=""    # OpenSSH's jump sshd (listener); its sessions are its children
idle_pids=()

cleanup() {
    local rc=$? i
    set +e
    if [[ ${#idle_pids[@]} -gt 0 ]]; then
        kill "${idle_pids[@]}" 2>/dev/null
        wait "${idle_pids[@]}" 2>/dev/null
    fi
    if [[ -n $bastion_pid ]]; then
        kill "$bastion_pid" 2>/dev/null
        for ((i = 0; i < 100; i++)); do kill -0 "$bastion_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$bastion_pid" 2>/dev/null
        wait "$bastion_pid" 2>/dev/null
    fi
    if [[ -n $sshd_pid ]]; then
        # `unshare --fork` blocks TERM itself: stop its child, the sshd that is
        # pid 1 of the namespace (the kernel then kills every session), and
        # only if that fails, KILL unshare (--kill-child does the rest).
        local child=""
        read -r child _ <"/proc/$sshd_pid/task/$sshd_pid/children" 2>/dev/null
        [[ -n $child ]] && kill "$child" 2>/dev/null
        for ((i = 0; i < 50; i++)); do kill -0 "$sshd_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$sshd_pid" 2>/dev/null
        wait "$sshd_pid" 2>/dev/null
    fi
    if [[ -n $relay_cg ]]; then
        for ((i = 0; i < 50; i++)); do rmdir "$relay_cg" 2>/dev/null && break; sleep 0.1; done
    fi
    if [[ -n $tmp && -d $tmp ]]; then
        if [[ ${BENCH_KEEP:-0} == 1 ]]; then
            say "kept $tmp"
        else
            rm -rf -- "$tmp"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# -------------------------------------------------------------- helpers ----

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
    local p=$1
    while port_in_use "$p"; do p=$((p + 1)); done
    echo "$p"
}

wait_port() { # wait_port PORT PID WHAT
    local i
    for ((i = 0; i < 300; i++)); do
        port_in_use "$1" && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

now_ns() { date +%s%N; }

# Median of numbers on stdin.
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) { print "nan"; exit }
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

mib_per_s() { awk -v b="$BYTES" -v ns="$1" 'BEGIN { printf "%.1f", (b / 1048576) / (ns / 1e9) }'; }

# CPU ticks (USER_HZ) the whole machine spent busy, and one process spent.
machine_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat; }
proc_ticks() { # PID (0: none)
    if [[ $1 == 0 || ! -r /proc/$1/stat ]]; then echo 0; return; fi
    # comm may hold spaces: count fields after its closing parenthesis.
    sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}
# The relay sshd's sessions are processes that end with the transfer (and
# sshd does not fold their time into the listener's), so the relay runs in
# a cpuacct cgroup of its own, whose count keeps the time of exited members.
relay_cg=""
cg_ticks() { # (ignored) -> the relay cgroup's CPU time in USER_HZ ticks
    [[ -n $relay_cg ]] || { echo 0; return; }
    if [[ -f $relay_cg/cpuacct.usage ]]; then # v1: nanoseconds
        awk -v hz="$(getconf CLK_TCK)" '{ printf "%d\n", $1 / 1e9 * hz }' "$relay_cg/cpuacct.usage"
    else # v2: usage_usec in cpu.stat
        awk -v hz="$(getconf CLK_TCK)" '$1 == "usage_usec" { printf "%d\n", $2 / 1e6 * hz }' "$relay_cg/cpu.stat"
    fi
}

transfer() { # up|down HOST
    if [[ $1 == up ]]; then
        head -c "$BYTES" /dev/zero | "${SSH[@]}" "$2" 'cat > /dev/null'
    elif [[ ${BENCH_TTY:-0} == 1 ]]; then
        # BENCH_TEXT=1 / BENCH_TTY=1: printable lines (what a terminal shows)
        # instead of zeros, for comparing recording on/off on realistic output.
        "${SSH[@]}" -tt "$2" "base64 -w 76 /dev/zero | head -c $BYTES" </dev/null >/dev/null 2>&1
    elif [[ ${BENCH_TEXT:-0} == 1 ]]; then
        "${SSH[@]}" "$2" "base64 -w 76 /dev/zero | head -c $BYTES" >/dev/null
    else
        "${SSH[@]}" "$2" "head -c $BYTES /dev/zero" >/dev/null
    fi
}

# A process's CPU ticks once it has been idle (at most 1 tick per 0.25 s,
# twice in a row; at most 10 s): what the bastion still does for a session
# after its client has gone (sealing the recording, the search index).
settled_ticks() { # PID
    local prev cur quiet=0 i
    prev=$(proc_ticks "$1")
    for ((i = 0; i < 40 && quiet < 2; i++)); do
        sleep 0.25
        cur=$(proc_ticks "$1")
        if ((cur - prev <= 1)); then quiet=$((quiet + 1)); else quiet=0; fi
        prev=$cur
    done
    echo "$prev"
}

# One timed transfer: "MiB/s machine-CPU-s/GiB bastion-CPU-s/GiB
# bastion-CPU-s/GiB-with-after-work" (the last: until the bastion is idle
# again; n/a for the OpenSSH legs).
measure_once() { # up|down HOST
    local t0 t1 m0 m1 b0 b1 b2=-1 pid=${bastion_pid:-0} ticks=proc_ticks
    [[ $2 == jump ]] && ticks=cg_ticks
    [[ $2 == direct ]] && pid=0
    m0=$(machine_ticks) b0=$($ticks "$pid") t0=$(now_ns)
    transfer "$1" "$2"
    t1=$(now_ns) m1=$(machine_ticks)
    [[ $2 == jump ]] && sleep 0.3 # the relay's session processes finish
    b1=$($ticks "$pid")
    [[ $pid != 0 && $2 != jump ]] && b2=$(settled_ticks "$pid")
    awk -v b="$BYTES" -v ns=$((t1 - t0)) -v m=$((m1 - m0)) -v p=$((b1 - b0)) -v q=$((b2 - b0)) -v s="$b2" \
        -v hz="$(getconf CLK_TCK)" 'BEGIN { g = b / 1073741824
            printf "%.1f %.2f %.2f ", (b / 1048576) / (ns / 1e9), m / hz / g, p / hz / g
            if (s < 0) print "n/a"; else printf "%.2f\n", q / hz / g }'
}

# BENCH_ROUNDS transfers; the round with the median speed.
measure() { # up|down HOST
    local i
    for ((i = 0; i < ROUNDS; i++)); do measure_once "$1" "$2"; done |
        sort -n | awk '{ r[NR] = $0 } END { print r[int((NR + 1) / 2)] }'
}

bench_setup() { # HOST -> median ms of SETUP_RUNS `ssh HOST true` (after one warm-up)
    local i t0 t1
    "${SSH[@]}" "$1" true
    for ((i = 0; i < SETUP_RUNS; i++)); do
        t0=$(now_ns)
        "${SSH[@]}" "$1" true
        t1=$(now_ns)
        echo $(((t1 - t0) / 1000))
    done | median | awk '{ printf "%.1f", $1 / 1000 }'
}

# Untimed: a random payload both ways must arrive intact.
check_integrity() { # HOST
    local want got
    want=$(sha256sum <"$tmp/payload" | cut -d' ' -f1)
    got=$("${SSH[@]}" "$1" sha256sum <"$tmp/payload" | cut -d' ' -f1)
    [[ $got == "$want" ]] || die "$1: upload corrupted ($got != $want)"
    got=$("${SSH[@]}" "$1" "cat $tmp/payload" | sha256sum | cut -d' ' -f1)
    [[ $got == "$want" ]] || die "$1: download corrupted ($got != $want)"
}

# "a x2, b x1" from a list of words
count_words() { sort | uniq -c | awk '{ printf "%s%s x%d", (NR > 1 ? ", " : ""), $2, $1 }'; }

negotiated() { # HOST -> kex and cipher the client negotiated (each hop for -J)
    local v
    v=$("${SSH[@]}" -v "$1" true 2>&1 | tr -d '\r')
    printf 'kex %s; cipher %s' \
        "$(sed -n 's/.*kex: algorithm: \([^ ]*\).*/\1/p' <<<"$v" | count_words)" \
        "$(sed -n 's/.*kex: server->client cipher: \([^ ]*\).*/\1/p' <<<"$v" | count_words)"
}

proc_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# ------------------------------------------------------------ test sshd ----

tmp=$(mktemp -d /tmp/portcullis-bench.XXXXXX)
chmod 711 "$tmp" # tuser must reach its home, authorized_keys and the payload
SSH=(ssh -F "$tmp/ssh_config")
mkdir -p "$tmp/etc" "$tmp/home/tuser" "$tmp/authorized_keys" "$tmp/idle"

load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
say "== setup in $tmp (load average $load_at_start)"
ssh-keygen -q -t ed25519 -N '' -C bench-sshd-host -f "$tmp/sshd_host_ed25519_key"
ssh-keygen -q -t ed25519 -N '' -C bench-client -f "$tmp/client_ed25519"
ssh-keygen -q -t ed25519 -N '' -C bench-upstream -f "$tmp/upstream_ed25519"
ssh-keygen -q -t ed25519 -N '' -C bench-bastion-host -f "$tmp/bastion_host_ed25519_key"
cat "$tmp/client_ed25519.pub" "$tmp/upstream_ed25519.pub" >"$tmp/authorized_keys/tuser"
chmod 755 "$tmp/authorized_keys"
chmod 644 "$tmp/authorized_keys/tuser"
head -c 16777216 /dev/urandom >"$tmp/payload"
chmod 644 "$tmp/payload"

# Test account: copies of the account files with tuser added, bind-mounted
# over the real ones inside the sshd's mount namespace only.
tuser_password=$(head -c 12 /dev/urandom | base64)
tuser_hash=$(openssl passwd -6 "$tuser_password")
cp -p /etc/passwd /etc/shadow /etc/group "$tmp/etc/"
echo "tuser:x:4242:4242:portcullis bench:$tmp/home/tuser:/bin/sh" >>"$tmp/etc/passwd"
echo "tuser:$tuser_hash:19000:0:99999:7:::" >>"$tmp/etc/shadow"
echo "tuser:x:4242:" >>"$tmp/etc/group"
chown 4242:4242 "$tmp/home/tuser"
chmod 700 "$tmp/home/tuser"

sshd_port=$(free_port "${BENCH_SSHD_PORT:-42222}")
sed -e "s|@PORT@|$sshd_port|g" \
    -e "s|@HOST_KEY@|$tmp/sshd_host_ed25519_key|g" \
    -e "s|@PID_FILE@|$tmp/sshd.pid|g" \
    -e "s|@AUTHORIZED_KEYS_DIR@|$tmp/authorized_keys|g" \
    -e "s|@CIPHERS@|$CIPHER|g" \
    "$repo/proto-fixtures/sshd_config.template" >"$tmp/sshd_config"
if grep -n '@[A-Z_]*@' "$tmp/sshd_config" | grep -v '^[0-9]*:#'; then
    die "unreplaced placeholder in sshd_config"
fi
relay_port=$(free_port "${BENCH_RELAY_PORT:-42223}")
while [[ $relay_port == "$sshd_port" ]]; do relay_port=$(free_port $((relay_port + 1))); done
sed -e "s|^Port .*|Port $relay_port|" -e "s|^PidFile .*|PidFile $tmp/relay_sshd.pid|" \
    "$tmp/sshd_config" >"$tmp/relay_sshd_config"

cat >"$tmp/ns-sshd.sh" <<EOF
set -e
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -m 755 /run/sshd
mount -t tmpfs -o mode=755 tmpfs /var/log
mount --bind "$tmp/etc/passwd" /etc/passwd
mount --bind "$tmp/etc/shadow" /etc/shadow
mount --bind "$tmp/etc/group" /etc/group
/usr/sbin/sshd -t -f "$tmp/sshd_config"
/usr/sbin/sshd -t -f "$tmp/relay_sshd_config"
/usr/sbin/sshd -D -e -f "$tmp/relay_sshd_config" -o LogLevel=ERROR 2>"$tmp/relay_sshd.log" &
exec /usr/sbin/sshd -D -e -f "$tmp/sshd_config" -o LogLevel=DEBUG1
EOF
# New mount namespace (private propagation) and pid namespace: sshd is pid 1
# there, so killing `unshare` (--kill-child) takes every session with it.
setsid unshare --mount --propagation private --pid --fork --kill-child --mount-proc \
    bash "$tmp/ns-sshd.sh" </dev/null >"$tmp/sshd.log" 2>&1 &
sshd_pid=$!
wait_port "$sshd_port" "$sshd_pid" || {
    tail -n 20 "$tmp/sshd.log" >&2
    die "test sshd did not start"
}
wait_port "$relay_port" "$sshd_pid" || {
    tail -n 20 "$tmp/relay_sshd.log" >&2
    die "relay sshd did not start"
}
relay_pid=$(pgrep -f -- "-f $tmp/relay_sshd_config" | head -n 1)
[[ -n $relay_pid ]] || die "relay sshd: no process found"
target_sshd_pid=$(pgrep -f -- "-f $tmp/sshd_config" | head -n 1)
[[ -n $target_sshd_pid ]] || die "target sshd: no process found"
# cgroup v1 cpuacct where mounted, else the v2 hierarchy (cpu.stat is there
# without enabling any controller).
for cg_root in /sys/fs/cgroup/cpuacct /sys/fs/cgroup/cpu,cpuacct /sys/fs/cgroup /sys/fs/cgroup/unified; do
    [[ -f $cg_root/cpuacct.usage || -f $cg_root/cgroup.controllers ]] || continue
    if mkdir "$cg_root/portcullis-bench-relay.$$" 2>/dev/null; then
        relay_cg="$cg_root/portcullis-bench-relay.$$"
        echo "$relay_pid" >"$relay_cg/cgroup.procs" && break
        rmdir "$relay_cg"
        relay_cg=""
    fi
done
[[ -n $relay_cg ]] || say "no cgroup to create: the relay sshd's CPU will read 0"

{
    printf '[127.0.0.1]:%s %s\n' "$sshd_port" "$(cut -d' ' -f1,2 "$tmp/sshd_host_ed25519_key.pub")"
    printf '[127.0.0.1]:%s %s\n' "$relay_port" "$(cut -d' ' -f1,2 "$tmp/sshd_host_ed25519_key.pub")"
} >"$tmp/known_hosts"

bastion_port=$(free_port "${BENCH_BASTION_PORT:-42322}")
while [[ $bastion_port == "$sshd_port" || $bastion_port == "$relay_port" ]]; do bastion_port=$(free_port $((bastion_port + 1))); done

cat >"$tmp/ssh_config" <<EOF
Host direct
    HostName 127.0.0.1
    Port $sshd_port
    User tuser
Host relay
    HostName 127.0.0.1
    Port $relay_port
    User tuser
Host jump
    HostName 127.0.0.1
    Port $sshd_port
    User tuser
    ProxyJump relay
Host portcullis
    HostName 127.0.0.1
    Port $bastion_port
    User alice+web01
Host pcmeta
    HostName 127.0.0.1
    Port $bastion_port
    User alice+web01m
Host pcbastion
    HostName 127.0.0.1
    Port $bastion_port
    User alice
Host pcjump
    HostName web01
    User tuser
    ProxyJump pcbastion
Host pcjumpmeta
    HostName web01m
    User tuser
    ProxyJump pcbastion
Host *
    Ciphers $CIPHER
    KexAlgorithms $KEX
    Compression no
    IdentityFile $tmp/client_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $tmp/known_hosts
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    UpdateHostKeys no
    BatchMode yes
    ControlMaster no
    ControlPath none
    ForwardAgent no
    RequestTTY no
    ServerAliveInterval 0
    ConnectTimeout 20
    LogLevel ERROR
EOF

"${SSH[@]}" direct true || {
    tail -n 30 "$tmp/sshd.log" >&2
    die "cannot log in to the test sshd as tuser"
}
say "test sshd: 127.0.0.1:$sshd_port (pid namespace via unshare pid $sshd_pid), cipher $CIPHER"

# ----------------------------------------------------------- portcullis ----

legs=(direct jump)
if [[ $SKIP_PC != 1 ]]; then
    if [[ $NO_BUILD != 1 ]]; then
        say "== cargo build --release"
        (cd "$repo" && cargo build --release) || die "cargo build --release failed"
    fi
    [[ -x $PC_BIN ]] || die "$PC_BIN not found"

    cat >"$tmp/portcullis.toml" <<EOF
listen = "127.0.0.1:$bastion_port"
host_keys = ["$tmp/bastion_host_ed25519_key"]
log_format = "text"
EOF
    pc() { "$PC_BIN" --config "$tmp/portcullis.toml" --data-dir "$tmp/data" "$@" >&2; }
    pc user add alice --service --key "$tmp/client_ed25519.pub"
    pc target add web01 --host 127.0.0.1 --port "$sshd_port" \
        --host-key-file "$tmp/sshd_host_ed25519_key.pub"
    pc credential set web01 tuser --key-file "$tmp/upstream_ed25519"
    pc grant add --user alice --target web01 --login tuser
    # The same sshd as web01m, recorded as metadata only: recording on/off.
    pc target add web01m --host 127.0.0.1 --port "$sshd_port" \
        --host-key-file "$tmp/sshd_host_ed25519_key.pub"
    pc target recording web01m metadata
    pc credential set web01m tuser --key-file "$tmp/upstream_ed25519"
    pc grant add --user alice --target web01m --login tuser

    printf '[127.0.0.1]:%s %s\n' "$bastion_port" \
        "$(cut -d' ' -f1,2 "$tmp/bastion_host_ed25519_key.pub")" >>"$tmp/known_hosts"

    # 500 sessions need about 2 descriptors each in the bastion.
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    # Not through `pc`: $! must be the bastion itself, not a subshell.
    "$PC_BIN" --config "$tmp/portcullis.toml" --data-dir "$tmp/data" serve \
        </dev/null >"$tmp/bastion.log" 2>&1 &
    bastion_pid=$!
    wait_port "$bastion_port" "$bastion_pid" || {
        tail -n 30 "$tmp/bastion.log" >&2
        die "portcullis did not start"
    }
    "${SSH[@]}" portcullis true || {
        tail -n 30 "$tmp/bastion.log" >&2
        die "cannot reach web01 through portcullis as alice"
    }
    say "portcullis: 127.0.0.1:$bastion_port (pid $bastion_pid), $PC_BIN"
    legs+=(portcullis pcmeta)
    # ssh -J at the bastion: targets are trusted through the host CA line only.
    "$PC_BIN" --config "$tmp/portcullis.toml" --data-dir "$tmp/data" host-ca show >>"$tmp/known_hosts"
    "${SSH[@]}" pcjump true || {
        tail -n 30 "$tmp/bastion.log" >&2
        die "cannot reach web01 with ssh -J through portcullis"
    }
    legs+=(pcjump pcjumpmeta)
fi

# ----------------------------------------------------------- measurements ----

placement="every process on any of the $(nproc) cores"
if [[ $PIN == 1 ]]; then
    [[ $(nproc) -ge 2 ]] || die "BENCH_PIN=1 needs at least 2 CPUs"
    # Target first: the relay is its child, and keeps its own mask once set.
    taskset -a -p -c 0 "$target_sshd_pid" >/dev/null
    taskset -p -c 0 $$ >/dev/null # every ssh and head started from here
    taskset -a -p -c 1 "$relay_pid" >/dev/null
    [[ -z $bastion_pid ]] || taskset -a -p -c 1 "$bastion_pid" >/dev/null
    placement="pinned: portcullis and the relay sshd on CPU 1; clients, target sshd, head on CPU 0"
fi

declare -A up down setup label cpu after echo_ms
label[direct]="direct OpenSSH"
label[jump]="ssh -J via OpenSSH sshd"
label[portcullis]="portcullis"
label[pcjump]="ssh -J via portcullis"
label[pcmeta]="portcullis, unrecorded"
label[pcjumpmeta]="ssh -J via pc, unrecorded"

for leg in "${!label[@]}"; do up[$leg]=0 down[$leg]=0 setup[$leg]=0; done
if [[ -n ${BENCH_LEGS:-} ]]; then
    read -r -a legs <<<"$BENCH_LEGS"
    for leg in "${legs[@]}"; do
        [[ -n ${label[$leg]:-} ]] || die "BENCH_LEGS: unknown leg '$leg' (known: ${!label[*]})"
    done
fi
for dir in $DIRS; do
    [[ $dir == up || $dir == down ]] || die "BENCH_DIRS: unknown direction '$dir' (up, down)"
done
for leg in "${legs[@]}"; do
    say "== ${label[$leg]}"
    check_integrity "$leg"
    say "   client side: $(negotiated "$leg")"
    for dir in $DIRS; do
        read -r mibs mcpu bcpu bafter <<<"$(measure "$dir" "$leg")"
        if [[ $dir == up ]]; then up[$leg]=$mibs; else down[$leg]=$mibs; fi
        cpu[$leg.$dir]="$mcpu $bcpu"
        after[$leg.$dir]=$bafter
        say "   $dir $mibs MiB/s; CPU s/GiB: machine $mcpu, bastion $bcpu ($bafter with the work after it)"
    done
    setup[$leg]=$(bench_setup "$leg")
    say "   setup    ${setup[$leg]} ms (median of $SETUP_RUNS)"
    if [[ $ECHO_KEYS -gt 0 ]]; then
        echo_ms[$leg]=$(python3 "$repo/benches/echo_probe.py" "$ECHO_KEYS" -- "${SSH[@]}" "$leg") ||
            die "${label[$leg]}: keystroke probe failed"
        say "   keystroke echo ms (median p99): ${echo_ms[$leg]}"
    fi
done

# What the test sshd saw on all its connections (includes the bastion's
# upstream leg, and rekeys). sshd -e ends its lines with \r\n.
server_log=$(tr -d '\r' <"$tmp/sshd.log")
server_kex=$(sed -n 's/.*kex: algorithm: \([^ ]*\).*/\1/p' <<<"$server_log" | count_words)
server_ciphers=$(sed -n 's/.*kex: client->server cipher: \([^ ]*\).*/\1/p' <<<"$server_log" | count_words)

# ---------------------------------------------------------- idle sessions ----

idle_up=0
if [[ $SKIP_PC != 1 && $IDLE -gt 0 ]]; then
    say "== $IDLE idle sessions through portcullis"
    rss_before=$(proc_kb "$bastion_pid" VmRSS)
    hwm_before=$(proc_kb "$bastion_pid" VmHWM)
    for ((i = 0; i < IDLE; i += IDLE_BATCH)); do
        batch=()
        for ((j = i; j < i + IDLE_BATCH && j < IDLE; j++)); do
            "${SSH[@]}" portcullis 'echo up; exec sleep 3600' </dev/null >"$tmp/idle/$j" 2>&1 &
            idle_pids+=("$!")
            batch+=("$j")
        done
        # Wait until every session of the batch runs its command on the target.
        for ((w = 0; w < 600; w++)); do
            pending=0
            for j in "${batch[@]}"; do
                grep -q '^up$' "$tmp/idle/$j" 2>/dev/null || pending=$((pending + 1))
            done
            [[ $pending -eq 0 ]] && break
            sleep 0.1
        done
        if [[ $pending -ne 0 ]]; then
            say "   $pending session(s) of batch $i did not come up; first error:"
            for j in "${batch[@]}"; do
                grep -q '^up$' "$tmp/idle/$j" || { head -n 3 "$tmp/idle/$j" >&2; break; }
            done
            break
        fi
        idle_up=$((i + ${#batch[@]}))
    done
    sleep 2 # let allocations settle
    alive=0
    for p in "${idle_pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
    rss_after=$(proc_kb "$bastion_pid" VmRSS)
    hwm_after=$(proc_kb "$bastion_pid" VmHWM)
    say "   $idle_up sessions up, $alive client processes alive"
fi

# ----------------------------------------------------------------- report ----

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2fx", a / b; else print "n/a" }'; }

echo
echo "portcullis throughput bench — $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(uname -r)"
echo "load average at start: $load_at_start (other work on the machine skews every figure)"
echo "cipher: $CIPHER on every hop (client kex: $KEX); stream: $BYTES bytes; setup: median of $SETUP_RUNS 'ssh ... true'"
echo "test sshd negotiated, all connections: kex $server_kex; cipher $server_ciphers"
echo "placement: $placement"
echo
printf '%-26s %14s %16s %10s\n' leg "upload MiB/s" "download MiB/s" "setup ms"
printf '%-26s %14s %16s %10s\n' -------------------------- -------------- ---------------- ----------
for leg in "${legs[@]}"; do
    printf '%-26s %14s %16s %10s\n' "${label[$leg]}" "${up[$leg]}" "${down[$leg]}" "${setup[$leg]}"
done
printf '%-26s %14s %16s %10s\n' "ssh -J / direct" "$(ratio "${up[jump]}" "${up[direct]}")" \
    "$(ratio "${down[jump]}" "${down[direct]}")" "$(ratio "${setup[jump]}" "${setup[direct]}")"
if [[ $SKIP_PC != 1 ]]; then
    printf '%-26s %14s %16s %10s\n' "portcullis / direct" "$(ratio "${up[portcullis]}" "${up[direct]}")" \
        "$(ratio "${down[portcullis]}" "${down[direct]}")" "$(ratio "${setup[portcullis]}" "${setup[direct]}")"
    printf '%-26s %14s %16s %10s\n' "portcullis / ssh -J" "$(ratio "${up[portcullis]}" "${up[jump]}")" \
        "$(ratio "${down[portcullis]}" "${down[jump]}")" "$(ratio "${setup[portcullis]}" "${setup[jump]}")"
    printf '%-26s %14s %16s %10s\n' "recorded / unrecorded" "$(ratio "${up[portcullis]}" "${up[pcmeta]}")" \
        "$(ratio "${down[portcullis]}" "${down[pcmeta]}")" "$(ratio "${setup[portcullis]}" "${setup[pcmeta]}")"
    printf '%-26s %14s %16s %10s\n' "pc -J / ssh -J" "$(ratio "${up[pcjump]}" "${up[jump]}")" \
        "$(ratio "${down[pcjump]}" "${down[jump]}")" "$(ratio "${setup[pcjump]}" "${setup[jump]}")"
    printf '%-26s %14s %16s %10s\n' "pc -J recorded / unrec." "$(ratio "${up[pcjump]}" "${up[pcjumpmeta]}")" \
        "$(ratio "${down[pcjump]}" "${down[pcjumpmeta]}")" "$(ratio "${setup[pcjump]}" "${setup[pcjumpmeta]}")"
    printf '%-26s %14s %16s %10s\n' "pc -J / direct" "$(ratio "${up[pcjump]}" "${up[direct]}")" \
        "$(ratio "${down[pcjump]}" "${down[direct]}")" "$(ratio "${setup[pcjump]}" "${setup[direct]}")"
    echo "(throughput ratios: higher is better; setup ratios: lower is better)"
    echo
    echo "CPU seconds per GiB moved (machine: every process on the box; bastion: portcullis, or OpenSSH's relay sshd for ssh -J)"
    printf '%-26s %18s %18s\n' leg "upload mach/bast" "download mach/bast"
    for leg in "${legs[@]}"; do
        printf '%-26s %18s %18s\n' "${label[$leg]}" "${cpu[$leg.up]:-n/a}" "${cpu[$leg.down]:-n/a}"
    done
    echo "bastion CPU s/GiB until it is idle again after the transfer (+ sealing, search index)"
    for leg in "${legs[@]}"; do
        printf '%-26s %18s %18s\n' "${label[$leg]}" "${after[$leg.up]:-n/a}" "${after[$leg.down]:-n/a}"
    done
    if [[ $ECHO_KEYS -gt 0 ]]; then
        echo
        echo "keystroke echo through a pty ($ECHO_KEYS keys, one byte to \`cat\` and back), ms"
        printf '%-26s %10s %10s %14s\n' leg median p99 "median / direct"
        for leg in "${legs[@]}"; do
            read -r med p99 <<<"${echo_ms[$leg]:-0 0}"
            read -r dmed _ <<<"${echo_ms[direct]:-0 0}"
            printf '%-26s %10s %10s %14s\n' "${label[$leg]}" "$med" "$p99" "$(ratio "$med" "$dmed")"
        done
    fi
    # `|| true`: with ~700+ recordings (idle sessions) ls outlives head (SIGPIPE),
    # and pipefail would end the script before the idle report.
    largest=$(ls -S "$tmp"/data/recordings/*.cast 2>/dev/null | head -n 1 || true)
    if [[ -n $largest ]]; then
        awk -v s="$(stat -c %s "$largest")" -v b="$BYTES" \
            'BEGIN { printf "largest recording: %d bytes, %.3fx the %d bytes of the stream\n", s, s / b, b }'
    fi
    if [[ $IDLE -gt 0 ]]; then
        echo
        echo "idle sessions through portcullis: $idle_up of $IDLE up"
        printf '  %-8s %12s %12s\n' "" "before kB" "after kB"
        printf '  %-8s %12s %12s\n' VmRSS "$rss_before" "$rss_after"
        printf '  %-8s %12s %12s\n' VmHWM "$hwm_before" "$hwm_after"
        if [[ $idle_up -gt 0 ]]; then
            awk -v a="$rss_after" -v b="$rss_before" -v n="$idle_up" \
                'BEGIN { printf "  RSS per idle session: %.1f KiB\n", (a - b) / n }'
        fi
    fi
fi
