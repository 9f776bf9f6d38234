# Sourced by the device-call scripts. The device image has no bubblewrap: where the call
# carries .bwrap (Debian 12's packages of bubblewrap and its libraries:
# `mkdir .bwrap && cd .bwrap && apt-get download bubblewrap libcap2 libselinux1 libpcre2-8-0`),
# unpack it and put a bwrap on PATH, so that candidates run sandboxed there too.
if [ -d .bwrap ] && ! command -v bwrap >/dev/null; then
    bwrap_root=/tmp/pike-bwrap; mkdir -p "$bwrap_root/wrapped"
    for deb in .bwrap/*.deb; do dpkg-deb -x "$deb" "$bwrap_root"; done
    printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s "$@"\n' \
        "$bwrap_root/lib/x86_64-linux-gnu:$bwrap_root/usr/lib/x86_64-linux-gnu" "$bwrap_root/usr/bin/bwrap" \
        > "$bwrap_root/wrapped/bwrap"
    chmod +x "$bwrap_root/wrapped/bwrap"; export PATH="$bwrap_root/wrapped:$PATH"
fi
