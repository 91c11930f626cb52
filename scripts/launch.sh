#!/usr/bin/env bash
# Runs N local ranks of coordexp-train the way torchrun does, for machines without Python:
#   scripts/launch.sh --nproc N [--master-addr A] [--master-port P] [--grace S] -- train --config ...
# Each rank gets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT; its
# stdout/stderr lines are prefixed with "[rank k] ". SIGINT/SIGTERM are forwarded once to every rank
# (the ranks run in their own sessions, so a terminal's Ctrl-C reaches them only through here; a
# second signal is forwarded too: the trainer then exits at once). When a rank exits non-zero the
# others get SIGTERM, then SIGKILL after --grace seconds (default 30), and launch.sh exits with the
# first failed rank's code (128 + signal for a rank killed by a signal); 0 when every rank succeeded.
# One machine only (several machines: torchrun, docs/training.md). Binary: $COORDEXP_TRAIN, else
# build/coordexp-train next to this script. Needs bash >= 5.1 (wait -n -p) and setsid (util-linux).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
  echo "usage: $0 --nproc N [--master-addr ADDR] [--master-port PORT] [--grace SECONDS] -- <coordexp-train args...>" >&2
  exit 2
}

nproc="" addr="127.0.0.1" port="29500" grace=30
while (($#)); do
  case "$1" in
    --nproc|--nproc-per-node|--nproc_per_node) nproc="${2:-}"; shift 2 || usage ;;
    --master-addr|--master_addr) addr="${2:-}"; shift 2 || usage ;;
    --master-port|--master_port) port="${2:-}"; shift 2 || usage ;;
    --grace) grace="${2:-}"; shift 2 || usage ;;
    --) shift; break ;;
    -h|--help) usage ;;
    *) echo "launch.sh: unknown option '$1' (the trainer's arguments go after --)" >&2; usage ;;
  esac
done
(($#)) || { echo "launch.sh: no coordexp-train arguments after --" >&2; usage; }
[[ "$nproc" =~ ^[1-9][0-9]*$ ]] || { echo "launch.sh: --nproc must be a positive integer (got '$nproc')" >&2; usage; }
[[ "$port" =~ ^[0-9]+$ ]] && ((port >= 1 && port <= 65535)) ||
  { echo "launch.sh: --master-port must be in [1, 65535] (got '$port')" >&2; usage; }
[[ "$grace" =~ ^[0-9]+$ ]] || { echo "launch.sh: --grace must be a whole number of seconds (got '$grace')" >&2; usage; }
if ((BASH_VERSINFO[0] < 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] < 1))); then
  echo "launch.sh: needs bash >= 5.1 (this is $BASH_VERSION)" >&2
  exit 2
fi
bin="${COORDEXP_TRAIN:-$here/build/coordexp-train}"
[[ -x "$bin" ]] || { echo "launch.sh: $bin is not an executable (build it, or set COORDEXP_TRAIN)" >&2; exit 2; }
command -v setsid >/dev/null || { echo "launch.sh: setsid not found (Debian package util-linux)" >&2; exit 2; }

fifo_dir="$(mktemp -d "${TMPDIR:-/tmp}/coordexp-launch.XXXXXX")"
declare -a pids=() printers=()
declare -A rank_of=() code_of=()

cleanup() { rm -rf "$fifo_dir"; }
trap cleanup EXIT

alive() {  # the ranks that have not exited
  local r
  for r in "${!pids[@]}"; do [[ -z "${code_of[$r]:-}" ]] && echo "${pids[$r]}"; done
}

forward() {  # forward signal $1 to every live rank
  local sig="$1" p
  echo "launch.sh: SIG$sig received, forwarding it to the ranks" >&2
  for p in $(alive); do kill -s "$sig" "$p" 2>/dev/null; done
}
trap 'forward INT' INT
trap 'forward TERM' TERM

for ((r = 0; r < nproc; ++r)); do
  mkfifo "$fifo_dir/out$r" "$fifo_dir/err$r"
  sed -u "s/^/[rank $r] /" <"$fifo_dir/out$r" &
  printers+=($!)
  sed -u "s/^/[rank $r] /" <"$fifo_dir/err$r" >&2 &
  printers+=($!)
  # setsid: the rank's own session, so a terminal's SIGINT is not delivered twice (there and here).
  RANK=$r LOCAL_RANK=$r WORLD_SIZE=$nproc LOCAL_WORLD_SIZE=$nproc MASTER_ADDR="$addr" MASTER_PORT="$port" \
    setsid "$bin" "$@" >"$fifo_dir/out$r" 2>"$fifo_dir/err$r" </dev/null &
  pids[r]=$!
  rank_of[$!]=$r
done

first_failure="" final=0
killer=""
on_exit() {  # rank with pid $1 exited with status $2
  local r="${rank_of[$1]}" left p
  code_of[$r]=$2
  ((${2} != 0)) && [[ -z "$first_failure" ]] || return 0
  first_failure=$r
  final=$2
  left="$(alive)"
  [[ -n "$left" ]] || return 0
  echo "launch.sh: rank $r exited with code $2; stopping the other ranks (SIGTERM, SIGKILL after ${grace} s)" >&2
  for p in $left; do kill -s TERM "$p" 2>/dev/null; done
  ( sleep "$grace"; for p in $left; do kill -s KILL "$p" 2>/dev/null; done ) &
  killer=$!
}
while [[ -n "$(alive)" ]]; do
  done_pid=""
  wait -n -p done_pid $(alive) 2>/dev/null
  status=$?
  if [[ -n "${done_pid:-}" ]]; then
    on_exit "$done_pid" "$status"
    continue
  fi
  # A trapped signal interrupted the wait, or bash had already reaped an exit (then `wait -n`
  # answers "no such job"): collect the exits by pid.
  for p in $(alive); do
    if ! kill -0 "$p" 2>/dev/null; then
      wait "$p" 2>/dev/null
      on_exit "$p" "$?"
    fi
  done
  sleep 0.1  # no busy loop should `wait -n` keep answering at once
done
[[ -n "$killer" ]] && kill "$killer" 2>/dev/null
wait "${printers[@]}" 2>/dev/null

if [[ -n "$first_failure" ]]; then
  summary=""
  for ((r = 0; r < nproc; ++r)); do summary+=" rank $r: ${code_of[$r]}"; done
  echo "launch.sh: failed (first failure: rank $first_failure, exit code $final; exit codes:$summary)" >&2
  exit "$final"
fi
exit 0
