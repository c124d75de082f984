"""The NVML agent against the pynvml stand-in: fields, units, identity and per-call errors."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from dcops.collectors.accel_common import readings
from dcops.collectors.nvml_agent import READS, NvmlAgent, NvmlUnavailable
from dcops.collectors.nvml_standin import (ECC_CALLS, NvmlStandin, StaticBackend, typical_gpu)
from dcops.catalogue import METRICS

T0 = 1_700_000_000_000_000_000


def _agent(gpus, inventory=None, host="gpu-node-07", **backend_kw):
    nvml = NvmlStandin(StaticBackend(gpus, **backend_kw))
    return NvmlAgent(nvml, host, inventory=inventory, clock=lambda: T0), nvml


def _row(batch, i):
    return {k: float(v[i]) for k, v in batch.fields.items()}


def test_every_read_fills_catalogue_metrics():
    for r in READS:
        for m in r.metrics:
            assert m in METRICS, f"{r.call} fills {m}, which is not catalogued"


def test_poll_reads_all_fields_in_canonical_units():
    agent, _ = _agent([typical_gpu(0), typical_gpu(1)])
    ids = agent.start()
    assert [g.index for g in ids] == [0, 1]
    assert ids[0].uuid.startswith("GPU-") and ids[0].driver_version == "550.90.07"
    assert ids[0].pci_bus_id == "00000000:18:00.0" and ids[0].mig_mode == 0
    assert ids[0].model == "NVIDIA H100 80GB HBM3" and ids[0].vbios_version == "96.00.89.00.01"
    batch, events = agent.poll()
    assert events == [] and batch.measurement == "accel" and len(batch) == 2
    r = _row(batch, 1)
    assert r["accel_up"] == 1.0
    assert r["accel_temp_degc"] == 62.0 and r["accel_mem_temp_degc"] == 69.0
    assert r["accel_power_w"] == pytest.approx(512.25) and r["accel_power_limit_w"] == 700.0
    assert r["accel_energy_j_total"] == pytest.approx(3.6e9 + 1)  # read in mJ, stored in J
    assert r["accel_sm_clock_mhz"] == 1980.0 and r["accel_mem_clock_mhz"] == 2619.0
    assert r["accel_util_pct"] == 87.0 and r["accel_mem_util_pct"] == 41.0
    assert r["accel_mem_used_bytes"] == 61 * 2**30 and r["accel_mem_total_bytes"] == 80 * 2**30
    assert r["accel_ecc_corrected_total"] == 12.0 and r["accel_remapped_rows_correctable_total"] == 1.0
    assert r["accel_pcie_link_gen"] == 5.0 and r["accel_pcie_link_width"] == 16.0
    assert r["accel_pcie_replay_total"] == 3.0 and r["accel_nvlink_crc_errors_total"] == 0.0
    assert math.isnan(r["accel_fan_pct"])  # SXM boards have no fan: NOT_SUPPORTED, skipped
    assert math.isnan(r["accel_retired_pages_total"])  # Hopper remaps rows instead
    assert list(batch.tags["device"]) == ["gpu-node-07"] * 2
    assert list(batch.tags["accel"]) == ["0", "1"] and list(batch.tags["site"]) == ["", ""]
    assert list(batch.tags["uuid"]) == [g.uuid for g in ids]
    assert set(batch.tags["vendor"]) == {"nvidia"}
    assert (batch.time_ns == T0).all()


def test_inventory_tags_when_the_host_is_known(small_inventory):
    agent, _ = _agent([typical_gpu(i) for i in range(4)], inventory=small_inventory, host="R1-02-S01")
    agent.start()
    batch, _ = agent.poll()
    assert set(batch.tags["rack"]) == {"R1-02"} and set(batch.tags["row"]) == {"R1"}
    assert set(batch.tags["site"]) == {"test"} and set(batch.tags["model"]) == {"H100-SXM5-80GB"}
    assert list(batch.tags["accel"]) == ["0", "1", "2", "3"]


def test_throttle_reasons_decoded_and_flags():
    gpu = typical_gpu(0)
    gpu.values["accel_throttle_reasons"] = float(0x4 | 0x40)  # sw power cap + hw thermal
    agent, _ = _agent([gpu])
    batch, _ = agent.poll()
    r = _row(batch, 0)
    assert r["accel_thermal_throttle"] == 1.0 and r["accel_power_throttle"] == 1.0
    rec = [x for x in readings(batch) if x["metric"] == "accel_throttle_reasons"][0]
    assert rec["reasons"] == ["sw_power_cap", "hw_thermal_slowdown"]


def test_ecc_not_supported_skips_only_ecc():
    gpus = [typical_gpu(0), typical_gpu(1, unsupported=set(ECC_CALLS))]
    agent, nvml = _agent(gpus)
    batch, events = agent.poll()
    ok, no_ecc = _row(batch, 0), _row(batch, 1)
    assert ok["accel_ecc_corrected_total"] == 12.0
    for m in ("accel_ecc_volatile_corrected", "accel_ecc_corrected_total", "accel_remapped_rows_pending"):
        assert math.isnan(no_ecc[m])
    assert no_ecc["accel_temp_degc"] == 61.0 + 1 and no_ecc["accel_up"] == 1.0
    assert agent.errors == 0 and events == []
    # NOT_SUPPORTED is remembered: the next poll does not ask again.
    calls = nvml.calls
    agent.poll()
    per_poll = nvml.calls - calls
    agent.poll()
    assert nvml.calls - calls == 2 * per_poll


def test_mig_enabled_reports_mode_and_skips_whole_gpu_utilisation():
    agent, _ = _agent([typical_gpu(0, mig_mode=1)])
    ids = agent.start()
    assert ids[0].mig_mode == 1
    batch, _ = agent.poll()
    r = _row(batch, 0)
    assert r["accel_mig_mode"] == 1.0 and math.isnan(r["accel_util_pct"])
    assert r["accel_power_w"] == pytest.approx(512.25)


def test_gpu_lost_mid_poll_is_an_event_and_others_still_report():
    gpus = [typical_gpu(i) for i in range(3)]
    agent, _ = _agent(gpus)
    agent.poll()
    gpus[1].lose_after_calls = 5  # answers the first few calls of the next poll, then falls off
    batch, events = agent.poll()
    assert [e.kind for e in events] == ["accel_lost"]
    ev = events[0]
    assert ev.severity == "critical" and ev.target["accel"] == "1" and ev.attributes["uuid"] == gpus[1].uuid
    assert _row(batch, 1)["accel_up"] == 0.0 and math.isnan(_row(batch, 1)["accel_temp_degc"])
    assert _row(batch, 0)["accel_up"] == 1.0 and _row(batch, 2)["accel_temp_degc"] == 63.0
    # Still lost: no second event. Back again: accel_recovered.
    _, events = agent.poll()
    assert events == []
    gpus[1].lost = False
    batch, events = agent.poll()
    assert [e.kind for e in events] == ["accel_recovered"] and _row(batch, 1)["accel_up"] == 1.0


@pytest.mark.parametrize("code", [9, 12])  # DRIVER_NOT_LOADED, LIBRARY_NOT_FOUND
def test_driver_not_loaded_is_a_clear_error(code):
    agent, _ = _agent([typical_gpu(0)], init_error=code)
    with pytest.raises(NvmlUnavailable, match="driver"):
        agent.start()


def test_other_nvml_errors_are_logged_with_context_and_counted(caplog):
    gpu = typical_gpu(0)
    agent, nvml = _agent([gpu, typical_gpu(1)])
    agent.start()
    real = nvml.nvmlDeviceGetPowerUsage

    def flaky(h):
        if h.index == 0:
            raise nvml.NVMLError(nvml.NVML_ERROR_UNKNOWN)
        return real(h)

    nvml.nvmlDeviceGetPowerUsage = flaky
    with caplog.at_level(logging.WARNING):
        batch, events = agent.poll()
        agent.poll()
    assert agent.errors == 2 and events == []
    assert math.isnan(_row(batch, 0)["accel_power_w"]) and _row(batch, 0)["accel_temp_degc"] == 61.0
    assert _row(batch, 1)["accel_power_w"] == pytest.approx(512.25)
    msgs = [r.getMessage() for r in caplog.records if "nvmlDeviceGetPowerUsage" in r.getMessage()]
    assert len(msgs) == 1  # logged once, not every poll
    assert gpu.uuid in msgs[0] and "GPU 0" in msgs[0] and "Unknown Error" in msgs[0]


def test_readings_for_operators_use_catalogue_units():
    agent, _ = _agent([typical_gpu(0)])
    batch, _ = agent.poll()
    recs = {r["metric"]: r for r in readings(batch)}
    assert recs["accel_power_w"]["unit"] == "W" and recs["accel_energy_j_total"]["unit"] == "J"
    assert recs["accel_mem_used_bytes"]["unit"] == "bytes" and recs["accel_sm_clock_mhz"]["unit"] == "MHz"
    assert recs["accel_temp_degc"] == {"accelerator": batch.tags["uuid"][0], "vendor": "nvidia",
                                       "model": "NVIDIA H100 80GB HBM3", "metric": "accel_temp_degc",
                                       "unit": "degC", "value": 61}
    assert "accel_fan_pct" not in recs


def test_batch_encodes_on_the_bus():
    from dcops.bus import InProcessBus, publish_batch
    from dcops.codec import decode_batch

    agent, _ = _agent([typical_gpu(i) for i in range(8)])
    batch, _ = agent.poll()
    bus = InProcessBus()
    c = bus.consumer("samples", "t")
    publish_batch(bus, batch, key="rack")
    msg = c.poll(0.1)[0]
    back = decode_batch(msg.value)
    assert np.array_equal(back.fields["accel_temp_degc"], batch.fields["accel_temp_degc"])
    assert list(back.tags["uuid"]) == list(batch.tags["uuid"])


def test_real_pynvml_without_a_driver_is_a_clear_error():
    """On this machine there is no NVIDIA driver: the real module fails cleanly, naming why."""
    from dcops.collectors.nvml_agent import load_pynvml

    agent = NvmlAgent(load_pynvml(), "this-host", strict=True)
    try:
        ids = agent.start()
    except NvmlUnavailable as exc:
        assert "NVML" in str(exc) and "driver" in str(exc)
        return
    try:  # a real GPU host: a row per GPU, the core readings present, no binding error
        batch, _ = agent.poll()
        assert len(batch) == len(ids) and not agent.problems
        for m in ("accel_temp_degc", "accel_power_w", "accel_sm_clock_mhz", "accel_mem_total_bytes"):
            assert not np.isnan(batch.fields[m]).any(), m
    finally:
        agent.close()


def test_binding_without_a_call_or_driver_without_a_function():
    """An older nvidia-ml-py (no ClocksEventReasons) and an older driver (FUNCTION_NOT_FOUND)."""
    agent, nvml = _agent([typical_gpu(0)])
    agent.start()
    nvml.nvmlDeviceGetCurrentClocksEventReasons = None  # as if the binding lacked it
    nvml.nvmlDeviceGetCurrentClocksThrottleReasons = lambda h: 0x40
    nvml.nvmlDeviceGetFieldValues = lambda h, ids: (_ for _ in ()).throw(nvml.NVMLError(nvml.NVML_ERROR_FUNCTION_NOT_FOUND))
    nvml.nvmlDeviceGetRemappedRows = lambda h: (_ for _ in ()).throw(AttributeError("no such symbol"))
    batch, _ = agent.poll()
    r = _row(batch, 0)
    assert r["accel_throttle_reasons"] == 0x40 and r["accel_thermal_throttle"] == 1.0
    assert math.isnan(r["accel_mem_temp_degc"]) and math.isnan(r["accel_remapped_rows_pending"])
    assert r["accel_temp_degc"] == 61.0 and agent.errors == 1
    assert {"nvmlDeviceGetFieldValues", "nvmlDeviceGetRemappedRows"} <= agent._skip[0]
    assert len(agent.problems) == 1 and "AttributeError" in agent.problems[0]  # said, not a quiet NaN


def test_strict_agent_raises_on_a_binding_mismatch():
    """Tests and the device check run strict: a binding that disagrees with the driver fails loudly."""
    from dcops.collectors.nvml_agent import NvmlBindingError

    agent, nvml = _agent([typical_gpu(0)])
    agent.strict = True
    agent.start()
    nvml.nvmlDeviceGetPowerUsage = lambda h: (_ for _ in ()).throw(TypeError("c_uint expected"))
    with pytest.raises(NvmlBindingError, match="nvmlDeviceGetPowerUsage raised TypeError"):
        agent.poll()
