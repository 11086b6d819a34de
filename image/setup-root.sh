#!/bin/sh
# Runs inside the image's root (debos `run` with chroot): installs clinic-edge VERSION from the
# staged wheels into /opt/clinic-edge/VERSION, installs and enables the units, locks every account.
set -eu
VERSION="$1"
STAGE=/stage
PREFIX=/opt/clinic-edge      # bind-mounted from /data/opt: updates survive the read-only root

# -- the project, in its versioned virtualenv (offline: only the staged wheels) --
python3 -m venv "$PREFIX/$VERSION"
"$PREFIX/$VERSION/bin/pip" install -q --no-index --no-cache-dir --disable-pip-version-check \
    --find-links "$STAGE/wheels" "clinic-edge==$VERSION"
ln -sfn "$VERSION" "$PREFIX/current"
# the broker's journal plugin, built by image/build for this architecture (docs/mqtt.md)
install -D -m 0755 -t "$PREFIX/$VERSION/lib/clinic-edge" "$STAGE"/plugin/clinic_journal-*.so
mkdir -p "$PREFIX/$VERSION/share/clinic-edge"
cp "$STAGE/README.md" "$PREFIX/$VERSION/share/clinic-edge/README.md"

# -- units, the service user, its directories --
install -m 0644 "$STAGE"/systemd/*.service "$STAGE"/systemd/*.timer "$STAGE"/systemd/*.path /usr/lib/systemd/system/
install -m 0644 "$STAGE/systemd/sysusers-clinic-edge.conf" /usr/lib/sysusers.d/clinic-edge.conf
install -m 0644 "$STAGE/systemd/tmpfiles-clinic-edge.conf" /usr/lib/tmpfiles.d/clinic-edge.conf
systemd-sysusers

# -- the data partition (LABEL=clinic-data at /data, root-owned) holds everything that changes:
#    /data/clinic-edge -> /var/lib/clinic-edge (the service user's), /data/opt -> /opt/clinic-edge
#    (one virtualenv per version, root's), /data/system (ssh host key, Bluetooth pairings, clock) --
DATA=/data/clinic-edge
mkdir -p /data/opt /data/system/ssh /data/system/bluetooth "$DATA/backups" "$DATA/network"
chmod 0755 /data /data/opt
chmod 0700 /data/system /data/system/ssh /data/system/bluetooth
cp /etc/clinic-edge/config.toml.appliance "$DATA/config.toml"
chown -R clinic-edge:clinic-edge "$DATA"
chmod 0700 "$DATA"
mv "$PREFIX"/* /data/opt/                                  # the venv keeps its /opt/clinic-edge paths
rm -rf /var/lib/clinic-edge && mkdir -p /var/lib/clinic-edge   # mount points for the binds
ln -sfn /var/lib/clinic-edge/config.toml /etc/clinic-edge/config.toml
rm -rf /var/lib/bluetooth && ln -sfn /data/system/bluetooth /var/lib/bluetooth
ln -sfn /var/lib/clinic-edge/network/wpa_supplicant-wlan0.conf /etc/wpa_supplicant/wpa_supplicant-wlan0.conf
mkdir -p /boot/firmware /media/clinic-edge-backup

# -- keys county IT supplies at build time (optional) --
if [ -s "$STAGE/release.pub" ]; then install -m 0644 "$STAGE/release.pub" /etc/clinic-edge/release.pub; fi
# the county backup key (public half; nightly backups are sealed to it)
if [ -s "$STAGE/backup.pub" ]; then install -m 0644 "$STAGE/backup.pub" /etc/clinic-edge/backup.pub; fi
useradd --create-home --shell /bin/bash --groups sudo county
mkdir -p /etc/ssh/authorized_keys
if [ -s "$STAGE/county.pub" ]; then install -m 0644 "$STAGE/county.pub" /etc/ssh/authorized_keys/county; fi
rm -f /etc/ssh/ssh_host_*   # never the same host key in every box: made on first boot

# -- no password anywhere: every account locked (key-only SSH for county) --
for u in $(cut -d: -f1 /etc/passwd); do usermod --lock "$u" 2>/dev/null || true; done
sed -i -E 's/^([^:]+):[^:!*]*:/\1:!*:/' /etc/shadow

# -- enable what runs --
systemctl enable clinic-edge-broker.service clinic-edge-ingest.service clinic-edge-web.service \
    clinic-edge-sync.service clinic-edge-direct.service clinic-edge-firstboot.service clinic-edge-backup.timer clinic-edge-update.path \
    nftables.service systemd-networkd.service systemd-timesyncd.service ssh.service \
    fake-hwclock.service bluetooth.service   # wpa_supplicant@wlan0: started by udev when wlan0 exists
systemctl mask mosquitto.service   # clinic-edge-broker runs mosquitto with the generated config

echo clinic-edge > /etc/hostname
: > /etc/machine-id               # each box makes its own on first boot
rm -f /var/lib/dbus/machine-id

# -- bootable image only: the overlay script into the initramfs, cmdline.txt for the Pi --
if ls /boot/vmlinuz-* >/dev/null 2>&1; then
    update-initramfs -u -k all
    if [ ! -e /etc/kernel/postinst.d/z50-raspi-firmware ]; then
        # a PC (the test suite's virtual machine) has no raspi-firmware: put the same three things on
        # the boot partition that the Pi's firmware reads, with the same command line
        kver=$(ls /boot/vmlinuz-* | sed 's|^/boot/vmlinuz-||' | sort -V | tail -n 1)
        cp "/boot/vmlinuz-$kver" /boot/firmware/vmlinuz
        cp "/boot/initrd.img-$kver" /boot/firmware/initrd.img
        echo "console=ttyS0 root=LABEL=clinic-root rw fsck.repair=yes rootwait $(cat /etc/default/raspi-extra-cmdline)" \
            > /boot/firmware/cmdline.txt
    fi
fi
rm -rf "$STAGE"
