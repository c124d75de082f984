"""The trained model set the scorer loads: each detector's trained state plus what it was trained on.

`models` maps a detector's name in `dcops.analytics.fleet.DETECTORS` to its trained state.
Saved as one joblib file with a JSON sidecar (`<file>.json`) that a person can read: format
version, training window, feature names, row counts per model. `load` refuses a file whose
format version it does not know, or a detector state that is not what the detector declares
(`DetectorSpec.state_type`), naming the file and the detector, rather than scoring with a
half-understood model.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import joblib

from dcops.analytics.detectors.spec import DetectorSpec
from dcops.analytics.fleet import DETECTORS

__all__ = ["FORMAT_VERSION", "ModelMetadata", "ModelBundle", "ModelFileError"]

log = logging.getLogger(__name__)
FORMAT_VERSION = 2  # 2: one state per registered detector (`models`)


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
    models: dict[str, Any]  # detector name -> its trained state

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        joblib.dump(self, tmp)
        tmp.replace(path)  # readers never see a half-written model
        path.with_suffix(path.suffix + ".json").write_text(json.dumps(asdict(self.metadata), indent=2, sort_keys=True))
        return path

    @classmethod
    def load(cls, path: Path, detectors: Mapping[str, DetectorSpec] | None = None) -> "ModelBundle":
        """The bundle at `path`, its states checked against `detectors` (default: the fleet's).
        A state for a detector that is no longer registered is dropped with a warning."""
        detectors = DETECTORS if detectors is None else detectors
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
        for name in [n for n in bundle.models if n not in detectors]:
            log.warning("%s: no detector %r any more; its trained state is ignored", path, name)
            del bundle.models[name]
        for name, state in bundle.models.items():
            if not isinstance(state, detectors[name].state_type):
                raise ModelFileError(f"{path}: detector {name!r}: trained state is a {type(state).__name__}, "
                                     f"expected {detectors[name].state_type}")
        return bundle
