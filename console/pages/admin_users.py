"""Admin - users and roles. Only admins see the page; every change is checked on the server."""

from __future__ import annotations

import logging

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, html
from dash.exceptions import PreventUpdate

from dcops.console.auth import current_user, require_role, users_of_app
from dcops.console.users import ROLES, UserError

dash.register_page(__name__, path="/admin/users", name="Users", title="dcops - Users", order=80, min_role="admin")

audit = logging.getLogger("dcops.console.audit")


def users_table(users) -> dbc.Table:
    head = html.Thead(html.Tr([html.Th("user"), html.Th("role"), html.Th("state")]))
    body = [html.Tr([html.Td(u.name), html.Td(u.role), html.Td("disabled" if off else "active")])
            for u, off in users.list_users()]
    return dbc.Table([head, html.Tbody(body)], size="sm", striped=True, id="admin_users-table")


def layout(**_query):
    user = current_user()
    if user is None or not user.can("admin"):
        return dbc.Alert("This page needs the admin role.", color="danger", id="admin_users-forbidden")
    role_opts = [{"label": r, "value": r} for r in ROLES]
    return html.Div([
        html.H3("Users and roles"),
        html.Div(users_table(users_of_app()), id="admin_users-list"),
        html.H5("Add a user or change a role"),
        dbc.Row([
            dbc.Col(dbc.Input(id="admin_users-name", placeholder="user name"), md=3),
            dbc.Col(dbc.Input(id="admin_users-password", type="password",
                              placeholder="password (new users; 10+ characters)"), md=3),
            dbc.Col(dbc.Select(id="admin_users-role", options=role_opts, value="viewer"), md=2),
            dbc.Col(dbc.Button("Save", id="admin_users-save", color="primary"), md=2),
        ], className="g-2"),
        html.Div(id="admin_users-result", className="mt-2"),
    ])


def save_user(n_clicks, name, password, role):
    """Create `name` with `role` (and password), or change an existing user's role. Admin only."""
    if not n_clicks:
        raise PreventUpdate
    admin = require_role("admin")
    users = users_of_app()
    name = (name or "").strip()
    try:
        if any(u.name == name for u, _ in users.list_users()):
            users.set_role(name, role, actor=admin.name)
            msg = f"{name} is now {role}."
        else:
            users.create_user(name, password or "", role, actor=admin.name)
            msg = f"Created {name} ({role})."
    except UserError as e:
        return dbc.Alert(str(e), color="warning", id="admin_users-error"), users_table(users)
    audit.info("user admin: by=%s user=%s role=%s", admin.name, name, role)
    return dbc.Alert(msg, color="success", id="admin_users-ok"), users_table(users)


callback(Output("admin_users-result", "children"), Output("admin_users-list", "children"),
         Input("admin_users-save", "n_clicks"), State("admin_users-name", "value"),
         State("admin_users-password", "value"), State("admin_users-role", "value"),
         prevent_initial_call=True)(save_user)
