#!/bin/sh
# A stand-in for xengnt-lab-runner (POSIX sh, runs under busybox) with the same contract, for
# working on the lab itself:  XENGNT_LAB_RUNNER=Tests/Lab/placeholder-runner.sh Tests/Lab/run
#
#   placeholder-runner.sh --role dom0|pv|pvh|victim [--case NAME[,NAME...]]... [--list]
#
# Prints `PASS <case> <role>`, `FAIL <case> <role> <reason>` or `SKIP <case> <role>` per case
# and a closing `N passed, N failed`. Like the real runner it waits for Dom0 to publish
# /xengnt/domains/{dom0,pv,pvh}, and a DomU writes /xengnt/done/<role> when it is finished.
# Cases (each really exercises the lab's plumbing):
#   devices     /dev/xen/{gntdev,gntalloc,evtchn}, /dev/udmabuf and /dev/dma_heap/system exist
#   guest-type  /sys/hypervisor/guest_type is PV (dom0, pv) or PVH (pvh)
#   ping        Dom0 writes /xengnt/ping = hello; each DomU reads it and answers in
#               /xengnt/run/pong-<role>, which Dom0 reads back (xenstore permissions both ways)
#   victim-destroy  the victim DomU (created by Dom0's init because --list names it) writes
#               /xengnt/run/victim-ready; once its runner has finished, Dom0 destroys it with
#               `xl destroy` and waits until `xl list` no longer shows it

role=
cases=
list=0
while [ $# -gt 0 ]; do
    case "$1" in
        --role) role=$2; shift 2 ;;
        --case) cases="$cases $(echo "$2" | tr ',' ' ')"; shift 2 ;;
        --list) list=1; shift ;;
        *) echo "FAIL runner ${role:-?} unknown argument $1"; echo "0 passed, 1 failed"; exit 2 ;;
    esac
done
selected() {
    [ -z "$cases" ] && return 0
    for each in $cases; do [ "$each" = "$1" ] && return 0; done
    return 1
}
if [ "$list" = 1 ]; then   # the selected cases: name, roles (Dom0's init looks for "victim")
    for each in devices guest-type ping; do selected $each && printf '%s\tdom0,pv,pvh\n' $each; done
    selected victim-destroy && printf 'victim-destroy\tdom0,victim\n'
    exit 0
fi
case "$role" in
    dom0|pv|pvh|victim) ;;
    *) echo "FAIL runner ? --role takes dom0, pv, pvh or victim"; echo "0 passed, 1 failed"; exit 2 ;;
esac

passed=0
failed=0
pass() { echo "PASS $1 $role"; passed=$((passed + 1)); }
fail() { name=$1; shift; echo "FAIL $name $role $*"; failed=$((failed + 1)); }
# wait_key KEY SECONDS: print the key's value once it exists; fail after SECONDS. Polls twice a
# second: under TCG every xenstore-read is a fork+exec that other domains' vCPUs wait for.
wait_key() {
    tries=$(($2 * 2))
    while [ $tries -gt 0 ]; do
        xenstore-read "$1" 2>/dev/null && return 0
        sleep 0.5
        tries=$((tries - 1))
    done
    return 1
}

# Like the real runner: wait until Dom0 has published every domid.
for each in dom0 pv pvh; do
    if ! wait_key "/xengnt/domains/$each" 120 >/dev/null; then
        echo "FAIL runner $role /xengnt/domains/$each did not appear within 120 s"
        echo "0 passed, 1 failed"
        exit 2
    fi
done
echo "INFO runner $role domid $(wait_key "/xengnt/domains/$role" 1) guest $(cat /sys/hypervisor/guest_type 2>/dev/null)"

if [ "$role" = victim ]; then
    # The victim takes part in victim-destroy only.
    if ! selected victim-destroy; then :
    elif xenstore-write /xengnt/run/victim-ready ready; then pass victim-destroy
    else fail victim-destroy "cannot write /xengnt/run/victim-ready"; fi
    echo "$passed passed, $failed failed"
    xenstore-write "/xengnt/done/$role" "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
fi

if selected devices; then
    missing=
    for device in /dev/xen/gntdev /dev/xen/gntalloc /dev/xen/evtchn /dev/udmabuf /dev/dma_heap/system; do
        [ -c "$device" ] || missing="$missing $device"
    done
    if [ -z "$missing" ]; then pass devices; else fail devices "missing:$missing"; fi
fi

if selected guest-type; then
    case "$role" in pvh) want=PVH ;; *) want=PV ;; esac
    got=$(cat /sys/hypervisor/guest_type 2>/dev/null)
    if [ "$got" = "$want" ]; then pass guest-type; else fail guest-type "guest_type is '$got', want '$want'"; fi
fi

if selected ping; then
    if [ "$role" = dom0 ]; then
        if ! xenstore-write /xengnt/ping hello; then
            fail ping "cannot write /xengnt/ping"
        else
            bad=
            for peer in pv pvh; do
                answer=$(wait_key "/xengnt/run/pong-$peer" 60)
                [ "$answer" = "hello from $peer" ] || bad="$bad $peer:'$answer'"
            done
            if [ -z "$bad" ]; then pass ping; else fail ping "wrong or no answer from$bad"; fi
        fi
    else
        value=$(wait_key /xengnt/ping 60)
        if [ "$value" != hello ]; then
            fail ping "/xengnt/ping is '$value', want 'hello'"
        elif ! xenstore-write "/xengnt/run/pong-$role" "hello from $role"; then
            fail ping "cannot write /xengnt/run/pong-$role"
        else
            pass ping
        fi
    fi
fi

if [ "$role" = dom0 ] && selected victim-destroy; then
    victim=$(wait_key /xengnt/domains/victim 60)
    if [ -z "$victim" ] || [ "$victim" = none ]; then
        fail victim-destroy "no victim domid ('$victim')"
    elif ! wait_key /xengnt/run/victim-ready 120 >/dev/null || ! wait_key /xengnt/exit/victim 60 >/dev/null; then
        fail victim-destroy "the victim did not report ready and finish"
    elif ! xl destroy "$victim"; then
        fail victim-destroy "xl destroy $victim failed"
    else
        tries=120
        while xl list | awk -v id="$victim" 'NR > 1 && $2 == id { found = 1 } END { exit !found }'; do
            tries=$((tries - 1)); [ $tries -gt 0 ] || break
            sleep 0.5
        done
        if [ $tries -gt 0 ]; then pass victim-destroy; else fail victim-destroy "domain $victim still listed 60 s after xl destroy"; fi
    fi
fi

echo "$passed passed, $failed failed"
[ "$role" = dom0 ] || xenstore-write "/xengnt/done/$role" "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
