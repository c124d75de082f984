"""One convention for the site config: `-c FILE` before or after the subcommand and its action."""

from __future__ import annotations

import io
import json

import pytest

from dcops.cli import main, take_config
from tests.conftest import SMALL_SITE


def test_take_config_forms():
    assert take_config(["console-user", "add", "bob", "-c", "s.yaml", "--role", "admin"]) == (
        ["console-user", "add", "bob", "--role", "admin"], "s.yaml")
    assert take_config(["--config=s.yaml", "check"]) == (["check"], "s.yaml")
    assert take_config(["-cs.yaml", "check"]) == (["check"], "s.yaml")
    assert take_config(["snmp", "poll", "--", "-c", "x"]) == (["snmp", "poll", "--", "-c", "x"], None)


@pytest.fixture
def site(tmp_path):
    p = tmp_path / "site.yaml"
    p.write_text(SMALL_SITE.read_text() + f"\nsettings:\n  database:\n    url: sqlite:///{tmp_path / 'db.sqlite'}\n")
    return p


def test_console_user_add_with_config_after_the_action(site, monkeypatch, capsys):
    """The form the console prints: `dcops console-user add NAME --role admin -c SITE`."""
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["console-user", "add", "alice", "--role", "admin", "--password-stdin", "-c", str(site)]) == 0
    assert main(["-c", str(site), "console-user", "list", "--format", "json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(out) == [{"name": "alice", "role": "admin", "disabled": False}]
    assert main(["console-user", "list", "--config", str(site)]) == 0
    assert "alice\tadmin\tactive" in capsys.readouterr().out
    # the database the command made is Alembic's, at head
    from dcops.dbschema import state

    assert state(f"sqlite:///{site.parent / 'db.sqlite'}").up_to_date


def test_required_config_is_reported_not_a_traceback(capsys):
    assert main(["sim"]) == 2
    assert "-c/--config" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["rules", "check", "-c", "x.yaml"])
    assert exc.value.code == 2 and "-c/--config is not an option" in capsys.readouterr().err
