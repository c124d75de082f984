"""`dcops console-user`: manage console accounts in the database of a site's settings.

    dcops console-user add NAME --role admin -c site.yaml      # asks for the password twice
    dcops console-user add NAME --role viewer --password-stdin -c site.yaml
    dcops console-user list -c site.yaml
    dcops console-user set-role NAME operator -c site.yaml
    dcops console-user disable NAME -c site.yaml
"""

from __future__ import annotations

import argparse
import getpass
import sys

from dcops.console.users import ROLES, UserError, UserStore


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", help="site YAML whose settings.database.url holds the users "
                                               "(default: the embedded sqlite:///var/dcops.sqlite)")
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="create an account")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, required=True)
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    ls = sub.add_parser("list", help="list accounts and roles")
    ls.add_argument("--format", choices=("text", "json"), default="text")
    sr = sub.add_parser("set-role", help="change an account's role")
    sr.add_argument("name")
    sr.add_argument("role", choices=ROLES)
    dis = sub.add_parser("disable", help="disable an account and end its sessions")
    dis.add_argument("name")


def _users(args) -> UserStore:
    """The users of the site's database, with its audit log (account changes are recorded)."""
    from dcops.alerts.storage.audit import open_audit_log

    if args.config:
        from dcops.site import load_site

        db = load_site(args.config).settings.database
    else:
        from dcops.settings import DatabaseSettings

        db = DatabaseSettings()
    from dcops.dbschema import prepare

    prepare(db.url)  # the schema is Alembic's: SQLite upgraded here, a server database must be at head
    users = UserStore.from_url(db.url)
    users.audit = open_audit_log(users.engine, db)
    return users


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (containers)
        return "cli:unknown"


def run(args) -> int:
    from dcops.dbschema import SchemaBehind

    try:
        users = _users(args)
        if args.action == "add":
            if args.password_stdin:
                password = sys.stdin.readline().rstrip("\n")
            else:
                password = getpass.getpass(f"password for {args.name}: ")
                if getpass.getpass("again: ") != password:
                    print("passwords differ", file=sys.stderr)
                    return 1
            users.create_user(args.name, password, args.role, actor=_actor())
            print(f"created {args.name} ({args.role})")
        elif args.action == "list" and args.format == "json":
            import json

            print(json.dumps([{"name": u.name, "role": u.role, "disabled": bool(d)} for u, d in users.list_users()]))
        elif args.action == "list":
            for user, disabled in users.list_users():
                print(f"{user.name}\t{user.role}\t{'disabled' if disabled else 'active'}")
        elif args.action == "set-role":
            users.set_role(args.name, args.role, actor=_actor())
            print(f"{args.name} is now {args.role}")
        elif args.action == "disable":
            users.set_disabled(args.name, True, actor=_actor())
            print(f"disabled {args.name}")
        if args.action != "list":
            users.audit.anchor("console-user")  # the new chain head also leaves the database
    except (UserError, SchemaBehind) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
