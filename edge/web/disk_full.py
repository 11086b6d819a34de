"""A full data partition in the web UI: nothing is lost from the screen.

A save that cannot be written (edge.core.errors.StoreFull) shows the same form again with what
was typed and a message that says what is wrong and what to do; any other request that needed to
write gets the message on a page of its own (JSON for the API). Status 507 Insufficient Storage.
"""
from __future__ import annotations

from flask import Flask, flash, jsonify, render_template, request
from flask_babel import gettext

from edge.core.errors import StoreFull

STATUS = 507


def message() -> str:
    return gettext("Not saved: the data disk of this box is full. What you typed is still in the form; "
                   "do not close the page. Ask county IT to free space on the box (clinic-edge doctor "
                   "shows what uses it), then press Save again.")


def notice() -> None:
    """Say it at the top of the page being rendered (base.html shows flashed messages)."""
    flash(message(), "error")


def install(app: Flask) -> None:
    @app.errorhandler(StoreFull)
    def disk_full(e):
        app.logger.error("not saved, the data partition is full: %s", e)
        if request.path.startswith("/api/"):
            return jsonify(error="disk_full", message=message()), STATUS
        notice()
        return render_template("base.html"), STATUS
