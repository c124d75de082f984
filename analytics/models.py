"""The trained model set the scorer loads: fitted detectors plus what they were trained on.

Saved as one joblib file with a JSON sidecar (`<file>.json`) that a person can read: format
version, training window, feature names, row counts per model. `load` refuses a file whose
format version it does not know, naming the file, rather than scoring with a half-understood
model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import joblib

from dcops.analytics.detectors import CounterTrendDetector, FeatureIsolationForest, PeerGroupDetector, ThermalResidualModel

__all__ = ["FORMAT_VERSION", "ModelMetadata", "ModelBundle", "ModelFileError"]

FORMAT_VERSION = 1


class ModelFileError(RuntimeError):
    """A model file that cannot be loaded; the message names the file and why."""


@dataclass(frozen=True)
class ModelMetadata:
    format_version: int
    model_version: int  # increases with every training run
    trained_at_ns: int
    window_start_ns: int
    window_end_ns: int
    intervals: int
    features: dict = field(default_factory=dict)  # detector -> feature names
    rows: dict = field(default_factory=dict)  # model key -> training rows
    drift: dict = field(default_factory=dict)  # model key -> shift of the baseline since the last version


@dataclass
class ModelBundle:
    metadata: ModelMetadata
    isolation: dict[str, FeatureIsolationForest]  # accelerator model -> forest
    isolation_columns: dict[str, list[int]]  # accelerator model -> columns of WINDOW_FEATURE_NAMES it uses
    thermal: dict[str, ThermalResidualModel]  # accelerator model -> residual model
    peer: PeerGroupDetector | None
    counters: CounterTrendDetector | None
    inlet: dict[str, ThermalResidualModel] = field(default_factory=dict)  # cooling zone -> rack inlet model
    inlet_offset: dict[str, float] = field(default_factory=dict)  # rack -> its usual inlet (training median)

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        joblib.dump(self, tmp)
        tmp.replace(path)  # readers never see a half-written model
        path.with_suffix(path.suffix + ".json").write_text(json.dumps(asdict(self.metadata), indent=2, sort_keys=True))
        return path

    @classmethod
    def load(cls, path: Path) -> "ModelBundle":
        path = Path(path)
        try:
            bundle = joblib.load(path)
        except FileNotFoundError:
            raise ModelFileError(f"{path}: model file not found (train one with `dcops train`)") from None
        except Exception as exc:  # joblib/pickle raise many types for a damaged file
            raise ModelFileError(f"{path}: unreadable model file: {exc}") from None
        if not isinstance(bundle, cls):
            raise ModelFileError(f"{path}: not a dcops model bundle")
        if bundle.metadata.format_version != FORMAT_VERSION:
            raise ModelFileError(f"{path}: model format {bundle.metadata.format_version}, this dcops reads {FORMAT_VERSION}")
        return bundle
