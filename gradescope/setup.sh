#!/usr/bin/env bash
# Gradescope runs this once, as root, when the autograder image is built.
set -euo pipefail
apt-get update
apt-get install -y python3 python3-venv python3-pip bubblewrap libseccomp2
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install --quiet -r /autograder/source/requirements.txt
# The sandboxed worker runs as an unprivileged uid: it needs a runtime it can read.
python3 -m venv /opt/autodiff-grader/venv
/opt/autodiff-grader/venv/bin/pip install --quiet "$(grep '^numpy==' /autograder/source/requirements.txt)"
chmod -R a+rX /opt/autodiff-grader/venv
