#!/usr/bin/env bash
# Installs the system packages the WebGPU backend needs on a Debian 12 (bookworm) machine
# without a GPU, so that CI gets a real WebGPU adapter (see docs/webgpu-without-a-gpu.md), and the
# browser the demo's test uses:
#
#   - Vulkan:  Mesa's lavapipe (mesa-vulkan-drivers) and the Vulkan loader (libvulkan1) from
#              bookworm-backports. Bookworm's own Mesa 22.3 lavapipe is rejected by Dawn
#              (requestAdapter() returns null); Mesa 25 from backports works.
#   - OpenGL:  EGL + llvmpipe for Dawn's OpenGL backend (EGL_PLATFORM=surfaceless,
#              featureLevel 'compatibility'). dawn.node dlopen()s the unversioned "libEGL.so",
#              which only libegl-dev provides (libegl1 ships libEGL.so.1 alone); the Mesa EGL
#              vendor library (libegl-mesa0) and the llvmpipe DRI driver (libgl1-mesa-dri) do
#              the rendering. These come from the same suite as the Vulkan driver so that one
#              Mesa version is installed.
#   - Browser: Debian's chromium, which the web demo's test drives headless (test/demo.test.ts)
#              through puppeteer-core, nothing downloaded by npm; and a font for its page text
#              (fonts-liberation, only recommended by chromium, so not installed with it here).
#   - Data:    Fashion-MNIST (dataset-fashion-mnist, 30 MB), which the learnable-variance study
#              reads from /usr/share/datasets/fashion-mnist; its loader's test reads the real files.
#
# Idempotent: exits within a second when everything is already installed.
# Must run as root (or with sudo available). Reads the Debian mirror URI from the existing
# deb822 sources file instead of hard-coding a host.
set -euo pipefail

PACKAGES=(mesa-vulkan-drivers libvulkan1 libegl1 libegl-dev libegl-mesa0 libgl1-mesa-dri dataset-fashion-mnist chromium fonts-liberation)
MIN_MESA_MAJOR=25
SOURCES_FILE=/etc/apt/sources.list.d/debian.sources
BACKPORTS_FILE=/etc/apt/sources.list.d/backports.sources

log() { printf '[install-system-deps] %s\n' "$*" >&2; }

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else log "must run as root"; exit 1; fi
fi

codename=""
if [[ -r /etc/os-release ]]; then
  # shellcheck disable=SC1091
  codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
fi
suite_args=()
if [[ "$codename" == "bookworm" ]]; then
  suite_args=(-t bookworm-backports)
fi

# --- fast path: everything installed, Mesa new enough -------------------------------------
installed_ok() {
  local p st
  for p in "${PACKAGES[@]}"; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [[ "$st" == "installed" ]] || return 1
  done
  local v
  v=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
  v=${v#*:}                      # drop an epoch
  [[ "${v%%.*}" =~ ^[0-9]+$ ]] || return 1
  (( ${v%%.*} >= MIN_MESA_MAJOR )) || return 1
  # lavapipe's ICD manifest: lvp_icd.json (Mesa 25) or lvp_icd.<arch>.json (older packaging).
  compgen -G '/usr/share/vulkan/icd.d/lvp_icd*.json' >/dev/null || return 1
}
if installed_ok; then
  log "already installed: ${PACKAGES[*]} (mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers))"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  log "apt-get not found: this script supports Debian only"; exit 1
fi

# --- bookworm-backports source ------------------------------------------------------------
if [[ "$codename" == "bookworm" ]]; then
  if [[ ! -f "$BACKPORTS_FILE" ]] && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    [[ -r "$SOURCES_FILE" ]] || { log "cannot read $SOURCES_FILE to find the Debian mirror"; exit 1; }
    # First deb822 stanza whose Suites field lists plain "bookworm": print its first URI and
    # its Signed-By value (tab-separated). Stanzas are separated by blank lines.
    read -r mirror signed_by < <(awk '
      function flush() { if (is_main && uri != "") { print uri "\t" sb; found = 1; exit } uri = ""; sb = ""; is_main = 0 }
      /^[[:space:]]*$/ { flush(); next }
      /^[[:space:]]*#/ { next }
      tolower($1) == "uris:"      { uri = $2 }
      tolower($1) == "signed-by:" { sb = $2 }
      tolower($1) == "suites:"    { for (i = 2; i <= NF; i++) if ($i == "bookworm") is_main = 1 }
      END { if (!found) flush() }
    ' "$SOURCES_FILE" | tr '\t' ' ') || true
    [[ -n "${mirror:-}" ]] || { log "no stanza with Suites: bookworm in $SOURCES_FILE"; exit 1; }
    signed_by=${signed_by:-/usr/share/keyrings/debian-archive-keyring.gpg}
    log "adding bookworm-backports from $mirror"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: %s\n' \
      "$mirror" "$signed_by" | "${SUDO[@]}" tee "$BACKPORTS_FILE" >/dev/null
  fi
fi

# --- install ------------------------------------------------------------------------------
# Wait for a concurrent apt/dpkg (unattended-upgrades, another job) instead of failing.
APT_OPTS=(-o DPkg::Lock::Timeout=900)
log "apt-get update"
"${SUDO[@]}" apt-get "${APT_OPTS[@]}" update -qq
log "installing ${PACKAGES[*]} ${suite_args[*]}"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends \
  "${suite_args[@]}" "${PACKAGES[@]}" >/dev/null

installed_ok || { log "install finished but mesa-vulkan-drivers >= $MIN_MESA_MAJOR / lavapipe ICD not found"; exit 1; }
log "done: mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers), libegl-mesa0 $(dpkg-query -W -f='${Version}' libegl-mesa0)"
