"""Out-of-sample NAB scores: leave-one-file-out and leave-one-category-out parameter selection.

A detector with free parameters scored on the files its parameters were chosen on overstates
what a user sees on new files. Here every fold chooses the parameters (one candidate of a grid)
on the other files only, by NAB's own criterion (normalised score with the threshold optimised
over those files), and the held-out files are scored with that choice:

- `out_of_sample`: the held-out files' scores (each from its own fold's choice) are put together
  and scored as NAB scores any detector: one threshold optimised over the corpus. This is what
  an independent NAB run on new files measures (NAB optimises every detector's threshold);
- `strict`: also the threshold comes from the training files of each fold; the held-out raw
  scores are summed and normalised with the whole corpus's null and perfect scores;
- `in_sample`: the best grid point scored on all files (what tuning on the test data reports);
- `default`: the detector's default parameters scored on all files.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Mapping, Sequence

import numpy as np

from dcops.analytics import nab

__all__ = ["CvResult", "category_of", "cross_validate", "score_candidates"]


def category_of(relative_path: str) -> str:
    """NAB's category is the data sub-folder: 'realKnownCause/nyc_taxi.csv' -> 'realKnownCause'."""
    return relative_path.split("/", 1)[0] if "/" in relative_path else ""


@dataclass(frozen=True)
class CvResult:
    scheme: str  # "file" or "category"
    in_sample: float
    in_sample_candidate: str
    default: float
    out_of_sample: float
    strict: float
    chosen: Mapping[str, str]  # fold -> candidate chosen on the other folds
    per_file: Mapping[str, float]  # held-out raw score of each file (out_of_sample threshold)


def score_candidates(files: Sequence[nab.NabFile], candidates: Mapping[str, Callable[[np.ndarray], np.ndarray]]
                     ) -> dict[str, dict[str, np.ndarray]]:
    """candidate name -> relative path -> causal scores (each candidate run once per file)."""
    return {name: nab.run_detector(files, lambda f, fn=fn: fn(f.values)) for name, fn in candidates.items()}


class _Corpus:
    """Swept files prepared once (the sweep depends on labels only); scores swapped in per use."""

    def __init__(self, files: Sequence[nab.NabFile], windows, cost):
        missing = sorted({f.relative_path for f in files} - set(windows))
        if missing:
            raise nab.NabError(f"no labelled windows for {missing[:3]} (labels must name every scored file)")
        self.cost = cost
        self.templates = {f.relative_path: nab.sweep_file(f.relative_path, f.timestamps, np.zeros(len(f.values)),
                                                          windows[f.relative_path], cost) for f in files}

    def swept(self, paths, scores: Mapping[str, np.ndarray]):
        return [replace(self.templates[p], scores=np.asarray(scores[p], dtype=np.float64)) for p in paths]

    def normalised(self, paths, scores) -> tuple[float, float]:
        """(normalised score, threshold) with NAB's threshold optimisation over `paths`."""
        files = self.swept(paths, scores)
        threshold, raw = nab._optimise(files, self.cost)
        _, null = nab._optimise([replace(f, scores=np.zeros_like(f.scores)) for f in files], self.cost)
        perfect = sum(f.n_windows for f in files) * self.cost["tpWeight"]
        return (100.0 * (raw - null) / (perfect - null) if perfect != null else 0.0), threshold


