"""units.yaml loads through dcops.yamlconf.load_yaml: a bad entry is a ConfigError with file, line
and field, not a pydantic traceback."""

from __future__ import annotations

import shutil

import pytest

from dcops.collectors.snmp_profiles import DATA_DIR, load_profiles
from dcops.yamlconf import ConfigError


def test_a_bad_unit_names_file_line_and_field(tmp_path):
    data = tmp_path / "snmp"
    shutil.copytree(DATA_DIR, data)
    units = data / "units.yaml"
    lines = units.read_text().splitlines()
    at = next(i for i, s in enumerate(lines) if "factor:" in s)
    lines[at] = lines[at].split("factor:")[0] + "factor: lots" + ("}" if lines[at].rstrip().endswith("}") else "")
    units.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as exc:
        load_profiles(data)
    problem = exc.value.problems[0]
    assert problem.file == str(units) and problem.line == at + 1 and problem.field.endswith(".factor")
    assert len(load_profiles(DATA_DIR)) > 5
