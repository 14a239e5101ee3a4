"""The CPU a figure came from: its model, its int8 features, and how ONNX Runtime's integer
kernels actually compute on it.

Features come from the `cpuid` instruction where it can be executed (x86-64 Linux), else from
/proc/cpuinfo: under `qemu-x86_64 -cpu Haswell` the file still lists the host's flags while
`cpuid` answers as the emulated CPU. The kernel family is measured, not guessed: a two-op probe
model multiplies full-range u8 activations by s8 weights and shows whether the products'
pair sums saturate (AVX2 without VNNI) or are exact (VNNI, AMX, and CPUs without the 16-bit path).
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import platform
import sys
from functools import lru_cache
from pathlib import Path

_X86_INT8_FLAGS = {
    "avx2": "avx2",
    "avx512f": "avx512f",
    "avx512bw": "avx512bw",
    "avx512_vnni": "avx512_vnni",
    "avx_vnni": "avx_vnni",
    "amx_int8": "amx_int8",
    "amx_tile": "amx_tile",
}
_ARM_INT8_FLAGS = {"asimddp": "dotprod", "i8mm": "i8mm", "sve": "sve"}

# x86-64 System V: cpuid(leaf=edi, subleaf=esi) -> [rdx] = eax, ebx, ecx, edx (rbx saved).
_CPUID_CODE = bytes(
    [
        0x53,  # push rbx
        0x49,
        0x89,
        0xD0,  # mov r8, rdx
        0x89,
        0xF8,  # mov eax, edi
        0x89,
        0xF1,  # mov ecx, esi
        0x0F,
        0xA2,  # cpuid
        0x41,
        0x89,
        0x00,  # mov [r8], eax
        0x41,
        0x89,
        0x58,
        0x04,  # mov [r8+4], ebx
        0x41,
        0x89,
        0x48,
        0x08,  # mov [r8+8], ecx
        0x41,
        0x89,
        0x50,
        0x0C,  # mov [r8+12], edx
        0x5B,  # pop rbx
        0xC3,  # ret
    ]
)


def _cpuid_features() -> list[str] | None:
    """int8-relevant x86 features as `cpuid` reports them, or None where it cannot be run."""
    if platform.machine().lower() not in ("x86_64", "amd64") or not sys.platform.startswith("linux"):
        return None
    try:
        buf = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except (OSError, ValueError):
        return None  # a hardened kernel may refuse writable+executable memory
    try:
        buf.write(_CPUID_CODE)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
        fn = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32))(addr)
        regs = (ctypes.c_uint32 * 4)()

        def cpuid(leaf: int, sub: int = 0) -> tuple[int, int, int, int]:
            fn(leaf, sub, regs)
            return regs[0], regs[1], regs[2], regs[3]

        max_leaf = cpuid(0)[0]
        if max_leaf < 7:
            return []
        _, b7, c7, d7 = cpuid(7, 0)
        a71 = cpuid(7, 1)[0]
        bits = {
            "avx2": (b7, 5),
            "avx512f": (b7, 16),
            "avx512bw": (b7, 30),
            "avx512_vnni": (c7, 11),
            "amx_tile": (d7, 24),
            "amx_int8": (d7, 25),
            "avx_vnni": (a71, 4),
        }
        return sorted(name for name, (reg, bit) in bits.items() if reg >> bit & 1)
    finally:
        with contextlib.suppress(BufferError):
            buf.close()


def _proc_cpuinfo() -> tuple[str | None, set[str]]:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None, set()
    model: str | None = None
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and value.strip() and model is None:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return model, flags


@lru_cache(maxsize=1)
def cpu_info() -> dict:
    """CPU model and the int8-relevant instruction-set features this machine has."""
    model, flags = _proc_cpuinfo()
    arm = platform.machine().lower() in ("aarch64", "arm64")
    table = _ARM_INT8_FLAGS if arm else _X86_INT8_FLAGS
    features = _cpuid_features()
    source = "cpuid"
    if features is None:
        features = sorted(name for flag, name in table.items() if flag in flags)
        source = "/proc/cpuinfo"
    if sys.platform == "darwin" and platform.machine() == "arm64":
        features, source = ["dotprod"], "platform"  # every Apple silicon core has the Armv8.4 dot product
    return {
        "model": model or platform.processor() or platform.machine(),
        "arch": platform.machine(),
        "logical_cores": os.cpu_count(),
        "int8_features": features,
        "features_from": source,
        "vnni": any(f in features for f in ("avx512_vnni", "avx_vnni")),
    }


def _probe_model() -> bytes:
    """u8 activations of 255 times s8 weights of 127 over K = 64: the exact sum is 2,072,640; a
    16-bit saturating pair sum gives 32 * 32,767 = 1,048,544."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    k = 64
    w = numpy_helper.from_array(np.full((k, 16), 127, np.int8), "w")
    x = helper.make_tensor_value_info("x", TensorProto.UINT8, [1, k])
    y = helper.make_tensor_value_info("y", TensorProto.INT32, [1, 16])
    g = helper.make_graph([helper.make_node("MatMulInteger", ["x", "w"], ["y"])], "probe", [x], [y], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


@lru_cache(maxsize=1)
def int8_kernels() -> dict:
    """How ONNX Runtime's u8 x s8 integer matmul computes on this CPU, measured by a probe."""
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 4
    so.intra_op_num_threads = 1
    try:
        sess = ort.InferenceSession(_probe_model(), so, providers=["CPUExecutionProvider"])
        y = int(sess.run(None, {"x": np.full((1, 64), 255, np.uint8)})[0][0, 0])
    except Exception as e:  # an ORT without MatMulInteger: say so rather than guess
        return {"u8s8": "unknown", "family": "unknown", "probe": f"failed: {type(e).__name__}"}
    exact = 255 * 127 * 64
    u8s8 = "exact" if y == exact else ("saturating" if y == 32 * 32767 else f"other ({y})")
    feats = cpu_info()["int8_features"]
    if cpu_info()["arch"].lower() in ("aarch64", "arm64"):
        family = "arm64 " + ("i8mm" if "i8mm" in feats else "dotprod" if "dotprod" in feats else "neon")
    elif u8s8 == "saturating":
        family = "avx512bw (16-bit pair sums)" if "avx512bw" in feats and "avx2" in feats else "avx2 (16-bit pair sums)"
    elif "amx_int8" in feats:
        family = "amx"
    elif "avx512_vnni" in feats:
        family = "avx512_vnni"
    elif "avx_vnni" in feats:
        family = "avx_vnni"
    else:
        family = "exact (no 16-bit pair-sum path)"
    return {"u8s8": u8s8, "family": family, "probe": f"MatMulInteger 255x127 over 64: {y} (exact {exact})"}
