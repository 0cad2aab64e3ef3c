"""`dnnlab report`: one self-contained HTML page about run directories or sweeps.

The page needs nothing beside itself to be read: the CSS is inline, the figures are PNGs embedded
as data: URIs, there is no script, and per-run details fold with <details>. It is built from the
same `Comparison` as `dnnlab compare`, so it never imports TensorFlow.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dnnlab import __version__
from dnnlab.errors import DnnlabError
from dnnlab.files.atomic import atomic_write_text
from dnnlab.files.folders import check_output_folder
from dnnlab.results import compare as comparing
from dnnlab.results import formats as fmt
from dnnlab.results import search_report, seed_tests
from dnnlab.rundir import loading
from dnnlab.rundir.layers_csv import STATISTICS
from dnnlab.rundir.layout import CONFIG_YAML, RUN_JSON
from dnnlab.rundir.reading import parse_json

IMPORTANCE_MIN_RUNS = 10  # fewer runs than this say too little to rank the keys by
IMPORTANCE_REPEATS = 20

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1400px;
padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top;white-space:nowrap}
.wide{overflow-x:auto}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.best td{background:#eef7ee;font-weight:600}
img{max-width:100%;border:1px solid #eee}
pre{background:#f7f7f7;padding:.6em;overflow:auto;font-size:12px}
.note{color:#666}details{margin:.3em 0}summary{cursor:pointer;font-weight:600}
"""


@dataclass
class Importance:
    """Permutation importance of each differing key for predicting the ranked metric."""

    metric: str
    method: str
    scores: list[tuple[str, float, float]]  # key, mean drop of R^2, its std over the repeats


def write_report(
    paths: list[Path],
    out: Path,
    metric: str | None = None,
    reach: str | None = None,
    mc_files: list[Path] | None = None,
) -> Path:
    """Write the HTML report of the runs among `paths` to `out` (atomically) and return it;
    `mc_files`: `mc-predict --out` .npz files whose calibration it shows."""
    check_output_folder(out, "--out")
    mc_sections = [mc_calibration_html(path) for path in mc_files or []]  # bad files: before any work
    atomic_write_text(out, render_report(paths, metric, reach, mc_sections))
    return out


def render_report(
    paths: list[Path],
    metric: str | None = None,
    reach: str | None = None,
    mc_sections: list[str] | None = None,
) -> str:
    """The report's HTML text; `mc_sections` from mc_calibration_html."""
    from dnnlab.results.plots import learning_curves_png, plot_panels

    comparison = comparing.compare(paths, metric=metric, reach=reach)
    grouped = comparing.compare(paths, metric=comparison.metric, group_seeds=True, reach=reach)
    has_seed_groups = any(len(group.runs) > 1 for group in grouped.groups or [])
    direction = "lower" if comparison.mode == "min" else "higher"
    parts = [
        f"<h1>dnnlab report: {len(comparison.runs)} runs</h1>",
        f"<p>Ranked by <b>{_e(comparison.metric)}</b> ({direction} is better). Written "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by dnnlab {_e(__version__)}. "
        "Epochs count from 1.</p>",
        *(f'<p class="note">note: {_e(m)}</p>' for m in comparing.messages(comparison)),
        "<h2>Ranking</h2>",
        _table(comparison),
        _shared_keys(comparison),
    ]
    if has_seed_groups:
        seed_tests.attach(grouped)
        parts += [
            "<h2>Seed groups</h2>",
            "<p>Runs whose specs differ only in <code>seed</code>: mean ± sample std over the seeds; "
            "<code>seeds</code> is their number. <code>n</code>, <code>mean</code>, <code>std</code>, "
            "<code>ci_low</code> and <code>ci_high</code> (the 95% interval of the mean) are of the "
            "values tested; <code>p_value</code> and <code>verdict</code> compare each group with the "
            "best.</p>",
            _table(grouped),
            _tests_html(grouped),
        ]
    recorded = {
        k for run in comparison.runs for k, v in run.history.items() if v and k not in ("epoch", "seconds")
    }
    parts.append("<h2>Learning curves</h2>")
    if recorded:
        panels = plot_panels(comparison)
        if "loss" not in panels and recorded & {"loss", "val_loss"}:
            panels.insert(1, "loss")
        parts.append(_img(learning_curves_png(comparison, panels), "learning curves"))
        if has_seed_groups:
            parts.append(
                _img(learning_curves_png(grouped, panels), "learning curves, mean ± std per seed group")
            )
    else:
        parts.append('<p class="note">No run has finished an epoch (metrics.csv is empty or missing).</p>')
    tests = _test_table(comparison)
    if tests:
        parts += ["<h2>Test metrics</h2>", tests]
    if mc_sections:
        parts += ["<h2>MC dropout calibration</h2>", *mc_sections]
    for search in search_report.find_searches(paths):
        parts += _search_html(search)
    importance = hyperparameter_importance(comparison)
    parts += ["<h2>Hyperparameter importance</h2>", _importance_html(importance, comparison)]
    parts += ["<h2>Runs</h2>", *(_run_details(run) for run in comparison.runs)]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>dnnlab report</title><style>{CSS}</style></head><body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )


