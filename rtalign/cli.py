"""The `rtalign` command line: parse options, call the library, report. No logic lives here."""
from __future__ import annotations

import json
import logging
import sys

import click

from .errors import RtalignError
from .models import MODEL_NAMES
from .models.session import DEVICES
from .effects import STYLES
from .render import DRAW_STYLES


class _Group(click.Group):
    """Turns the package's own errors into one line on stderr and exit code 1, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RtalignError as e:
            raise click.ClickException(str(e)) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


def model_option(f):
    f = click.option("--model", "-m", default="resnet", show_default=True,
                     help=f"landmark model: {', '.join(MODEL_NAMES)}, or a .onnx/.npz file")(f)
    f = click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True)(f)
    return click.option("--threads", type=click.IntRange(1, 64), default=2, show_default=True,
                        help="inference threads")(f)


@click.group(cls=_Group)
@click.option("-v", "--verbose", is_flag=True, help="log what is loaded and chosen")
def main(verbose: bool):
    """Real-time 68-point face alignment."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(name)s: %(message)s")


@main.command("eval")
@model_option
@click.option("--data", type=click.Path(), default=None,
              help="folder of NAME.jpg + NAME.pts [default: 300-W test_common]")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object instead of a table")
@click.option("--runs", type=click.IntRange(1), default=200, show_default=True, help="timing runs")
def eval_cmd(model, device, threads, data, as_json, runs):
    """Accuracy (NME, MSE@256, FR@10, AUC@10) and ms/face on an annotated folder."""
    from .data import data_root
    from .evaluate import evaluate
    from .models import load_model

    folder = data or data_root() / "test_common"
    lm = load_model(model, device, threads)
    result = {"model": model, "data": str(folder), "threads": threads, **evaluate(lm, folder, runs, progress=not as_json)}
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{'model':10} {'n':>5} {'NME %':>7} {'MSE@256':>8} {'FR@10 %':>8} {'AUC@10':>7} {'ms/face':>8}")
    click.echo(f"{model:10} {result['n']:5d} {result['nme']:7.3f} {result['mse256']:8.2f} "
               f"{result['fr10']:8.2f} {result['auc10']:7.4f} {result['ms_per_face']:8.3f}")


def effect_options(f):
    """--lip-color/--eye-color and friends, shared by image, video and webcam."""
    for opt in reversed([
        click.option("--lip-color", default=None, help="recolour lips: CSS name or #rrggbb"),
        click.option("--lip-strength", type=click.FloatRange(0, 1), default=0.6, show_default=True),
        click.option("--eye-color", default=None, help="recolour irises: CSS name or #rrggbb"),
        click.option("--eye-strength", type=click.FloatRange(0, 1), default=0.6, show_default=True),
        click.option("--style", type=click.Choice(STYLES), default="natural", show_default=True,
                     help="natural: texture kept; flat: the study's polygon fill"),
    ]):
        f = opt(f)
    return f


def make_effects(lip_color, lip_strength, eye_color, eye_strength, style) -> list:
    from .effects import Recolor
    if lip_color is None and eye_color is None:
        return []
    return [Recolor(lip_color, eye_color, lip_strength, eye_strength, style)]


@main.command("image")
@click.argument("src", type=click.Path())
@click.argument("dst", type=click.Path())
@model_option
@click.option("--draw", type=click.Choice(DRAW_STYLES), default="points", show_default=True)
@click.option("--max-faces", type=click.IntRange(1), default=4, show_default=True)
@effect_options
def image_cmd(src, dst, model, device, threads, draw, max_faces, **effects):
    """Draw the landmarks of every face found in photo SRC into DST (a .png DST is lossless)."""
    from .image import process_image

    n = process_image(src, dst, model=model, device=device, threads=threads, draw=draw, max_faces=max_faces,
                      effects=make_effects(**effects))
    click.echo(f"{n} face(s) → {dst}")
