"""The pynvml stand-in matches nvidia-ml-py: constants, error classes, return shapes."""

from __future__ import annotations

import pynvml
import pytest

from dcops.collectors import nvml_standin
from dcops.collectors.nvml_constants import CONSTANTS, ERROR_CLASSES
from dcops.collectors.nvml_standin import NvmlStandin, StaticBackend, typical_gpu


def test_constants_have_pynvmls_values():
    for name, value in CONSTANTS.items():
        assert getattr(pynvml, name) == value, name
        assert getattr(NvmlStandin, name) == value


def test_error_classes_mirror_pynvml():
    for name, cls in ERROR_CLASSES.items():
        real = getattr(pynvml, name)
        assert cls().value == real().value, name
        assert getattr(nvml_standin, name) is cls and getattr(NvmlStandin, name) is cls
    e = nvml_standin.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
    assert type(e).__name__ == "NVMLError_GpuIsLost" and isinstance(e, nvml_standin.NVMLError)
    assert str(e) == str(pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)) == "GPU is lost"
    assert nvml_standin.NVMLError(4242).value == 4242  # unknown codes still construct


def test_the_agents_calls_exist_in_pynvml():
    """Every NVML function the stand-in offers is a real pynvml function (no invented API)."""
    names = [n for n in dir(NvmlStandin) if n.startswith("nvml") and callable(getattr(NvmlStandin, n))]
    assert len(names) > 25
    for n in names:
        assert callable(getattr(pynvml, n, None)), f"{n} is not in pynvml"


def test_shapes_and_units_like_pynvml():
    nvml = NvmlStandin(StaticBackend([typical_gpu(0)]))
    with pytest.raises(nvml_standin.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetCount()
    nvml.nvmlInit()
    h = nvml.nvmlDeviceGetHandleByIndex(0)
    assert nvml.nvmlDeviceGetPowerUsage(h) == 512250  # milliwatts
    m = nvml.nvmlDeviceGetMemoryInfo(h)
    assert m.total == m.free + m.used
    fv = nvml.nvmlDeviceGetFieldValues(h, [pynvml.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION, 9999])
    assert fv[0].nvmlReturn == 0 and fv[0].value.ullVal == int(3.6e12)  # millijoules
    assert fv[1].nvmlReturn == pynvml.NVML_ERROR_NOT_SUPPORTED
    assert nvml.nvmlDeviceGetPciInfo(h).busId == b"00000000:18:00.0"
    with pytest.raises(nvml_standin.NVMLError_NotSupported):
        nvml.nvmlDeviceGetFanSpeed(h)
    with pytest.raises(nvml_standin.NVMLError_InvalidArgument):
        nvml.nvmlDeviceGetHandleByIndex(1)
