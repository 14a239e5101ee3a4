"""Calibration sets built from what a project already has: a parquet feature cache, .npy/.npz
arrays or a folder of images; and checks of existing sets against a model.

`build_set` owns the order of work and the report, `sources` turns a source into rows
(`images` holds the image options and decoding it uses), `layout` fits rows to an input's
dims, `quantgate.registry_edit` records the set in a registry row without reformatting the
file. The set's contract itself lives in `quantgate.sampleset`.
"""

from typing import Any

from .images import ImageOptions

__all__ = ["DEFAULT_N", "BuildOptions", "ImageOptions", "build_set", "check_set"]


def __getattr__(name: str) -> Any:  # the builder loads onnx: only when a set is built or checked
    if name in ("DEFAULT_N", "BuildOptions", "build_set", "check_set"):
        from . import build

        return getattr(build, name)
    raise AttributeError(name)
