"""Reading `.npz` files: the one reader for calibration sets, `calibrate build` sources and QAT
training data.

It refuses what numpy would half-read or read unsafely: pickled objects, a single `.npy` array
saved under an `.npz` name (unless the caller takes one), and anything without a zip header;
each refusal is one line naming the file and the fix.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .errors import UserError, one_line

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK"
BUILD_HINT = "fix the path or build the set with 'quantgate calibrate build'"


def read_npz(
    path: str | Path, *, what: str = "calibration set", missing_fix: str = BUILD_HINT, lone_npy: bool = False
) -> dict[str, np.ndarray]:
    """Every array of the `.npz` at `path`, by key, in the file's order.

    `what` and `missing_fix` word the not-found message for the caller ("calibration set",
    "training data"). With `lone_npy`, a single `.npy` array is read too, whatever the file is
    named, and comes back under the key "".
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: {what} not found; {missing_fix}")
    kinds, header, save = (
        (".npy or .npz", "no .npy or zip header", "numpy.save / numpy.savez")
        if lone_npy
        else (".npz", "no zip header", "numpy.savez")
    )
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
        if magic.startswith(NPY_MAGIC):
            if not lone_npy:
                raise UserError(
                    f"{path}: a single .npy array, not an .npz; save one array per input "
                    "name with numpy.savez(path, <input_name>=array)"
                )
            return {"": np.load(path, allow_pickle=False)}
        if not magic.startswith(ZIP_MAGIC):
            raise UserError(f"{path}: not a readable {kinds} ({header}); save it with {save}")
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except UserError:
        raise
    except ValueError as e:
        # numpy says "pickle" both for object arrays and for content it does not recognise
        if "pickle" in str(e).lower():
            raise UserError(f"{path}: holds Python objects (pickled); save plain numeric arrays") from None
        raise UserError(f"{path}: not a readable {kinds} ({one_line(e, 200)}); save it with {save}") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise UserError(f"{path}: not a readable {kinds} ({type(e).__name__}); save it with {save}") from None
