"""The `sluice` command group: its --debug flag, the one place where an error that escapes a
command becomes one or two lines on stderr (what went wrong, what to do) instead of a
traceback, and how to name the program in the commands that hints print."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

# Messages are not wrapped: a command in one must stay whole to be copied.
err = Console(stderr=True, soft_wrap=True)
# Set by `sluice --debug` (or SLUICE_DEBUG=1): errors keep their traceback.
_debug = {"on": False}


def say_error(message: object, hint: str | None = None) -> None:
    """One red line on stderr, and optionally a second saying what to do (brackets in
    either are text, not rich markup)."""
    err.print(f"[red]{escape(str(message))}[/]", soft_wrap=True)
    if hint:
        err.print(f"  {escape(hint)}", soft_wrap=True)


def fail(message: object, hint: str | None = None, code: int = 1) -> typer.Exit:
    """Print an error (and a hint) and return the Exit to raise."""
    say_error(message, hint)
    return typer.Exit(code)


def program() -> str:
    """How the user ran sluice, for commands a hint prints: `sluice` when that is what the
    PATH finds, the script's path as typed otherwise, or `python -m cli.main`."""
    argv0 = sys.argv[0] if sys.argv else "sluice"
    if os.path.basename(argv0) == "sluice":
        found = shutil.which("sluice")
        if found and os.path.realpath(found) == os.path.realpath(argv0):
            return "sluice"
        return shlex.quote(argv0)
    return f"{shlex.quote(sys.executable)} -m cli.main"


class SluiceTyper(typer.Typer):
    """A Typer app whose errors are one or two lines unless --debug asks for the traceback:
    a usage mistake (an unknown option, a value out of range) included."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the command line; an exception that escapes a command is explained."""
        # Typer carries its own copy of click: its exceptions are the ones raised here.
        from typer._click import exceptions as click

        kwargs.setdefault("standalone_mode", False)
        try:
            code = super().__call__(*args, **kwargs)
        except click.NoArgsIsHelpError as exc:
            exc.show()  # the group's help, as `--help` prints it
            raise SystemExit(exc.exit_code) from None
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else program()
            say_error(exc.format_message(), f"see `{where} --help`")
            raise SystemExit(exc.exit_code) from None
        except (typer.Abort, KeyboardInterrupt):  # Ctrl-C outside a command that explains it
            err.print()
            raise SystemExit(130) from None
        except click.ClickException as exc:
            say_error(exc.format_message())
            raise SystemExit(exc.exit_code) from None
        except Exception as exc:
            if _debug["on"]:
                raise
            from cli.errors import explain

            message, hint, exit_code = explain(exc)
            say_error(message, hint)
            raise SystemExit(exit_code) from None
        raise SystemExit(code if isinstance(code, int) else 0)


app = SluiceTyper(
    help="sluice: self-hosted batch inference.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _options(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", envvar="SLUICE_DEBUG", help="Show the traceback of an error (for bugs)"
        ),
    ] = False,
) -> None:
    """sluice: self-hosted batch inference."""
    _debug["on"] = debug
