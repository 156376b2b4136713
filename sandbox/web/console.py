"""The HTML console: server-rendered pages over the same service layer as the API."""

from __future__ import annotations

import hashlib
import json
import secrets
from functools import wraps

from flask import Blueprint, current_app, g, redirect, render_template, request, session, url_for

from sandbox.clock import iso
from sandbox.errors import SandboxError, Unauthorized
from sandbox.service import QueryRequest, Sandbox
from sandbox.users import User, authenticate_password, get_user
from sandbox.workflow import approvals_for

bp = Blueprint("console", __name__)


def sandbox() -> Sandbox:
    return current_app.extensions["sandbox"]


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def session_user() -> User | None:
    """Server-side sessions: the cookie holds a random id; revoking the row logs out at once."""
    sid = session.get("sid")
    if not sid:
        return None
    conn = sandbox().conn()
    row = conn.execute(
        "SELECT user_id FROM web_sessions WHERE id_hash = ? AND revoked_at IS NULL", (_hash(sid),)
    ).fetchone()
    return get_user(conn, row["user_id"]) if row else None


def login_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        g.user = session_user()
        if g.user is None:
            return redirect(url_for("console.login", next=request.path))
        return view(*args, **kwargs)

    return wrapped


def render_error(status: int, message: str):
    return render_template("error.html", status=status, message=message, user=None), status


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        conn = sandbox().conn()
        try:
            user = authenticate_password(conn, request.form.get("username", ""), request.form.get("password", ""))
        except Unauthorized as err:
            error = err.message
        else:
            sid = secrets.token_urlsafe(32)
            conn.execute("INSERT INTO web_sessions (id_hash, user_id, created_at) VALUES (?,?,?)",
                         (_hash(sid), user.id, iso(sandbox().now())))
            session.clear()
            session["sid"] = sid
            target = request.args.get("next", "")
            return redirect(target if target.startswith("/") and not target.startswith("//") else url_for("console.home"))
    return render_template("login.html", error=error, user=None), (401 if error else 200)


@bp.post("/logout")
def logout():
    sid = session.pop("sid", None)
    if sid:
        sandbox().conn().execute("UPDATE web_sessions SET revoked_at = ? WHERE id_hash = ?",
                                 (iso(sandbox().now()), _hash(sid)))
    return redirect(url_for("console.login"))


@bp.get("/")
@login_required
def home():
    if g.user.role == "researcher":
        return redirect(url_for("console.query"))
    return render_template("home.html", user=g.user, approvals=approvals_for(sandbox().conn(), g.user))


@bp.route("/query", methods=["GET", "POST"])
@login_required
def query():
    sb = sandbox()
    approvals = approvals_for(sb.conn(), g.user) if g.user.role == "researcher" else []
    result = error = None
    sql = request.form.get("sql", "SELECT district, COUNT(*) AS people FROM residents GROUP BY district")
    approval_id = request.form.get("approval_id") or (approvals[0].id if approvals else None)
    epsilon = request.form.get("epsilon", "0.5")
    if request.method == "POST":
        try:
            eps = float(epsilon)
        except ValueError:
            error = {"code": "bad_epsilon", "message": "epsilon must be a number"}
        else:
            try:
                result = sb.run_query(g.user, QueryRequest(approval_id, sql, eps))
            except SandboxError as err:
                error = {"code": err.code, "message": err.message, "position": getattr(err, "position", None)}
    budget = None
    if approval_id is not None:
        try:
            budget = sb.budget(g.user, approval_id)
        except SandboxError:
            budget = None
    return render_template(
        "query.html", user=g.user, approvals=approvals, approval_id=str(approval_id), sql=sql,
        epsilon=epsilon, result=result, error=error, budget=budget,
        result_json=json.dumps(result, ensure_ascii=False) if result else "",
    )
