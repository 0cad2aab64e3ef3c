"""Commands about a spec: check, summary, schema."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from dnnlab.cli.app import JsonFlag, Overrides, app, escape_markup, print_json, print_warnings, user_errors
from dnnlab.console import stderr_console, stdout_console
from dnnlab.errors import DnnlabError

# ---------------------------------------------------------------- commands


@app.command()
@user_errors
def check(
    config: Annotated[Path, typer.Argument(help="YAML spec to validate.")],
    override: Overrides = None,
    as_json: JsonFlag = False,
    print_config: Annotated[
        bool,
        typer.Option("--print-config", help="Print the resolved spec (what config.yaml records) on stdout."),
    ] = False,
) -> None:
    """Validate a spec and print the notes' advice; trains nothing."""
    from dnnlab.data.checked_spec import check_spec
    from dnnlab.spec.loading import spec_to_dict, spec_to_yaml

    try:
        checked = check_spec(config, override)
    except DnnlabError as exc:
        if as_json:
            print_json({"valid": False, "errors": [str(exc)], "warnings": []})
        raise
    warnings = [f for f in checked.warnings if f.level == "warning"]
    if as_json:
        report = {
            "valid": True,
            "errors": [],
            "warnings": [{"key": f.key, "message": f.message} for f in warnings],
        }
        if print_config:
            report["config"] = spec_to_dict(checked.spec)
        print_json(report)
    elif print_config:
        sys.stdout.write(spec_to_yaml(checked.spec))
    print_warnings(warnings)
    stderr_console().print(f"[green]valid:[/] {escape_markup(str(config))} ({len(warnings)} warning(s))")


@app.command()
@user_errors
def summary(
    target: Annotated[Path, typer.Argument(help="YAML spec or run directory.")],
    override: Overrides = None,
    as_json: JsonFlag = False,
) -> None:
    """Layers, output shapes and parameter counts of the model a spec builds."""
    from dnnlab.model.summary import model_summary

    result = model_summary(target, override)
    if as_json:
        print_json(result)
        return
    from rich.table import Table

    transfer = result.get("transfer")
    table = Table(title=result["name"])
    columns = ("Layer", "Type", "Output shape", "Params") + (("Transfer",) if transfer else ())
    for column in columns:
        table.add_column(column, justify="right" if column == "Params" else "left")
    for layer in result["layers"]:
        shape = "(" + ", ".join("None" if d is None else str(d) for d in layer["output_shape"]) + ")"
        row = [layer["name"], layer["type"], shape, f"{layer['params']:,}"]
        if transfer:
            epochs = transfer["freeze_epochs"]
            mark = f"transferred, frozen {epochs} epoch(s)" if layer["frozen"] else "transferred"
            row.append(mark if layer["transferred"] else "")
        table.add_row(*row)
    console = stdout_console()
    console.print(table)
    if transfer:
        console.print(
            f"{len(transfer['layers'])} layer(s) transferred from {escape_markup(str(transfer['run']))}"
            + (
                f"; counts below are of the first {transfer['freeze_epochs']} epoch(s)"
                if transfer["freeze_epochs"]
                else ""
            )
        )
    console.print(f"Total params: {result['total_params']:,}")
    console.print(f"Trainable params: {result['trainable_params']:,}")
    console.print(f"Non-trainable params: {result['non_trainable_params']:,}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of the YAML spec (for editors)."""
    from dnnlab.spec.loading import json_schema

    print_json(json_schema())
