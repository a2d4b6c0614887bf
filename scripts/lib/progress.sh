# shellcheck shell=bash
# Progress for the slow parts of a first run on a fresh machine (packages,
# tools, compiling): each step that has work to do is named on stderr when
# it starts, gets a line every 30 s while it runs and its time when it ends,
# so nobody has to wonder whether it hung. A step with nothing to do prints
# nothing: warm runs stay quiet.
#
#   source "$root/scripts/lib/progress.sh" NAME   NAME starts every line
#   step WHAT COMMAND…        runs COMMAND (a program or a function), timed
#   cargo_step WHAT ARGS…     cargo ARGS, timed only when it compiles something
#   quietly COMMAND…          COMMAND's output shown only if it fails (apt's chatter)
#   setup_summary START       one line when the setup since START took long

progress_name=${1:-$(basename "$0")}
# The heartbeat's period, in seconds.
progress_every=${REGISTRY_ACTION_PROGRESS_EVERY:-30}

say() {
    printf '%s: %s\n' "$progress_name" "$*" >&2
}

# 42 → "42 s", 185 → "3 min 05 s".
duration() {
    if (($1 < 60)); then
        printf '%d s' "$1"
    else
        printf '%d min %02d s' $(($1 / 60)) $(($1 % 60))
    fi
}

# A line every $progress_every seconds while the step runs. It looks each
# second whether the script that started it is still there, and ends when
# it is not (an `exit` in the middle of a step, in the shell that ran it).
heartbeat() {
    local what=$1 start=$2 parent=$3 fd ticks=0
    exec {fd}<> <(:) # an open pipe nobody writes to: `read -t` is a sleep without a child
    while [[ -e /proc/$parent ]]; do
        read -r -t 1 -u "$fd" || true
        ticks=$((ticks + 1))
        if ((ticks % progress_every == 0)); then
            say "  … $what: $(duration $((SECONDS - start))) so far"
        fi
    done
}

# COMMAND runs as if called directly: under `set -e` a failure ends the
# script there (the heartbeat notices); in a caller's `||`, its status is
# returned.
step() {
    local what=$1 start=$SECONDS shell=$BASHPID beat rc
    shift
    say "$what …"
    # stdout closed: a caller reading this script's output (`$(…)`) must
    # not wait for it.
    heartbeat "$what" "$start" "$shell" >/dev/null &
    beat=$!
    "$@"
    rc=$?
    kill "$beat" 2>/dev/null || true
    wait "$beat" 2>/dev/null || true
    if ((rc == 0)); then
        say "  done in $(duration $((SECONDS - start)))"
    else
        say "  $what failed after $(duration $((SECONDS - start)))"
    fi
    return "$rc"
}

# COMMAND with its output kept aside, and shown only when it fails.
quietly() {
    local log rc=0
    log=$(mktemp)
    "$@" >"$log" 2>&1 || rc=$?
    ((rc == 0)) || cat "$log" >&2
    rm -f "$log"
    return "$rc"
}

# Reads cargo's stderr: announces the step at the first crate compiled,
# counts them, keeps everything in LOG (shown if cargo fails).
cargo_progress() {
    local what=$1 start=$2 log=$3 line crates=0 announced=0 last=$SECONDS status
    while true; do
        if IFS= read -r -t 5 line; then
            printf '%s\n' "$line" >>"$log"
            if [[ $line =~ ^[[:space:]]*Compiling[[:space:]] ]]; then
                crates=$((crates + 1))
                if ((!announced)); then
                    say "$what …"
                    announced=1
                    last=$SECONDS
                fi
            fi
        else
            status=$?
            ((status > 128)) || break # end of cargo's output, not a timeout
        fi
        if ((announced && SECONDS - last >= progress_every)); then
            say "  … $(duration $((SECONDS - start))) so far, $crates crates compiled"
            last=$SECONDS
        fi
    done
    if ((announced)); then
        say "  done in $(duration $((SECONDS - start))) ($crates crates compiled)"
    fi
}

cargo_step() {
    local what=$1 start=$SECONDS log rc=0
    shift
    log=$(mktemp)
    { cargo "$@" --color never 2>&1 1>&3 3>&- | cargo_progress "$what" "$start" "$log"; } 3>&1 || rc=$?
    if ((rc != 0)); then
        cat "$log" >&2
        say "  $what failed (cargo $*)"
    fi
    rm -f "$log"
    return "$rc"
}

# After the setup of a script (START: its $SECONDS then): one line saying
# how long it took, when that was long enough for a person to notice.
setup_summary() {
    local took=$((SECONDS - $1))
    if ((took >= 20)); then
        say "ready after $(duration "$took") of setup (packages, tools and builds are kept: the next run skips them)"
    fi
}
