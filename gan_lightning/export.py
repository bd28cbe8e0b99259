"""`python scripts/export_generator.py ckpt_path=PATH|model=NAME [out=generator]`: a generator on its own,
as a folder that any tool, `load_generator` and a model hub take (config.json + model.safetensors), or as one
torch file when out ends in .pt. `dtype=float16` halves the weights' size. An earlier export in `out` is
replaced only with `overwrite=true` (its config.json and model.safetensors; every other file there stays)."""

import sys
from collections.abc import Sequence

from gan_lightning import checks
from gan_lightning import tool_config as conf
from gan_lightning.errors import UserError, fail
from gan_lightning.pretrained import export


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if conf.wants_help(args):
        print(__doc__)
        return
    try:
        cfg = conf.load_config(
            {"ckpt_path": None, "model": None, "out": "generator", "dtype": "float32", "overwrite": False}, args)
        source, out = conf.generator_source(cfg), checks.text(cfg, "out")
        dtype, overwrite = checks.text(cfg, "dtype", ["float32", "float16"]), checks.boolean(cfg, "overwrite")
        path = export(source, out, dtype, overwrite)
    except UserError as e:
        fail(e)
    print(f"wrote {path}")
