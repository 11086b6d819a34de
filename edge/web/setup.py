"""/setup: the first-boot page on the clinic's LAN (issue 8).

Shows how provisioning went (from run/firstboot.json): enrolling (with the last error), a refused
enrollment code with what to do, or - once enrolled - a form where the person at the box types the
one-time setup code and chooses the admin's password. The page never shows the code: it is on the
box's console, in its journal and on the SD card's boot partition (edge/core/first_admin.py).
Public (no login): it is how the first person gets an account; wrong codes are throttled.
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
    waiting = first_admin.pending(node)
    error, http_status = None, 200
    if request.method == "POST" and waiting:
        password = request.form.get("password", "")
        if password != request.form.get("password2", ""):
            error, http_status = gettext("The two passwords differ."), 400
        else:
            try:
                first_admin.finish_setup(node, request.form.get("code", ""), password, now=node.clock.now())
            except ValidationError as e:
                error, http_status = gettext(str(e)), (429 if e.code == "throttled" else 400)
            else:
                return redirect(url_for("auth.login"), 303)
    return render_template("setup.html", status=status, waiting=waiting, admin=first_admin.ADMIN,
                           error=error), http_status
