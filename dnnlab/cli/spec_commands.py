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
    """Validate a spec and print advice from Géron, Hands-On Machine Learning, ch. 11; trains nothing."""
    from dnnlab.data.checked_spec import check_spec
    from dnnlab.spec.loading import spec_to_dict, spec_to_yaml
    from dnnlab.spec.phases import describe as describe_phases
    from dnnlab.spec.phases import pretrain_phases

    try:
        checked = check_spec(config, override)
    except DnnlabError as exc:
        if as_json:
            print_json({"valid": False, "errors": [str(exc)], "warnings": []})
        raise
    warnings = [f for f in checked.warnings if f.level == "warning"]
    columns = None
    if checked.info.table is not None:
        from dnnlab.data.table_source import column_report

        columns = column_report(checked.info.table)
    if as_json:
        payload = {
            "valid": True,
            "errors": [],
            "warnings": [{"key": f.key, "message": f.message} for f in warnings],
        }
        if columns is not None:
            payload["columns"] = columns
        if checked.spec.training.pretrain is not None:
            payload["phases"] = [p.to_dict() for p in pretrain_phases(checked.spec, checked.info.input_shape)]
        if print_config:
            payload["config"] = spec_to_dict(checked.spec)
        print_json(payload)
    elif print_config:
        sys.stdout.write(spec_to_yaml(checked.spec))
    if columns is not None and not as_json:
        stderr_console().print(columns_table(columns, checked.info.name))
    print_warnings(warnings)
    phases = describe_phases(checked.spec, checked.info.input_shape)
    if phases and not as_json:
        stderr_console().print(phases, markup=False, highlight=False)
    stderr_console().print(f"[green]valid:[/] {escape_markup(str(config))} ({len(warnings)} warning(s))")


def columns_table(columns: list[dict], source: str):
    """A table's feature columns as inferred or declared, and what each becomes."""
    from rich.table import Table

    width = sum(len(column["encoded"]) for column in columns)
    table = Table(title=f"{escape_markup(source)}: {len(columns)} columns, {width} encoded features")
    for heading in ("column", "type", "missing", "becomes"):
        table.add_column(heading)
    for column in columns:
        missing = column["missing"]
        fill = column["fill"]
        if column["type"] == "binary" and fill in (0.0, 1.0):
            fill = column["categories"][int(fill)]  # the value a missing cell becomes
        if fill is not None:
            missing += f" ({fill:.4g})" if isinstance(fill, float) else f" ({fill})"
        missing += " + indicator" if column["indicator"] else ""
        if column["type"] == "categorical":
            becomes = f"{len(column['categories'])} one-hot: {', '.join(column['categories'])}"
        else:
            becomes = ", ".join(column["encoded"])
        table.add_row(*(escape_markup(str(v)) for v in (column["name"], column["type"], missing, becomes)))
    return table


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
    if result.get("pretrain"):
        from dnnlab.spec.phases import describe_record

        console.print(describe_record(result["pretrain"], result["fine_tune_epochs"]), markup=False)
    console.print(f"Total params: {result['total_params']:,}")
    console.print(f"Trainable params: {result['trainable_params']:,}")
    console.print(f"Non-trainable params: {result['non_trainable_params']:,}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of the YAML spec (for editors)."""
    from dnnlab.spec.loading import json_schema

    print_json(json_schema())
