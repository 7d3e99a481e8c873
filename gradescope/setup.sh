#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image. Choose the base image
# "Ubuntu 22.04" or "Ubuntu 24.04": the pinned requirements need Python ≥ 3.11, which this script
# takes from Ubuntu's python3.11 packages on 22.04 (whose python3 is 3.10) and from the image's
# own python3 (3.12) on 24.04. Then: bubblewrap, the grader's venv, the sandbox's runtime (numpy
# and IPython, readable by the unprivileged uids student code runs as) and the autograder's own files
# closed to every other user (the `uid` isolation level relies on it).
#
# SETUP_DRY_RUN=1 prints the commands instead of running them; SETUP_OS_RELEASE reads another
# os-release file and AUTOGRADER_ROOT another /autograder (both for tests).
set -euo pipefail
root="${AUTOGRADER_ROOT:-/autograder}"
sandbox=/opt/autodiff-grader/venv
run() { echo "+ $*"; if [ -z "${SETUP_DRY_RUN:-}" ]; then "$@"; fi; }
field() { sed -n "s/^$1=\"\{0,1\}\([^\"]*\)\"\{0,1\}\$/\1/p" "${SETUP_OS_RELEASE:-/etc/os-release}"; }

image="$(field ID) $(field VERSION_ID)"
case "$image" in
  "ubuntu 22.04") python=python3.11; packages="python3.11 python3.11-venv"; source_="Ubuntu's python3.11 packages" ;;
  "ubuntu 24.04") python=python3; packages="python3 python3-venv"; source_="the image's python3 (3.12)" ;;
  *) python=python3; packages="python3 python3-venv"; source_="the image's python3 (an image this script does not know)" ;;
esac
echo "setup.sh: image '$image': Python from $source_"

# The sandbox's runtime: numpy and IPython at the versions the autograder's requirements.txt pins,
# read before anything is installed, so that a folder without it stops here and says why.
requirements="$root/source/requirements.txt"
sandbox_packages=$(grep -oE '^(numpy|ipython)==[^ ]+' "$requirements" 2>/dev/null | tr '\n' ' ') || true
if [ "$(echo $sandbox_packages | wc -w)" -ne 2 ]; then
  echo "setup.sh: $requirements is missing or does not pin numpy and ipython: the autograder zip must be" \
       "unpacked into $root/source first (Gradescope does; AUTOGRADER_ROOT stands for /autograder)" >&2
  exit 1
fi

run apt-get update
run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $packages bubblewrap libseccomp2
if [ -z "${SETUP_DRY_RUN:-}" ] && ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup.sh: $("$python" --version 2>&1) is too old: the pinned requirements need Python 3.11 or newer;" \
       "choose Gradescope's Ubuntu 22.04 or 24.04 base image" >&2
  exit 1
fi
run "$python" -m venv "$root/venv"
run "$root/venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
run "$root/venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
run "$python" -m venv "$sandbox"
run "$sandbox/bin/python" -m pip install --quiet --disable-pip-version-check $sandbox_packages
run chmod -R a+rX "$sandbox"
run chmod -R go-rwx "$root/source"
if [ -z "${SETUP_DRY_RUN:-}" ]; then
  echo "setup.sh: done: $("$root/venv/bin/python" --version) in $root/venv (grader), $sandbox (student code's runtime)," \
       "bubblewrap $(bwrap --version 2>/dev/null | cut -d' ' -f2); $root/source is readable by root only"
fi
