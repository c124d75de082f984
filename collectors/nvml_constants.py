"""NVML's constants, error codes and exception classes for the pynvml stand-in.

Values and class names are those of nvidia-ml-py (`NVML_ERROR_NOT_SUPPORTED == 3`,
`NVMLError(3)` is an `NVMLError_NotSupported`); a test checks them against the real module.
"""

from __future__ import annotations

__all__ = ["CONSTANTS", "ERROR_CLASSES", "GPU_IS_LOST", "NOT_SUPPORTED", "NVMLError", "TIMEOUT"]

_CONSTANTS = {
    "NVML_SUCCESS": 0,
    "NVML_TEMPERATURE_GPU": 0,
    "NVML_CLOCK_GRAPHICS": 0, "NVML_CLOCK_SM": 1, "NVML_CLOCK_MEM": 2, "NVML_CLOCK_VIDEO": 3,
    "NVML_MEMORY_ERROR_TYPE_CORRECTED": 0, "NVML_MEMORY_ERROR_TYPE_UNCORRECTED": 1,
    "NVML_VOLATILE_ECC": 0, "NVML_AGGREGATE_ECC": 1,
    "NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS": 0,
    "NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR": 1,
    "NVML_DEVICE_MIG_DISABLE": 0, "NVML_DEVICE_MIG_ENABLE": 1,
    "NVML_FEATURE_DISABLED": 0, "NVML_FEATURE_ENABLED": 1,
    "NVML_VALUE_TYPE_DOUBLE": 0, "NVML_VALUE_TYPE_UNSIGNED_INT": 1, "NVML_VALUE_TYPE_UNSIGNED_LONG": 2,
    "NVML_VALUE_TYPE_UNSIGNED_LONG_LONG": 3, "NVML_VALUE_TYPE_SIGNED_LONG_LONG": 4,
    "NVML_VALUE_TYPE_SIGNED_INT": 5, "NVML_VALUE_TYPE_UNSIGNED_SHORT": 6,
    "NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL": 38,
    "NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL": 45,
    "NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL": 52,
    "NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL": 59,
    "NVML_FI_DEV_MEMORY_TEMP": 82,
    "NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION": 83,
    "nvmlEventTypeSingleBitEccError": 0x1, "nvmlEventTypeDoubleBitEccError": 0x2,
    "nvmlEventTypePState": 0x4, "nvmlEventTypeXidCriticalError": 0x8, "nvmlEventTypeClock": 0x10,
    "nvmlEventTypeNone": 0x0,
    "nvmlClocksEventReasonGpuIdle": 0x1, "nvmlClocksEventReasonApplicationsClocksSetting": 0x2,
    "nvmlClocksEventReasonSwPowerCap": 0x4, "nvmlClocksEventReasonHwSlowdown": 0x8,
    "nvmlClocksEventReasonSyncBoost": 0x10, "nvmlClocksEventReasonSwThermalSlowdown": 0x20,
    "nvmlClocksEventReasonHwThermalSlowdown": 0x40, "nvmlClocksEventReasonHwPowerBrakeSlowdown": 0x80,
    "nvmlClocksEventReasonDisplayClockSetting": 0x100, "nvmlClocksEventReasonNone": 0x0,
}
_ERRORS = {
    "UNINITIALIZED": (1, "Uninitialized"), "INVALID_ARGUMENT": (2, "Invalid Argument"),
    "NOT_SUPPORTED": (3, "Not Supported"), "NO_PERMISSION": (4, "Insufficient Permissions"),
    "ALREADY_INITIALIZED": (5, "Already Initialized"), "NOT_FOUND": (6, "Not Found"),
    "INSUFFICIENT_SIZE": (7, "Insufficient Size"), "INSUFFICIENT_POWER": (8, "Insufficient External Power"),
    "DRIVER_NOT_LOADED": (9, "Driver Not Loaded"), "TIMEOUT": (10, "Timeout"),
    "IRQ_ISSUE": (11, "Interrupt Request Issue"), "LIBRARY_NOT_FOUND": (12, "NVML Shared Library Not Found"),
    "FUNCTION_NOT_FOUND": (13, "Function Not Found"), "CORRUPTED_INFOROM": (14, "Corrupted infoROM"),
    "GPU_IS_LOST": (15, "GPU is lost"), "RESET_REQUIRED": (16, "GPU requires restart"),
    "OPERATING_SYSTEM": (17, "The operating system has blocked the request."),
    "LIB_RM_VERSION_MISMATCH": (18, "RM has detected an NVML/RM version mismatch."),
    "IN_USE": (19, "In Use"), "MEMORY": (20, "Insufficient Memory"), "NO_DATA": (21, "No Data"),
    "UNKNOWN": (999, "Unknown Error"),
}
for _name, (_code, _) in _ERRORS.items():
    _CONSTANTS[f"NVML_ERROR_{_name}"] = _code


class NVMLError(Exception):
    """As pynvml's: `NVMLError(code)` returns the subclass for that code; `.value` is the code."""

    _valClassMapping: dict[int, type] = {}
    _errcode_to_string = {code: text for code, text in _ERRORS.values()}

    def __new__(cls, value=None):
        if cls is NVMLError:
            cls = NVMLError._valClassMapping.get(value, cls)
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __init__(self, value=None) -> None:
        super().__init__(value)

    def __str__(self) -> str:
        return self._errcode_to_string.get(self.value, f"NVML Error with code {self.value}")

    def __eq__(self, other) -> bool:
        return isinstance(other, NVMLError) and self.value == other.value

    __hash__ = Exception.__hash__


def _make_error_classes() -> dict[str, type]:
    out = {}
    for name, (code, _) in _ERRORS.items():
        cls_name = "NVMLError_" + "".join(p.capitalize() for p in name.split("_"))

        def new(cls, *args, _code=code):
            return NVMLError.__new__(cls, _code)

        cls = type(cls_name, (NVMLError,), {"__new__": new})
        cls.__module__ = __name__
        NVMLError._valClassMapping[code] = cls
        out[cls_name] = cls
    return out


_ERROR_CLASSES = _make_error_classes()
globals().update(_ERROR_CLASSES)

NOT_SUPPORTED = _CONSTANTS["NVML_ERROR_NOT_SUPPORTED"]
GPU_IS_LOST = _CONSTANTS["NVML_ERROR_GPU_IS_LOST"]
TIMEOUT = _CONSTANTS["NVML_ERROR_TIMEOUT"]

CONSTANTS = _CONSTANTS
ERROR_CLASSES = _ERROR_CLASSES
