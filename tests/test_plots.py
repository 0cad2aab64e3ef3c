"""`compare --plot`: small multiples that read (whole labels, stable colours, seed bands)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest
from test_compare import spec, write_run
from typer.testing import CliRunner

from dnnlab.cli.main import app
from dnnlab.results import compare as cmp
from dnnlab.results import formats as fmt
from dnnlab.results.plots import learning_curves_figure

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

runner = CliRunner()
LONG = ("relu", "elu", "selu", "leaky_relu", "tanh")


@pytest.fixture
def long_runs(tmp_path: Path) -> list[Path]:
    """Five runs whose differing keys have long names and values."""
    runs = []
    for i, activation in enumerate(LONG):
        config = spec(
            **{
                "model.activation": {"type": activation, "alpha_for_a_really_long_key_name": 0.1 * i},
                "model.initializer": {"type": "variance_scaling", "scale_with_another_long_name": 1.0 + i},
            }
        )
        runs.append(
            write_run(tmp_path, f"activation-{activation}", config, [0.9 - i / 20, 0.6, 0.5 + i / 50])
        )
    return runs


def _inside(inner, outer) -> bool:
    return (
        inner.x0 >= outer.x0 - 1
        and inner.x1 <= outer.x1 + 1
        and inner.y0 >= outer.y0 - 1
        and inner.y1 <= outer.y1 + 1
    )


def test_every_legend_label_is_whole_and_the_axes_keep_their_width(long_runs):
    fig = learning_curves_figure(cmp.compare(long_runs), ["loss", "accuracy", "lr"])
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        box = fig.bbox
        (legend,) = fig.legends
        texts = [t.get_text().replace("\n", " ") for t in legend.get_texts()]
        assert sorted(texts) == sorted(fmt.run_labels(cmp.compare(long_runs)).values())
        for text in legend.get_texts():
            assert _inside(text.get_window_extent(renderer), box), text.get_text()
        visible = [ax for ax in fig.axes if ax.get_visible()]
        assert len(visible) == 3
        for ax in visible:
            assert ax.get_window_extent(renderer).width > 0.18 * box.width
            assert not _overlaps(ax.get_window_extent(renderer), legend.get_window_extent(renderer))
    finally:
        plt.close(fig)


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _colours(comparison) -> dict[str, tuple]:
    fig = learning_curves_figure(comparison)
    try:
        (legend,) = fig.legends
        return {t.get_text(): h.get_color() for t, h in zip(legend.get_texts(), legend.legend_handles)}
    finally:
        plt.close(fig)


def test_a_run_keeps_its_colour_whichever_metric_ranks_it(long_runs):
    ranked, reversed_ranking = cmp.compare(long_runs), cmp.compare(long_runs)
    reversed_ranking.runs.reverse()  # as another metric might rank them
    assert _colours(ranked) == _colours(reversed_ranking)
    assert len(set(_colours(ranked).values())) == len(long_runs)


def test_a_learning_rate_the_schedule_overrides_is_left_out_of_the_label(tmp_path):
    piecewise = {"type": "piecewise", "boundaries": [2], "values": [0.01, 0.001]}
    runs = [
        write_run(
            tmp_path, "a", spec(**{"training.optimizer.learning_rate": 0.1, "training.schedule": piecewise})
        ),
        write_run(tmp_path, "b", spec(**{"training.optimizer.learning_rate": 0.01})),
    ]
    labels = fmt.run_labels(cmp.compare(runs))
    assert "learning_rate" not in labels[runs[0]]
    assert "learning_rate=0.01" in labels[runs[1]]


def test_seed_groups_draw_a_mean_line_with_a_band(tmp_path):
    runs = [
        write_run(
            tmp_path,
            f"{act}{seed}",
            spec(seed=seed, **{"model.activation": {"type": act}}),
            [0.9, 0.5 + seed / 10],
        )
        for act in ("relu", "tanh")
        for seed in (1, 2)
    ]
    fig = learning_curves_figure(cmp.compare(runs, group_seeds=True), ["loss"])
    try:
        (legend,) = fig.legends
        texts = [t.get_text() for t in legend.get_texts()]
        assert len(texts) == 2 and all("2 seeds, mean ± std" in t for t in texts), texts
        ax = fig.axes[0]
        assert len(ax.collections) == 2  # one ±std band per group
        val_means = [line.get_ydata()[-1] for line in ax.lines if line.get_linestyle() == "-"]
        assert pytest.approx(sorted(val_means)) == [0.65, 0.65]
    finally:
        plt.close(fig)


def test_cli_plot_metrics_and_log_y(long_runs, tmp_path):
    out = tmp_path / "curves.png"
    result = runner.invoke(
        app, ["compare", *map(str, long_runs), "--plot", str(out), "--plot-metrics", "val_loss,lr", "--log-y"]
    )
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_unknown_plot_metric_is_one_line_and_writes_nothing(long_runs, tmp_path):
    out = tmp_path / "curves.png"
    result = runner.invoke(
        app, ["compare", *map(str, long_runs), "--plot", str(out), "--plot-metrics", "loss,f1"]
    )
    assert result.exit_code == 2
    assert "f1" in result.stderr and "accuracy" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
    assert not out.exists()
