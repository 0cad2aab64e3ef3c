"""`dnnlab cache info|clear`: the persistent XLA cache of compiled train steps (dnnlab.xla_cache)."""

from __future__ import annotations

from typing import Annotated

import typer

from dnnlab import xla_cache
from dnnlab.cli.app import JsonFlag, app, escape_markup, print_json, user_errors
from dnnlab.console import stdout_console

cache_app = typer.Typer(
    help="The cache of XLA-compiled train steps that later runs of the same shapes reuse.",
    no_args_is_help=True,
)
app.add_typer(cache_app, name="cache")


def _size(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


@cache_app.command()
@user_errors
def info(as_json: JsonFlag = False) -> None:
    """Where the cache is and what it holds: entries this TensorFlow, CPU and XLA flags can load,
    and stale ones (another version, machine or flags), which `dnnlab cache clear --stale` removes."""
    found = xla_cache.summary()
    folder = None if found.directory is None else str(found.directory)
    if as_json:
        print_json(
            {
                "directory": folder,
                "enabled": folder is not None,
                "key": found.key,
                "entries": found.current[0],
                "bytes": found.current[1],
                "stale_entries": found.other[0],
                "stale_bytes": found.other[1],
            }
        )
        return
    console = stdout_console()
    if folder is None:
        console.print(f"cache: off ({xla_cache.ENV} turns it off)")
        return
    console.print(f"cache: {escape_markup(folder)}")
    console.print(f"key: {found.key} (TensorFlow version, XLA flags, CPU)")
    console.print(f"entries: {found.current[0]} ({_size(found.current[1])})")
    hint = " (never loaded here: `dnnlab cache clear --stale` removes them)" if found.other[0] else ""
    console.print(f"stale entries: {found.other[0]} ({_size(found.other[1])}){hint}")


@cache_app.command()
@user_errors
def clear(
    stale: Annotated[
        bool,
        typer.Option(
            "--stale", help="Only entries of another TensorFlow, CPU or XLA flags, never loaded here."
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing.")] = False,
) -> None:
    """Delete the cache's entries (only files dnnlab's cache wrote); runs compile again."""
    files, size = xla_cache.clear(stale_only=stale)
    if not quiet:
        kind = "stale cache file(s)" if stale else "cache file(s)"
        stdout_console().print(f"removed {files} {kind}, {_size(size)}")
