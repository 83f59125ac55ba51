#!/usr/bin/env bash
# Boot a kernel and an initramfs in qemu (serial console on stdout) and
# wait for it to power off: `scripts/boot.sh KERNEL INITRD [SECONDS]`.
# KVM is used when /dev/kvm opens and a guest actually runs under it (some
# nested hosts accept KVM and then never run the guest): a KVM boot that
# prints nothing within 20 s is retried with TCG (software emulation).
# The serial output is printed; the exit status is qemu's (0 after a clean
# power-off), 124 on timeout.
set -uo pipefail
kernel=$1 initrd=$2 limit=${3:-180}
qemu=(qemu-system-x86_64 -m 256 -nographic -no-reboot -monitor none
  -kernel "$kernel" -initrd "$initrd" -append "console=ttyS0 panic=-1 quiet")
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
  timeout 20 "${qemu[@]}" -enable-kvm > "$log" 2>&1
  status=$?
  if [ $status = 0 ] && grep -q "Power down" "$log"; then
    tr -d '\r' < "$log"
    exit 0
  fi
  echo "boot.sh: KVM did not run the guest (status $status): TCG instead" >&2
fi
timeout "$limit" "${qemu[@]}" > "$log" 2>&1
status=$?
tr -d '\r' < "$log"
exit $status