def cross_validate(files: Sequence[nab.NabFile], windows, cost: Mapping[str, float],
                   scored: Mapping[str, Mapping[str, np.ndarray]], default: str, scheme: str = "file") -> CvResult:
    """Leave-one-`scheme`-out ("file" or "category") selection among the candidates in `scored`.

    Ties between candidates go to the earlier one in `scored`'s order (put the default first).
    """
    if scheme not in ("file", "category"):
        raise nab.NabError(f"cross-validation scheme {scheme!r}: use 'file' or 'category'")
    if default not in scored:
        raise nab.NabError(f"default candidate {default!r} not among the {len(scored)} scored candidates")
    corpus = _Corpus(files, windows, cost)
    paths = sorted(f.relative_path for f in files)
    fold_of = {p: (p if scheme == "file" else category_of(p)) for p in paths}
    folds = sorted(set(fold_of.values()))
    if len(folds) < 2:
        raise nab.NabError(f"leave-one-{scheme}-out needs at least two {scheme}s, got {folds}")
    names = list(scored)
    chosen, held_scores, strict_raw = {}, {}, 0.0
    for fold in folds:
        train = [p for p in paths if fold_of[p] != fold]
        test = [p for p in paths if fold_of[p] == fold]
        results = [corpus.normalised(train, scored[n]) for n in names]
        k = int(np.argmax([r[0] for r in results]))  # first of equal maxima
        chosen[fold] = names[k]
        for p in test:
            held_scores[p] = scored[names[k]][p]
            strict_raw += nab._file_score(corpus.swept([p], held_scores)[0], results[k][1], cost)[0]
    out_of_sample, threshold = corpus.normalised(paths, held_scores)
    all_files = corpus.swept(paths, held_scores)
    per_file = {f.relative_path: nab._file_score(f, threshold, cost)[0] for f in all_files}
    _, null = nab._optimise([replace(f, scores=np.zeros_like(f.scores)) for f in all_files], cost)
    perfect = sum(f.n_windows for f in all_files) * cost["tpWeight"]
    strict = 100.0 * (strict_raw - null) / (perfect - null) if perfect != null else 0.0
    full = [corpus.normalised(paths, scored[n])[0] for n in names]
    best = int(np.argmax(full))
    return CvResult(scheme, full[best], names[best], full[names.index(default)], out_of_sample, strict,
                    chosen, per_file)


# The neighbourhood every fold chooses from: the detector's length ladders stretched 0.5x .. 2x
# (lookbacks) and 0.5x .. 2x (suppression), default first so ties keep it.
LOOKBACK_STRETCH = (1.0, 0.5, 0.7, 1.4, 2.0)
SUPPRESS_STRETCH = (1.0, 0.5, 2.0)


def novelty_grid(params) -> dict:
    """name -> NoveltyParams around `params` (15 points, `params` itself first as '1x1x')."""
    return {f"{a:g}x{b:g}x": params.scaled(lookback=a, suppress=b)
            for a in LOOKBACK_STRETCH for b in SUPPRESS_STRETCH}


def cv_report(files: Sequence[nab.NabFile], windows, profiles: Mapping[str, Mapping[str, float]], params,
              schemes: Sequence[str] = ("file", "category")) -> tuple[list[str], dict]:
    """Cross-validated NAB scores of the novelty detector with `params`: (text lines, figures)."""
    from dcops.analytics.detectors.novelty import novelty_scores

    grid = novelty_grid(params)
    scored = score_candidates(files, {name: (lambda v, p=p: novelty_scores(v, p)) for name, p in grid.items()})
    default = next(iter(grid))
    lines = [f"{'profile':<20} {'in-sample':>9} {'default':>8} " + " ".join(f"{'LO' + s[0].upper() + 'O':>6} {'strict':>6}" for s in schemes)]
    figures = {}
    for profile, cost in profiles.items():
        row = {}
        for scheme in schemes:
            r = cross_validate(files, windows, cost, scored, default, scheme)
            row[scheme] = r
        first = row[schemes[0]]
        lines.append(f"{profile:<20} {first.in_sample:9.2f} {first.default:8.2f} "
                     + " ".join(f"{row[s].out_of_sample:6.2f} {row[s].strict:6.2f}" for s in schemes))
        figures[profile] = {"in_sample": first.in_sample, "default": first.default,
                            **{f"lo_{s}_o": row[s].out_of_sample for s in schemes},
                            **{f"lo_{s}_o_strict": row[s].strict for s in schemes},
                            "chosen": {s: dict(row[s].chosen) for s in schemes}}
    lines.append(f"grid: {len(grid)} stretches of the default's lookback x suppression ladders; "
                 "LOFO/LOCO = leave-one-file/category-out (threshold optimised over the held-out scores, as NAB does); "
                 "strict = threshold from the training folds too")
    return lines, figures
