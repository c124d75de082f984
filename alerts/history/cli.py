"""`dcops incidents export ID`: a postmortem in Markdown; `dcops incidents stats`: MTTA / MTTR
by severity, cause, area or week, and recurring devices and causes.

The database is `--db URL`, else the site config's `settings.database.url` (`-c/--site FILE`),
else `$DCOPS_DATABASE_URL`, else `sqlite:///var/dcops.sqlite`; when that SQLite file does not
exist, the one `dcops demo` keeps (`var/demo/alerts.sqlite`, or under `--demo-dir`) is read
instead, saying so. A database that is not there is never created: the command says where it
looked. Telemetry for the postmortem comes from the site's store (`--site`) or a DuckDB file
(`--store PATH`).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from dcops.alerts.history.analysis import GROUPINGS, incident_facts, recurring, response_times


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="incidents_command", metavar="ACTION")
    e = sub.add_parser("export", help="postmortem of one incident, in Markdown")
    e.add_argument("incident_id", metavar="ID")
    e.add_argument("-o", "--output", help="write to this file instead of stdout")
    e.add_argument("--before", type=float, default=1800, help="seconds of telemetry before the opening (1800)")
    e.add_argument("--after", type=float, default=1800, help="seconds of telemetry after the opening (1800)")
    s = sub.add_parser("stats", help="MTTA / MTTR and recurring offenders")
    s.add_argument("--by", choices=list(GROUPINGS), default="severity")
    s.add_argument("--min-count", type=int, default=2, help="recurring: at least this many incidents (2)")
    s.add_argument("--format", choices=("text", "json"), default="text")
    for q in (e, s):
        q.add_argument("--db", help="database URL (sqlite:///... or postgresql+psycopg://...)")
        q.add_argument("--site", "-c", "--config", dest="site",
                       help="site config (inventory, store and database settings)")
        q.add_argument("--demo-dir", default="var/demo",
                       help="where `dcops demo` keeps its data, tried when the site's SQLite database is absent"
                            " (default var/demo)")
        q.add_argument("--store", help="DuckDB telemetry file (instead of the site's store)")


def _fmt(s: float | None) -> str:
    return "-" if s is None else f"{s:.0f}s"


def run(args) -> int:
    from dcops.yamlconf import ConfigError

    action = getattr(args, "incidents_command", None)
    if action not in ("export", "stats"):
        print("usage: dcops incidents {export ID|stats} [--db URL] [--site FILE]", file=sys.stderr)
        return 2
    try:
        db, inventory, store = _open(args)
    except ConfigError as exc:
        exc.report(f"{len(exc.problems)} problem(s) in the site config:")
        return 1
    except LookupError as exc:
        print(f"dcops incidents: {exc.args[0]}", file=sys.stderr)
        return 1
    try:
        if action == "export":
            from dcops.alerts.history.postmortem import export_postmortem
            try:
                text = export_postmortem(db, args.incident_id, store=store, inventory=inventory,
                                         before_s=args.before, after_s=args.after)
            except KeyError as exc:
                print(f"dcops incidents export: {exc.args[0]}", file=sys.stderr)
                return 1
            if args.output:
                Path(args.output).write_text(text, encoding="utf-8")
                print(f"wrote {args.output}")
            else:
                sys.stdout.write(text)
            return 0
        facts = incident_facts(db, inventory)
        if args.format == "json":
            print(json.dumps({"by": args.by, "groups": [asdict(r) for r in response_times(facts, args.by)],
                              "recurring": [asdict(r) for r in recurring(facts, args.min_count)]}, indent=2))
            return 0
        print(f"{'group':28s} {'incidents':>9s} {'acked':>6s} {'resolved':>8s} {'MTTA':>8s} {'MTTR':>8s}")
        for r in response_times(facts, args.by):
            print(f"{r.group[:28]:28s} {r.incidents:9d} {r.acknowledged:6d} {r.resolved:8d} {_fmt(r.mtta_s):>8s} "
                  f"{_fmt(r.mttr_s):>8s}")
        rec = recurring(facts, args.min_count)
        if rec:
            print("\nrecurring:")
            for r in rec:
                print(f"  {r.what:6s} {r.key:40s} {r.count} incidents")
        return 0
    finally:
        if store is not None:
            store.close()
        db.dispose()


def _open(args):
    from dcops.alerts.storage.tables import default_url, open_engine

    inventory = store = None
    url = args.db
    if args.site:
        from dcops.site import load_site
        from dcops.topology import build_inventory
        cfg = load_site(args.site)
        inventory = build_inventory(cfg)
        url = url or cfg.settings.database.url
        if not args.store:
            from dcops.store import open_store
            store = open_store(cfg.settings.store, inventory)
    url = find_database(url or os.environ.get("DCOPS_DATABASE_URL") or default_url(),
                        Path(getattr(args, "demo_dir", "var/demo")), explicit=bool(args.db))
    if args.store:
        from dcops.store.duckdb_store import DuckDBStore
        store = DuckDBStore(args.store)
    return open_engine(url, create_tables=False), inventory, store


def find_database(url: str, demo_dir: Path, explicit: bool = False) -> str:
    """The database to read: `url`, or the demo's when `url` is a SQLite file that does not exist and
    was not named with --db. LookupError, naming every place tried, when there is none (an empty
    database is never created by a read)."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return url
    tried = [Path(u.database)]
    if not explicit:
        tried.append(demo_dir / "alerts.sqlite")
    for i, path in enumerate(tried):
        if path.is_file() and path.stat().st_size > 0:
            if i:
                print(f"dcops incidents: {tried[0]} does not exist; reading the demo's database {path}",
                      file=sys.stderr)
            return url if i == 0 else f"sqlite:///{path.resolve()}"
    raise LookupError("no incident database: looked for " + " and ".join(str(p.resolve()) for p in tried)
                      + " (pass --db URL, or -c SITE with settings.database.url; `dcops demo` keeps its own in"
                        " var/demo)")
