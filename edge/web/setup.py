"""/setup: the first-boot page on the clinic's LAN (issue 8).

Shows how provisioning went (from run/firstboot.json): enrolling (with the last error), a refused
enrollment code with what to do, or - once enrolled - the admin's one-time setup code with a form
to choose the admin's own password. After that the page shows nothing secret. Public (no login):
it is how the first person gets an account; it is only reachable on the clinic's LAN (firewall).
"""
from __future__ import annotations

from flask import Blueprint, Flask, redirect, render_template, request, url_for
from flask_babel import gettext

from edge.core import first_admin
from edge.core.errors import ValidationError
from . import context

bp = Blueprint("setup", __name__)


def install(app: Flask) -> None:
    from .workbench import PUBLIC

    app.register_blueprint(bp)
    PUBLIC.add("setup.page")


@bp.route("/setup", methods=["GET", "POST"])
def page():
    node = context.node()
    status = node.read_status("firstboot") or {}
    code = first_admin.setup_code(node)
    error = None
    if request.method == "POST" and code:
        password = request.form.get("password", "")
        if password != request.form.get("password2", ""):
            error = gettext("The two passwords differ.")
        else:
            try:
                first_admin.finish_setup(node, request.form.get("code", ""), password)
            except ValidationError as e:
                error = gettext(str(e))
            else:
                return redirect(url_for("auth.login"), 303)
    return render_template("setup.html", status=status, code=code, admin=first_admin.ADMIN, error=error), \
        (400 if error else 200)
