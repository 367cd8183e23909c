#!/usr/bin/env bash
# Writes the offline busybox rootfs tarball every example and test uses: Debian's busybox-static
# (one static binary and its applet links) plus minimal /etc files, as ../shared/peers/setup.sh
# builds Docker's `busybox` image. Import it with:
#   berth image import busybox.tar busybox:latest --change 'CMD ["sh"]'
# Usage: scripts/busybox-image.sh OUTPUT.tar
set -euo pipefail
out=${1:?usage: scripts/busybox-image.sh OUTPUT.tar}
bb=$(command -v busybox || true)
if [ -z "$bb" ]; then
  echo "busybox is missing: apt-get install busybox-static" >&2
  exit 1
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,etc,tmp,proc,sys,dev,root,var/www}
cp "$bb" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
echo 'nobody:x:65534:65534:nobody:/:/bin/false' >> "$root/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' > "$root/etc/group"
chmod 1777 "$root/tmp"
tar --numeric-owner --owner=0 --group=0 -C "$root" -cf "$out" .
