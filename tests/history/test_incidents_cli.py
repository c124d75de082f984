"""`dcops incidents stats|export` find the database `dcops demo` wrote, or say where they looked;
they never create an empty one. `--format json` for stats."""

from __future__ import annotations

import json

from sqlalchemy import create_engine, text

from dcops.cli import main
from dcops.dbschema import upgrade


def _demo_database(path):
    url = f"sqlite:///{path}"
    upgrade(url)
    eng = create_engine(url)
    with eng.begin() as c:
        for i, (sev, ack) in enumerate((("critical", 60), ("critical", 120), ("major", None))):
            c.execute(text("INSERT INTO incidents (id, title, state, severity, opened_ns, updated_ns, opened_by,"
                           " acknowledged_ns, labels) VALUES (:id, 't', 'open', :sev, :o, :o, 'alerter', :a, '{}')"),
                      {"id": f"inc{i}", "sev": sev, "o": 10**12 * (i + 1),
                       "a": None if ack is None else 10**12 * (i + 1) + ack * 10**9})
    eng.dispose()


def test_no_database_says_where_it_looked_and_creates_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DCOPS_DATABASE_URL", raising=False)
    assert main(["incidents", "stats"]) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "var" / "dcops.sqlite") in err and str(tmp_path / "var" / "demo" / "alerts.sqlite") in err
    assert not (tmp_path / "var").exists()
    assert main(["incidents", "export", "inc0", "--db", f"sqlite:///{tmp_path / 'x.sqlite'}"]) == 1
    assert "x.sqlite" in capsys.readouterr().err and not (tmp_path / "x.sqlite").exists()


def test_after_the_demo_stats_read_the_demos_database(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DCOPS_DATABASE_URL", raising=False)
    (tmp_path / "var" / "demo").mkdir(parents=True)
    _demo_database(tmp_path / "var" / "demo" / "alerts.sqlite")
    assert main(["incidents", "stats", "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert "reading the demo's database" in captured.err
    out = json.loads(captured.out)
    groups = {g["group"]: g for g in out["groups"]}
    assert groups["critical"]["incidents"] == 2 and groups["critical"]["mtta_s"] == 90.0
    assert groups["major"]["acknowledged"] == 0 and groups["major"]["mtta_s"] is None
    # the site's database, when it exists, wins over the demo's (and -c works after the action)
    from tests.conftest import SMALL_SITE

    other = tmp_path / "site-db.sqlite"
    _demo_database(other)
    site = tmp_path / "site.yaml"
    assert "\nsettings:" not in SMALL_SITE.read_text()
    site.write_text(SMALL_SITE.read_text() + f"\nsettings:\n  database:\n    url: sqlite:///{other}\n")
    assert main(["incidents", "stats", "-c", str(site), "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert "demo" not in captured.err and json.loads(captured.out)["groups"]
