#!/usr/bin/env bash
# A new R user's journey with the built tarball, nothing taken from this
# checkout at run time:
#   R CMD build -> R CMD INSTALL into a fresh library
#   -> install_fastlstm() fails cleanly where pip cannot get Keras
#   -> R bound to that environment before fastlstm is in it: one error that
#      names the Python and the call that installs fastlstm there
#   -> that call, install_fastlstm(envname = <path>) -> the seed example in a
#      fresh R process with no RETICULATE_PYTHON, run from an unrelated
#      directory.
# pip runs with PIP_NO_INDEX=1 (and fastlstm's native kernel must build:
# FASTLSTM_REQUIRE_NATIVE=1): the new environment sees the development
# environment's packages through a .pth file, so nothing is downloaded (and
# anything missing fails loudly instead).
# Usage: journey.sh <exported R package source> <python of the dev venv>
set -euo pipefail
export_dir=$(cd "$1" && pwd)
dev_python=$2
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A user's session: none of the development settings.
user_env=(env -u RETICULATE_PYTHON -u PYTHONPATH -u VIRTUAL_ENV -u KERAS_BACKEND
  R_LIBS="$tmp/lib" R_USER_CONFIG_DIR="$tmp/config" R_USER_DATA_DIR="$tmp/data"
  WORKON_HOME="$tmp/virtualenvs" RETICULATE_VIRTUALENV_ROOT="$tmp/virtualenvs"
  PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 FASTLSTM_REQUIRE_NATIVE=1)

echo "-- R CMD build"
(cd "$tmp" && R CMD build --no-build-vignettes --no-manual "$export_dir" >build.log 2>&1) ||
  { cat "$tmp/build.log"; exit 1; }
tarball=$(ls "$tmp"/fastlstm_*.tar.gz)
tar -tzf "$tarball" >"$tmp/contents.txt"
grep -qx 'fastlstm/inst/fastlstm-python/python/fastlstm/layer.py' "$tmp/contents.txt" ||
  { echo "the tarball does not carry the Python package"; exit 1; }

echo "-- R CMD INSTALL into a fresh library"
mkdir -p "$tmp/lib"
R CMD INSTALL -l "$tmp/lib" "$tarball" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log"; exit 1; }

echo "-- a failed install_fastlstm() leaves no environment behind"
(cd "$tmp" && "${user_env[@]}" Rscript "$here/failed-install.R" "$tmp/fails")

echo "-- install_fastlstm(envname = <path>)"
base_python=$("$dev_python" -c 'import sys; print(sys._base_executable)')
dev_site=$("$dev_python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# --without-pip: pip and setuptools come from the development environment
# too (the bundled setuptools would be older than fastlstm's build needs).
"$base_python" -m venv --without-pip "$tmp/env"
env_site=$("$tmp/env/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$dev_site" >"$env_site/_fastlstm_dev_site.pth"

echo "-- a Python without fastlstm: the error names it and the call that fixes it"
(cd "$tmp" && "${user_env[@]}" RETICULATE_PYTHON="$tmp/env/bin/python" \
  Rscript "$here/no-fastlstm.R" "$tmp/env")
(cd "$tmp" && "${user_env[@]}" Rscript -e \
  "fastlstm::install_fastlstm(envname = '$tmp/env')" >"$tmp/pip.log" 2>&1) ||
  { tail -n 40 "$tmp/pip.log"; exit 1; }

echo "-- the seed example in a fresh R process"
(cd "$tmp" && "${user_env[@]}" Rscript "$here/seed.R" "$tmp/env")
echo "the standalone install works"
