"""Open feedback pages in headless Chromium: a screenshot of each, and a check that the browser
logged nothing to the console (no error, no warning, no failed load).

    python -m tools.screenshot_pages PAGE.html [PAGE.html ...] --out DIR

Needs Debian's chromium (apt-get install chromium). Exit status 1 if a page logged to the console.
"""
import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# The flags a sandboxed, offline, headless run needs (as root, with no network and no D-Bus).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]
CONSOLE = re.compile(r":CONSOLE[:(]\d+\)?\] (.*)")


def screenshot(page, png, width=1100, height=1800):
    """Write a screenshot of `page`; return the console messages the page produced."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise FileNotFoundError("chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        completed = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                                    f"--screenshot={png}", Path(page).resolve().as_uri()],
                                   capture_output=True, text=True, timeout=120, check=False)
    if not Path(png).is_file():
        raise RuntimeError(f"chromium made no screenshot of {page}: {completed.stderr[-500:]}")
    return [match.group(1) for match in map(CONSOLE.search, completed.stderr.splitlines()) if match]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNG files")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    clean = True
    for page in args.pages:
        png = args.out / f"{page.stem}.png"
        messages = screenshot(page, png)
        clean &= not messages
        print(f"{page} → {png}: " + ("no console messages" if not messages else "; ".join(messages)))
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
