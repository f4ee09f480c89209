#!/usr/bin/env bash
# Build the lab base image for one Debian suite with debootstrap and import it
# into podman as localhost/difyops-lab:<suite>.
#
# The image is a plain Debian install: systemd as PID 1, sshd (the lab reaches
# hosts over SSH like production does), python3 for Ansible. Nothing of the
# product is preinstalled: every package a role needs, the role installs.
#
# The image carries a label with the hash of this recipe; a changed recipe
# rebuilds the image, an unchanged one is reused.
#
# Usage: lab/build-image.sh [trixie|bookworm] [--force]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
suite=${1:-trixie}
force=${2:-}
case "$suite" in trixie|bookworm) ;; *) echo "unknown suite: $suite (trixie or bookworm)" >&2; exit 2;; esac
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
image="localhost/difyops-lab:$suite"

packages=systemd,systemd-sysv,python3,python3-apt,dbus,iproute2,sudo,ca-certificates,gnupg,openssh-server,procps,iputils-ping,netbase,curl,locales

# The mirror the machine's own apt already uses (deb822 or one-line sources).
mirror=${LAB_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
  [ -n "$mirror" ] || mirror=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
fi

recipe_hash=$( { cat "$0"; echo "$suite $packages $mirror"; } | sha256sum | cut -c1-16)
if [ "$force" != "--force" ] && podman image exists "$image"; then
  have=$(podman image inspect --format '{{ index .Labels "org.difyops.recipe" }}' "$image" 2>/dev/null || true)
  if [ "$have" = "$recipe_hash" ]; then
    echo "image $image is current (recipe $recipe_hash)"
    exit 0
  fi
  echo "image $image was built from another recipe ($have), rebuilding"
fi

work=$(mktemp -d /var/tmp/difyops-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
echo "debootstrap $suite from $mirror"
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

security=${mirror%/debian}/debian-security
cat >"$rootfs/etc/apt/sources.list" <<SRC
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security $suite-security main
SRC
# A container has no real console or hardware clock; these units only fail.
for unit in getty@tty1.service serial-getty@.service console-getty.service systemd-remount-fs.service \
            systemd-update-utmp.service systemd-journald-audit.socket; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
# Lab hosts are reached as root with a lab-only key mounted at run time.
mkdir -p "$rootfs/root/.ssh" && chmod 0700 "$rootfs/root/.ssh"
cat >"$rootfs/etc/ssh/sshd_config.d/10-lab.conf" <<SSHD
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
SSHD
# Host keys are made at first boot, so no two lab hosts share them.
rm -f "$rootfs"/etc/ssh/ssh_host_*
mkdir -p "$rootfs/etc/systemd/system/ssh.service.d"
cat >"$rootfs/etc/systemd/system/ssh.service.d/10-hostkeys.conf" <<UNIT
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
UNIT
echo 'en_US.UTF-8 UTF-8' >"$rootfs/etc/locale.gen"
chroot "$rootfs" locale-gen >/dev/null 2>&1 || true
# Keep the package lists, as an installed Debian has them: check mode on a
# fresh host can then tell what it would install.
chroot "$rootfs" apt-get update -qq >/dev/null 2>&1 || echo "warning: apt-get update in the image failed" >&2
chroot "$rootfs" apt-get clean
: >"$rootfs/etc/machine-id"

tar -C "$rootfs" -c . | podman import \
  --change 'CMD ["/sbin/init"]' \
  --change 'STOPSIGNAL SIGRTMIN+3' \
  --change "LABEL org.difyops.recipe=$recipe_hash" \
  --change 'LABEL org.difyops.lab=base' \
  - "$image" >/dev/null
echo "built $image (recipe $recipe_hash)"
