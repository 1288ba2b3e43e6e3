#!/usr/bin/env bash
# The run-report tests open the report in headless Debian chromium: install it when it is
# missing and apt is there (as root); anything else is left as it was. Used by `make test`
# and `.ci/run`.
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium is missing (needed by the report tests); install Debian's chromium package" >&2
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null \
        || echo "could not install chromium; the report tests will say so" >&2
else
    echo "chromium is missing and this is not root; install it: sudo apt-get install -y chromium" >&2
fi
exit 0
