"""`dcops db upgrade|current|stamp`: the database schema, through Alembic.

    dcops db upgrade -c site.yaml          # to the newest revision (settings.database.url)
    dcops db current -c site.yaml          # the revision the database is at, and the newest
    dcops db stamp REVISION --db URL       # record a revision without migrating (adopting a database)

The database is `--db URL`, else the site's `settings.database.url`, else `$DCOPS_DATABASE_URL`,
else `sqlite:///var/dcops.sqlite`. `current` exits 0 when the database is at the newest revision,
1 when it is behind (a script can gate a deployment on it), 2 when it cannot be read.
"""

from __future__ import annotations

import json
import os
import sys


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = sub.add_parser("upgrade", help="upgrade the schema to the newest revision (or --revision)")
    up.add_argument("--revision", default="head", help="target revision (default: head)")
    cur = sub.add_parser("current", help="show the database's revision and the newest one")
    cur.add_argument("--format", choices=("text", "json"), default="text")
    st = sub.add_parser("stamp", help="record a revision without running migrations")
    st.add_argument("revision")
    for q in (up, cur, st):
        q.add_argument("-c", "--config", help="site YAML (settings.database.url)")
        q.add_argument("--db", help="database URL (overrides the site's)")


def database_url(args) -> str | None:
    """`--db`, else the site's, else the environment's or the default; None after printing a config error."""
    if getattr(args, "db", None):
        return args.db
    if getattr(args, "config", None):
        from dcops.commands.role import load_config

        cfg = load_config(args.config)
        return None if cfg is None else cfg.settings.database.url
    return os.environ.get("DCOPS_DATABASE_URL", "sqlite:///var/dcops.sqlite")


def run(args) -> int:
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from dcops import dbschema

    url = database_url(args)
    if url is None:
        return 2
    try:
        if args.db_command == "upgrade":
            before = dbschema.state(url)
            after = dbschema.upgrade(url, args.revision)
            if before.legacy:
                print(f"{after.url}: adopted tables made without Alembic; recorded revision {after.current}")
            elif before.current == after.current:
                print(f"{after.url}: already at {after.current}")
            else:
                print(f"{after.url}: upgraded {before.current or 'empty database'} -> {after.current}")
            return 0
        if args.db_command == "stamp":
            after = dbschema.stamp(url, args.revision)
            print(f"{after.url}: recorded revision {after.current}")
            return 0
        st = dbschema.state(url)
    except dbschema.SchemaBehind as exc:
        print(f"dcops db: {exc}", file=sys.stderr)
        return 1
    except (SQLAlchemyError, OSError) as exc:
        print(f"dcops db: cannot use the database: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:  # an unknown revision and the like
        print(f"dcops db: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps({"database": st.url, "current": st.current, "head": st.head, "up_to_date": st.up_to_date,
                          "legacy": st.legacy}))
    else:
        now = st.current or ("tables without an Alembic revision" if st.legacy else "empty (no revision)")
        print(f"{st.url}: {now}; newest {st.head}" + ("" if st.up_to_date else " - behind: run `dcops db upgrade`"))
    return 0 if st.up_to_date else 1