# ---------------------------------------------------------------- MC dropout calibration


def mc_calibration_html(path: Path) -> str:
    """The reliability diagrams and ECE of the methods in an `mc-predict --out FILE.npz` file
    (deterministic, MC dropout, temperature scaled), which holds the labels it was scored on."""
    from dnnlab.data.user_files import read_npz
    from dnnlab.inference import calibration

    arrays = read_npz(path, "--mc")
    if "mean" not in arrays or "labels" not in arrays:
        raise DnnlabError(
            f"--mc {path}: no labels in this file; expected the .npz that `dnnlab mc-predict --out` "
            "writes for a classification run on labelled data (--data test, validation or a file with y)"
        )
    curves = calibration.reliability_curves(arrays)
    rows = "".join(
        f"<tr><td>{_e(name)}</td><td class=num>"
        f"{calibration.expected_calibration_error(calibration.reliability(p, arrays['labels'])):.4f}"
        f"</td><td class=num>{calibration.nll(p, arrays['labels']):.4f}</td></tr>"
        for name, p in curves.items()
    )
    from dnnlab.results.plots import plain_text

    png = calibration.reliability_png(curves, arrays["labels"], plain_text(path.name))
    return (
        f"<h3>{_e(path.name)}</h3><p>{len(arrays['labels'])} instances; 15 equal-width confidence "
        "bins.</p><table><tr><th>method</th><th>ECE</th><th>NLL</th></tr>"
        f"{rows}</table>{_img(png, f'reliability diagram of {path.name}')}"
    )


# ---------------------------------------------------------------- tables


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(comparison: comparing.Comparison) -> str:
    headers, rows = fmt.table_rows(comparison, diff_only=True)
    rows = fmt.counted_from_one(rows)
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        best = ' class="best"' if i == 0 and comparison.best_run is not None else ""
        cells = "".join(
            f'<td class="num">{_e(fmt.format_value(row[h]))}</td>'
            if fmt.is_numeric_column(h)
            else f"<td>{_e(fmt.format_value(row[h]))}</td>"
            for h in headers
        )
        body.append(f"<tr{best}>{cells}</tr>")
    return (
        f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
    )


def _tests_html(grouped: comparing.Comparison) -> str:
    """Each group against the best in words, how the numbers were made, and the notes on them."""
    sentences = fmt.group_sentences(grouped)
    parts = ["<ul>" + "".join(f"<li>{_e(line)}</li>" for line in sentences) + "</ul>"] if sentences else []
    parts.append(f'<p class="note">{_e(grouped.tests.method)}</p>')
    parts += [f'<p class="note">note: {_e(note)}</p>' for note in grouped.tests.notes]
    return "".join(parts)


def _shared_keys(comparison: comparing.Comparison) -> str:
    shared = next((r.params for r in comparison.runs if r.config is not None), {})
    items = [
        f"<li><code>{_e(k)}</code>: {_e(fmt.format_value(shared.get(k)))}</li>"
        for k in comparison.context_keys
    ]
    return f"<p>Shared by every run:</p><ul>{''.join(items)}</ul>" if items else ""


