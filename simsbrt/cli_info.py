"""``simsbrt info``: version, the backend auto-selection picks and why, and the GPUs seen."""
from __future__ import annotations

import platform

import simsbrt
from simsbrt.backend import ENV_VAR, probe_cuda, resolve_backend


def info_dict(requested: str | None = None) -> dict:
    probe = probe_cuda()
    backend = resolve_backend(requested)
    import numba
    import numpy

    return {
        "simsbrt_version": simsbrt.__version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "numba": numba.__version__,
        "backend": backend.name,
        "device": backend.device,
        "backend_reason": backend.reason,
        "gpu_devices": list(probe.devices),
        "gpu_detail": probe.detail,
    }


def run_info(args) -> int:
    info = info_dict(args.backend)
    if args.json:
        from simsbrt.cli import print_json

        print_json(info)
        return 0
    print(f"simsbrt {info['simsbrt_version']} (Python {info['python']}, numpy {info['numpy']}, numba {info['numba']})")
    print(f"backend: {info['backend']} on {info['device']} -- {info['backend_reason']}")
    if info["gpu_devices"]:
        print("GPU devices:")
        for dev in info["gpu_devices"]:
            print(f"  {dev}")
    else:
        print(f"GPU devices: none ({info['gpu_detail']})")
    return 0


def register(sub) -> None:
    p = sub.add_parser("info", help="version, chosen backend and GPU devices")
    p.add_argument("--backend", choices=["auto", "cpu", "cuda", "cudasim"], default=None,
                   help=f"backend to resolve (default: ${ENV_VAR} or auto)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_info)
