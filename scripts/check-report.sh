#!/usr/bin/env bash
# Looks at a study report as a person would: renders REPORT/index.html in headless Chromium
# (Debian's `chromium`, installed when missing), offline, and checks that the screenshot shows the
# plots — coloured marks in every plot's place, not a blank or broken page.
#   scripts/check-report.sh [REPORT_DIR] [SCREENSHOT.png]
# (default: runs/studies/hapt-kd-vs-scratch/report, written to REPORT_DIR/screenshot.png)
set -euo pipefail
cd "$(dirname "$0")/.."
report=$(realpath "${1:-runs/studies/hapt-kd-vs-scratch/report}")
shot=${2:-$report/screenshot.png}
[ -f "$report/index.html" ] || { echo "error: $report/index.html: no report (run kdstore study … --report)" >&2; exit 1; }
if ! command -v chromium > /dev/null; then
    apt-get install -y --no-install-recommends chromium > /dev/null
fi
python=.venv/bin/python
"$python" -c "import PIL" 2> /dev/null || "$python" -m pip install -q pillow==12.0.0
# One tall window holds the whole page: the plots' heights plus room for the tables.
plots_height=$(grep -ho '<svg width="[0-9]*" height="[0-9]*"' "$report"/plots/*.svg | grep -o 'height="[0-9]*"' | tr -dc '0-9\n' | paste -sd+ | bc)
height=$((plots_height + 80 * $(ls "$report"/plots/*.svg | wc -l) + 2500))
# No network: a proxy that does not exist catches any request the page would make.
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --proxy-server=127.0.0.1:9 \
    --window-size=1100,"$height" --screenshot="$shot" "file://$report/index.html" > /dev/null 2>&1
"$python" - "$shot" "$report" <<'PY'
import pathlib, sys
import numpy as np
from PIL import Image
shot, report = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
rows_coloured = ((pixels.max(axis=2) - pixels.min(axis=2)) > 60).sum(axis=1)
plots = sorted(p.name for p in (report / "plots").glob("*.svg"))
# Plots are drawn one under the other: count the bands of rows with coloured marks, separated by
# at least 40 rows without.
bands, gap = 0, 1000
for count in rows_coloured:
    if count > 3:
        bands += gap >= 40
        gap = 0
    else:
        gap += 1
share = (rows_coloured > 0).mean()
print(f"{shot}: {pixels.shape[1]}×{pixels.shape[0]} px, {bands} coloured bands for {len(plots)} plots, {share:.0%} of rows coloured")
if bands < len(plots):
    sys.exit(f"error: {shot}: {bands} coloured bands, fewer than the {len(plots)} plots ({', '.join(plots)})")
PY
