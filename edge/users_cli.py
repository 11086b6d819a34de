"""`clinic-edge user add|passwd|disable|enable|logout-all|list`: accounts of the web workbench."""
from __future__ import annotations

import sys

import click

from edge.core.cli_error import CliError
from edge.core import accounts
from edge.core.errors import CoreError
from edge.core.node import Node


def _password(generate: bool, from_stdin: bool) -> tuple[str, bool]:
    """(password, shown): generated and printed, read from stdin, or asked twice."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\n"), False
    if generate:
        return accounts.new_password(), True
    return click.prompt("password", hide_input=True, confirmation_prompt=True), False


@click.group("user")
def user() -> None:
    """Web accounts (doctor, admin)."""


@user.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(accounts.ROLES), default="doctor", show_default=True)
@click.option("--name", "display_name", default="", help="the name shown in the workbench")
@click.option("--generate", is_flag=True, help="make a random password and print it once")
@click.option("--password-stdin", is_flag=True, help="read the password from the first line of stdin")
@click.pass_obj
def add(node: Node, username: str, role: str, display_name: str, generate: bool, password_stdin: bool) -> None:
    """Create an account."""
    password, shown = _password(generate, password_stdin)
    try:
        u = accounts.add(node.store, username, password, role=role, display_name=display_name,
                         now=node.clock.now(), actor="cli")
    except CoreError as e:
        raise CliError(str(e))
    click.echo(f"user {u.username} added ({u.role})")
    if shown:
        click.echo(f"password: {password}")


@user.command("passwd")
@click.argument("username")
@click.option("--generate", is_flag=True, help="make a random password and print it once")
@click.option("--password-stdin", is_flag=True, help="read the password from the first line of stdin")
@click.pass_obj
def passwd(node: Node, username: str, generate: bool, password_stdin: bool) -> None:
    """Set a new password (also lifts a login lock-out)."""
    password, shown = _password(generate, password_stdin)
    try:
        accounts.set_password(node.store, username, password, now=node.clock.now(), actor="cli")
    except CoreError as e:
        raise CliError(str(e))
    click.echo(f"password of {username} changed")
    if shown:
        click.echo(f"password: {password}")


@user.command("disable")
@click.argument("username")
@click.pass_obj
def disable(node: Node, username: str) -> None:
    """Stop an account from logging in (its history stays)."""
    try:
        accounts.set_disabled(node.store, username, True, now=node.clock.now(), actor="cli")
    except CoreError as e:
        raise CliError(str(e))
    click.echo(f"user {username} disabled")


@user.command("enable")
@click.argument("username")
@click.pass_obj
def enable(node: Node, username: str) -> None:
    """Allow a disabled account to log in again."""
    try:
        accounts.set_disabled(node.store, username, False, now=node.clock.now(), actor="cli")
    except CoreError as e:
        raise CliError(str(e))
    click.echo(f"user {username} enabled")


@user.command("logout-all")
@click.argument("username")
@click.pass_obj
def logout_all(node: Node, username: str) -> None:
    """End every session of the account (a copied cookie stops working too)."""
    try:
        accounts.end_sessions(node.store, username, now=node.clock.now(), actor="cli")
    except CoreError as e:
        raise CliError(str(e))
    click.echo(f"user {username} logged out everywhere")


@user.command("list")
@click.pass_obj
def list_users(node: Node) -> None:
    """Print the accounts."""
    for u in accounts.all_users(node.store):
        click.echo(f"{u.username:<20} {u.role:<7} {'disabled' if u.disabled else 'active':<9} {u.display_name}")
