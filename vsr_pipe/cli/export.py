"""``vsr-pipe export``: a shipped model as ONNX (and a TensorRT plan where TensorRT is installed)."""

from __future__ import annotations

import click

from ..config import Scale
from .errors import user_errors
from .options import model, output, scale


@click.command(name="export")
@model("Which model.", default="espcn", type=click.Choice(["espcn", "irn"]))
@scale(
    "espcn: 2, 3 or 4. irn: a factor; the pair of graphs written serves its whole band, (1, 2] or (2, 4].",
    required=True,
)
@output("ONNX file (irn: a prefix for -down.onnx/-up.onnx); default: the engine cache.", required=False, default=None)
def export_cmd(model: str, scale: str, output: str | None) -> None:
    """Write a shipped model as ONNX (dynamic batch, height and width)."""
    from ..export import export_espcn, export_irn, tensorrt_plan

    with user_errors():
        parsed = Scale.parse(scale)
        if model == "irn":
            for path in export_irn(parsed, output):
                click.echo(str(path))
            return
        exported = export_espcn(parsed, output)
        click.echo(str(exported.path))
        plan = tensorrt_plan(exported)  # the serialized engine too, where TensorRT is installed
        if plan:
            click.echo(f"{plan[0]} ({'reused' if plan[1] else 'built'})")
