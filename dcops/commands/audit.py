"""`dcops audit verify`: check the audit chain (keyed MACs, links) against its anchors.

    dcops audit verify -c site.yaml                  # database, key and anchor file from settings.database
    dcops audit verify --db URL --anchors FILE       # key from DCOPS_AUDIT_KEY

Exit status 0 when the chain verifies, 1 when it does not (the first bad record and why are
printed), 2 when the database cannot be read.
"""

from __future__ import annotations

import json
import os
import sys


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    v = sub.add_parser("verify", help="verify the audit chain and its anchors")
    v.add_argument("-c", "--config", help="site YAML (settings.database: url, audit_key, audit_anchor_file)")
    v.add_argument("--db", help="database URL (overrides the site's)")
    v.add_argument("--anchors", help="anchor file (JSON lines; overrides the site's)")
    v.add_argument("--allow-unkeyed", action="store_true",
                   help="accept a chain without HMACs when no key is configured (anchors still checked)")
    v.add_argument("--format", choices=("text", "json"), default="text")


def run(args) -> int:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from dcops.alerts.storage.audit import AuditLog, anchor_file_for, read_anchors
    from dcops.settings import DatabaseSettings
    from dcops.yamlconf import ConfigError

    try:
        db = DatabaseSettings()
        if args.config:
            from dcops.site import load_site

            db = load_site(args.config).settings.database
    except ConfigError as exc:
        exc.report()
        return 2
    url = args.db or db.url
    secret = db.audit_key.get_secret_value() if db.audit_key is not None else os.environ.get("DCOPS_AUDIT_KEY")
    key = secret.encode("utf-8") if secret else None
    anchor_file = args.anchors or anchor_file_for(db, url)
    anchors = read_anchors(anchor_file)
    shown = make_url(url).render_as_string(hide_password=True)
    if key is None and not args.allow_unkeyed:
        print("no audit key (settings.database.audit_key or DCOPS_AUDIT_KEY): without it a re-hashed chain"
              " cannot be told from a real one; pass --allow-unkeyed to check links and anchors only",
              file=sys.stderr)
        return 2
    try:
        engine = create_engine(url)
        result = AuditLog(engine, key=key).verify(anchors=anchors, require_key=key is not None)
    except SQLAlchemyError as exc:
        print(f"cannot read the audit log in {shown}: {type(exc).__name__}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps({"ok": result.ok, "checked": result.checked, "first_bad_seq": result.first_bad_seq,
                          "reason": result.reason, "keyed": result.keyed, "anchors": len(anchors),
                          "database": shown, "anchor_file": str(anchor_file)}))
    elif result.ok:
        print(f"audit chain OK: {result.checked} records ({'HMAC-keyed' if result.keyed else 'UNKEYED'}),"
              f" {len(anchors)} anchors from {anchor_file} matched ({shown})")
    else:
        print(f"audit chain BROKEN at record {result.first_bad_seq}: {result.reason}"
              f" ({result.checked} records verified before it; {shown})")
    if not anchors and result.ok:
        print(f"warning: no anchors in {anchor_file}: a deleted tail or emptied table would go unnoticed",
              file=sys.stderr)
    return 0 if result.ok else 1
