"""The simulated site: coupled power/thermal/accelerator behaviour and a labelled fault library.

    sim = Simulator(load_site("examples/demo-site.yaml"), seed=1)
    label = sim.inject("crac_failure", "CRAC-H1-1")
    sim.run(60)
    batches = sim.batches()
"""

from dcops.sim.engine import Simulator
from dcops.sim.faults import FAULT_TYPES, FaultLabel, FaultType

__all__ = ["FAULT_TYPES", "FaultLabel", "FaultType", "Simulator"]
