#!/bin/sh
# fill-boot.sh IMAGE: move /boot/firmware (Raspberry Pi firmware, kernel, initrd, config.txt,
# cmdline.txt) from the image's root partition (2) into its FAT boot partition (1) with mtools,
# so the build host needs no vfat driver; /boot/firmware stays as the (empty) mount point.
set -eu
IMAGE=$1
part_offset() {
    sfdisk --json "$IMAGE" | python3 -c 'import json,sys; t=json.load(sys.stdin)["partitiontable"]; p=t["partitions"][int(sys.argv[1])]; print(p["start"] * t.get("sectorsize", 512), p["size"] * t.get("sectorsize", 512))' "$1"
}
set -- $(part_offset 0); BOOT="$IMAGE@@$1"
set -- $(part_offset 1)
MNT=$(mktemp -d)
LOOP=$(losetup -f --show --offset "$1" --sizelimit "$2" "$IMAGE")
trap 'umount "$MNT" 2>/dev/null || true; losetup -d "$LOOP"; rmdir "$MNT"' EXIT
mount "$LOOP" "$MNT"
src="$MNT/boot/firmware"
if [ -d "$src" ] && [ -n "$(ls -A "$src")" ]; then
    mcopy -s -o -i "$BOOT" "$src"/* ::/
    rm -rf "${src:?}"/*
fi
printf 'Put clinic-edge.toml here (see the README: The appliance).\r\n' > "$MNT/tmp/clinic-edge-boot-readme.txt"
mcopy -o -i "$BOOT" "$MNT/tmp/clinic-edge-boot-readme.txt" ::/README.txt
rm -f "$MNT/tmp/clinic-edge-boot-readme.txt"