def _test_table(comparison: comparing.Comparison) -> str:
    names = list(dict.fromkeys(k for r in comparison.runs for k in r.test))
    if not names:
        return ""
    head = "<th>run</th>" + "".join(f"<th>test_{_e(n)}</th>" for n in names)
    rows = []
    for run in comparison.runs:
        cells = "".join(
            f'<td class="num">{_e(fmt.format_value(run.test.get(n, loading.MISSING)))}</td>' for n in names
        )
        rows.append(f"<tr><td>{_e(run.path.name)}</td>{cells}</tr>")
    return (
        "<p>Of the kept model on the test split, as run.json records it.</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _img(png: bytes, alt: str) -> str:
    return f'<p><img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}"></p>'


# ---------------------------------------------------------------- a search sweep


def _search_html(search) -> list[str]:
    stopped = sum(t.status in ("paused", "pruned") for t in search.trials)
    parts = [
        f"<h2>Search: {_e(search.path.name)}</h2>",
        f"<p>{len(search.trials)} trials of a <code>{_e(search.sampler)}</code> search with pruner "
        f"<code>{_e(search.pruner)}</code>, {_e(search.goal)} <b>{_e(search.metric)}</b>; {stopped} "
        "stopped early (paused or pruned), ranked after the full-budget trials above.</p>",
        _img(search_report.best_so_far_png(search), "best so far against trials and epochs spent"),
    ]
    importances, note = search_report.optuna_importance(search)
    parts.append(f'<p class="note">{_e(note)}</p>')
    if importances:
        rows = "".join(
            f'<tr><td><code>{_e(k)}</code></td><td class="num">{v:.3f}</td></tr>'
            for k, v in importances.items()
        )
        parts.append(
            f"<table><thead><tr><th>parameter</th><th>importance</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    figure = search_report.parallel_coordinates_png(search)
    if figure is not None:
        parts.append(_img(figure, "parallel coordinates of the trials"))
    return parts


# ---------------------------------------------------------------- hyperparameter importance


def hyperparameter_importance(comparison: comparing.Comparison) -> Importance | None:
    """Permutation importance of the differing keys in a random forest that predicts each run's
    best value of the ranked metric; None with fewer than IMPORTANCE_MIN_RUNS usable runs."""
    runs = [r for r in comparison.runs if r.config is not None and r.best and r.best.value is not None]
    runs = [r for r in runs if math.isfinite(r.best.value)]
    keys = [k for k in comparison.differing_keys if k != "seed"]
    if len(runs) < IMPORTANCE_MIN_RUNS or not keys:
        return None
    import numpy as np
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance

    columns = [_encode([run.params.get(k, loading.MISSING) for run in runs]) for k in keys]
    x = np.array(columns, dtype=float).T
    y = np.array([run.best.value for run in runs], dtype=float)
    forest = RandomForestRegressor(n_estimators=200, random_state=0).fit(x, y)
    result = permutation_importance(forest, x, y, n_repeats=IMPORTANCE_REPEATS, random_state=0)
    scores = sorted(
        zip(keys, result.importances_mean.tolist(), result.importances_std.tolist()), key=lambda s: -s[1]
    )
    method = (
        f"A random forest (scikit-learn, 200 trees) is fitted to the best {comparison.metric} of "
        f"{len(runs)} runs from their {len(keys)} differing keys (numbers as they are, other values "
        "as category codes, a missing key as its own code); each key's permutation importance is "
        f"the mean drop in the forest's R² when that key's column is shuffled ({IMPORTANCE_REPEATS} repeats, "
        "± their std). It is measured on the runs the forest was fitted to, so it says what the "
        "forest relies on, not a causal effect; keys that vary together share their importance."
    )
    return Importance(comparison.metric, method, scores)


def _encode(values: list[Any]) -> list[float]:
    """Numbers as floats when every value is a number; otherwise a code per distinct value."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return [float(v) for v in values]
    codes: dict[str, int] = {}
    return [float(codes.setdefault(json.dumps(v, sort_keys=True, default=str), len(codes))) for v in values]


def _importance_html(importance: Importance | None, comparison: comparing.Comparison) -> str:
    if importance is None:
        return (
            f'<p class="note">Needs at least {IMPORTANCE_MIN_RUNS} runs with a best '
            f"{_e(comparison.metric)} and a differing key; this report has {len(comparison.runs)} runs.</p>"
        )
    rows = "".join(
        f'<tr><td><code>{_e(k)}</code></td><td class="num">{mean:.4g}</td><td class="num">{std:.2g}</td></tr>'
        for k, mean, std in importance.scores
    )
    return (
        f"<p>{_e(importance.method)}</p><table><thead><tr><th>key</th><th>importance (drop in R²)</th>"
        f"<th>std</th></tr></thead><tbody>{rows}</tbody></table>"
    )


# ---------------------------------------------------------------- per-run details


def _run_details(run: loading.LoadedRun) -> str:
    parts = [
        f"<details><summary>{_e(run.path.name)} ({_e(run.status)})</summary>",
        f"<p><code>{_e(run.path)}</code></p>",
    ]
    if run.notes:
        parts.append(f'<p class="note">{_e("; ".join(run.notes))}</p>')
    # What is missing or unreadable in run.json and config.yaml is among run.notes already.
    run_json = loading.read_text(run.path / RUN_JSON, [])
    for title, text in (
        ("run.json: execution, versions, host, command", run_json and _pretty_json(run_json)),
        ("config.yaml: the resolved spec", loading.read_yaml_text(run.path / CONFIG_YAML, [])),
    ):
        if text:
            parts.append(f"<p><b>{_e(title)}</b></p><pre>{_e(text)}</pre>")
    layers = _layers_table(run.path / "layers.csv")
    if layers:
        parts.append(layers)
    parts.append("</details>")
    return "\n".join(parts)


def _pretty_json(text: str) -> str:
    try:
        return json.dumps(parse_json(text), indent=2)
    except (ValueError, RecursionError):  # RecursionError: parsed, but too deep to write back
        return text  # damaged: shown as it is


def _layers_table(path: Path) -> str:
    """The last measurement of each layer in layers.csv (written with training.diagnostics); a
    damaged file is a note."""
    notes: list[str] = []
    rows = loading.read_layers(path, notes)
    if notes:
        return f'<p class="note">{_e("; ".join(notes))}</p>'
    if not rows:
        return ""
    last = max(r["step"] for r in rows)
    latest = [r for r in rows if r["step"] == last]
    columns = ["depth", "layer", "activation", *(c for c in STATISTICS if c in rows[0])]
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(_short(r.get(c)))}</td>" for c in columns) + "</tr>" for r in latest
    )
    return (
        f"<p><b>Layer diagnostics</b> (layers.csv, epoch {latest[0]['epoch'] + 1}, step {last})</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _short(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
