"""How `--help` looks: real metavars (SYMBOLS, DATE, FILE), flags without a type, the global
options listed on every command, and an example at the end of every command's help."""

from __future__ import annotations

import textwrap

from typer.core import TyperArgument, TyperOption

_PATCHED = {"done": False}


def examples(*lines: str) -> str:
    """An epilog: 'Examples:' and one command per line (rich help keeps the line breaks)."""
    head = "Example:" if len(lines) == 1 else "Examples:"
    return "\b\n" + head + "\n" + "\n".join(f"  {line}" for line in lines)


def _option_type(self, ctx) -> str | None:
    if self.is_flag or self.count:
        return None
    return self.metavar or self.name.upper()


def _argument_type(self, ctx) -> str | None:
    return None  # the name column already shows the metavar


def _argument_usage(self) -> str:
    name = self.display_name_raw + ("..." if self.nargs != 1 else "")
    return name if self.required else f"[{name}]"


def patch_help_display() -> None:
    """Typer 0.29 prints a Python type (`<str>`, `<bool>`) beside every parameter and `{NAME}` in
    usage lines; show the metavar instead, nothing for flags, and `NAME`/`[NAME]` in usage."""
    if _PATCHED["done"]:
        return
    TyperOption.display_type_rich = _option_type
    TyperOption.display_type = _option_type
    TyperArgument.display_type_rich = _argument_type
    TyperArgument.display_type = _argument_type
    TyperArgument._usage_display_name = _argument_usage
    _PATCHED["done"] = True


def _global_params() -> list:
    """`--debug` and `-v/--verbose` as typer builds them (for the help screen only)."""
    import typer

    holder = typer.Typer()

    @holder.command("options")
    def _options(
        debug: bool = typer.Option(
            False, "--debug", help="Show tracebacks on errors.", rich_help_panel="Global options"
        ),
        verbose: bool = typer.Option(
            False,
            "-v",
            "--verbose",
            help="Show Prefect's per-task log lines.",
            rich_help_panel="Global options",
        ),
    ):
        pass

    @holder.command()
    def _unused():
        pass

    return list(typer.main.get_command(holder).commands["options"].params)


def add_global_options(group) -> None:
    """List `--debug` and `-v/--verbose` in every command's help (cli.main strips them from the
    arguments before parsing, wherever they stand)."""
    import copy

    extra = _global_params()
    for command in getattr(group, "commands", {}).values():
        have = {o for p in command.params for o in getattr(p, "opts", ())}
        for param in extra:
            if not have.intersection(param.opts):
                clone = copy.copy(param)
                clone.expose_value = False
                command.params.append(clone)
        add_global_options(command)


def reflow(text: str | None) -> str | None:
    """Docstring paragraphs as single lines (rich help keeps hard line breaks); `\b` blocks kept."""
    if not text:
        return text
    paragraphs = textwrap.dedent(text).strip().split("\n\n")
    return "\n\n".join(
        p if p.startswith("\b") else " ".join(line.strip() for line in p.splitlines())
        for p in paragraphs
    )


def reflow_help(group) -> None:
    group.help = reflow(group.help)
    for command in getattr(group, "commands", {}).values():
        command.help = reflow(command.help)
        reflow_help(command)
