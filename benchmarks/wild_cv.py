"""Cross-validated `emovid train --mix`: FER+ plus the wild photos, scored on photos it never saw.

    python benchmarks/wild_cv.py --out runs/wild_cv                 # 3 folds (~13 min each on 2 cores)
    python benchmarks/wild_cv.py --out runs/wild_cv --final models/emovid_fer7_v5.keras   # + the shipped model
    python benchmarks/wild_cv.py --out runs/wild_cv --eval-only     # tables from the saved fold logits
    python benchmarks/wild_cv.py --out runs/soup_cv ... --fold-members 1   # + each fold's soup of 2 (v7's recipe)
    python benchmarks/wild_cv.py --out runs/seed_cv --init-from old/emovid_fer7_v5.keras --all-wild \
        --seed-repeat 16 --epochs 2 --learning-rate 2e-4 --baseline old/emovid_fer7_v5.keras --final models/emovid_fer7_v6.keras   # v6

The v3-v6 starting points are in git history: `git show 617c5e4:models/emovid_fer7_v3.keras >
old/emovid_fer7_v3.keras` (the model card lists them); pass the files as --init-from/--baseline.

Each fold fine-tunes v3's network on FER+ Train plus the wild photos of the other folds (each
repeated ``--repeat`` times per epoch, labels smoothed by 0.1), then scores its own fold's photos.
The temperature and prior strength are chosen by the model card's rule on the cross-validated
scores (out-of-fold wild photos, FER+ Valid and the seed photos, each as the mean over the fold
models). ``--final`` trains on every wild photo with the same recipe and stores those settings.
``--seed-repeat N`` also trains on the seed training photos (N copies each), folded and scored
out of fold like the wild photos; the six live-test photos (one person) are scored, never trained.
Folds whose logits are saved under ``--out`` are not retrained (an interrupted run resumes).
Needs ../shared.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from emovid.assets import resolve_model
from emovid.classify.emotions import EmotionClassifier
from emovid.classify.labels import EMOTIONS
from emovid.classify.model_file import read_model_info, write_model_info
from crossdomain import fit_temperature, operating_point
from crossval import FoldLogits, cv_sweep, stratified_folds, subset, write_json
from emovid.training.data import LabelledFaces, load_ferplus
from emovid.training.evaluate import EvalReport, load_labelled
from emovid.training.soup import soup_models
from emovid.training.train import TrainConfig, fit, recalibrate, save, with_mix

SHARED = Path(__file__).resolve().parents[2] / "shared"
TAUS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 1.0]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="work folder: fold models, logits, results.json")
    p.add_argument("--shared", type=Path, default=SHARED)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--learning-rate", type=float, default=5e-4)
    p.add_argument("--repeat", type=int, default=4, help="copies of each wild photo per epoch")
    p.add_argument("--seed-repeat", type=int, default=0,
                   help="also train on the seed training photos, N copies each per epoch, split in folds like the "
                        "wild photos and scored out of fold (0: never trained on, as v5)")
    p.add_argument("--init-from", default="emovid_fer7_v7", help="starting weights (a model file; default the shipped model)")
    p.add_argument("--all-wild", action="store_true",
                   help="every fold model trains on every wild photo (for an --init-from that already saw them, "
                        "e.g. emovid_fer7_v5): the wild scores are then in-sample, and --final keeps the starting "
                        "model's temperature and prior instead of the sweep's")
    p.add_argument("--baseline", default="emovid_fer7_v7", help="the model compared at its shipped settings (a file; default the shipped model)")
    p.add_argument("--final", type=Path, help="also train the model on every wild photo and write it here")
    p.add_argument("--members", type=int, default=0,
                   help="with --final: train N more models like it, with other shuffling seeds (MEMBERn.keras "
                        "under --out)")
    p.add_argument("--soup", type=Path,
                   help="with --final: also write the weight mean of the fold models, --final and the --members "
                        "here, batch norm recomputed on --final's training crops, with --final's inference settings")
    p.add_argument("--fold-members", type=int, default=0,
                   help="train N more models per fold with other seeds and score each fold's weight mean (soup) "
                        "too: its fold logits go under OUT/soup (print its tables with --eval-only --out OUT/soup)")
    p.add_argument("--eval-only", action="store_true", help="only print the tables from saved fold logits")
    p.add_argument("--limit", type=int, help="train on the first N FER+ Train crops only (a smoke run of this script)")
    return p.parse_args()


def load_sets(shared: Path) -> dict:
    """The labelled sets by name, and ``seed_trainable``: which seed photos may be trained on."""
    data = shared / "data"
    seed = [load_labelled(data / "seed" / "training", 48, 0.0), load_labelled(data / "seed" / "live-test", 48, 0.0)]
    return {"train": load_ferplus(data / "ferplus" / "FER2013Train", 48),
            "valid": load_ferplus(data / "ferplus" / "FER2013Valid", 48),
            "wild": load_labelled(data / "wild", 48, 0.0),  # v4's crops: the detector's box
            "seed": LabelledFaces(*(np.concatenate([getattr(s, k) for s in seed])
                                    for k in ("images", "targets", "names", "majority"))),
            # The live-test photos are six of one person: training on some would teach the others.
            "seed_trainable": np.repeat([True, False], [len(s) for s in seed])}


def train_one(args, sets, wild: LabelledFaces, seed_photos: LabelledFaces | None, out: Path, seed: int) -> Path:
    config = TrainConfig(data=args.shared / "data" / "ferplus", out=out, epochs=args.epochs,
                         learning_rate=args.learning_rate, crop_margin=0.0, init_from=resolve_model(args.init_from),
                         patience=args.epochs, seed=seed, mix_repeat=args.repeat,
                         extra={"recipe": "benchmarks/wild_cv.py", "wild_photos": len(wild),
                                "seed_photos": len(seed_photos) if seed_photos else 0,
                                "seed_repeat": args.seed_repeat})
    train = training_mix(args, sets, wild, seed_photos, config.mix_smoothing)
    model, details = fit(config, train, sets["valid"])
    details["batch_norm_recalibration"] = recalibrate(model, train, sets["valid"])
    details.update(class_prior=sets["train"].targets.mean(axis=0), train_images=len(train),
                   valid_images=len(sets["valid"]), data=str(config.data), **config.extra)
    save(model, config, details)
    start = read_model_info(resolve_model(args.init_from))  # its inference settings until the sweep picks its own
    write_model_info(out, replace(read_model_info(out), flip_average=True, crop_margin=0.0, temperature=start.temperature,
                                  prior_tau=start.prior_tau, class_prior=start.class_prior))
    return out


def training_mix(args, sets, wild: LabelledFaces, seed_photos: LabelledFaces | None, smoothing: float) -> LabelledFaces:
    """FER+ Train plus ``--repeat`` copies of ``wild`` and ``--seed-repeat`` copies of ``seed_photos``."""
    train = with_mix(sets["train"], wild, args.repeat, smoothing)
    if seed_photos is not None and len(seed_photos):
        train = with_mix(train, seed_photos, args.seed_repeat, smoothing)
    return train


def soup_of(paths: list[Path], out: Path, train: LabelledFaces, settings_from: Path | None = None) -> Path:
    """The weight mean of fine-tunes of one model, batch norm recomputed on the crops they trained on
    (training/soup.py), with the name and inference settings of ``settings_from`` (default: the first)."""
    first = read_model_info(settings_from or paths[0])
    soup_models(paths, out, train.images)
    write_model_info(out, replace(read_model_info(out), name=first.name, version=first.version,
                                  temperature=first.temperature, prior_tau=first.prior_tau,
                                  class_prior=first.class_prior))
    return out


def raw_logits(model: str | Path, faces: LabelledFaces) -> np.ndarray:
    return EmotionClassifier.load(model, backend="tensorflow").without_prior_correction().predict_logits(faces.images)


def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    sets = load_sets(args.shared)
    if args.limit:
        sets["train"] = sets["train"].head(args.limit)
    valid = sets["valid"].evaluable()
    fold_of = stratified_folds(sets["wild"], args.folds, seed=0)
    # With --seed-repeat the seed photos are folded too: each is scored by the fold model that did
    # not train on it; without, every fold model scores all of them (mean over folds).
    seed_fold = stratified_folds(sets["seed"], args.folds, seed=0)
    seed_of = (lambda k: seed_fold == k) if args.seed_repeat else (lambda k: np.ones(len(sets["seed"]), bool))
    def fold_training(k: int) -> tuple[LabelledFaces, LabelledFaces | None]:
        """Fold ``k``'s wild and seed training photos."""
        seed_train = subset(sets["seed"], (seed_fold != k) & sets["seed_trainable"]) if args.seed_repeat else None
        return (sets["wild"] if args.all_wild else subset(sets["wild"], fold_of != k)), seed_train

    def score_fold(k: int, model: Path, out: Path) -> None:
        held, seed_scored = subset(sets["wild"], fold_of == k), subset(sets["seed"], seed_of(k))
        FoldLogits(k, raw_logits(model, valid), valid.majority, raw_logits(model, held), held.majority,
                   raw_logits(model, seed_scored), seed_scored.majority).save(out)

    folds = []
    for k in range(args.folds):
        if not (args.out / f"fold{k}_logits.npz").exists():
            if args.eval_only:
                raise SystemExit(f"no saved logits for fold {k} under {args.out}")
            started = time.perf_counter()
            path = train_one(args, sets, *fold_training(k), args.out / f"fold{k}.keras", 100 + k)
            score_fold(k, path, args.out)
            logging.info("fold %d done in %.0f s", k, time.perf_counter() - started)
        if args.fold_members and not args.eval_only and not (args.out / "soup" / f"fold{k}_logits.npz").exists():
            started = time.perf_counter()
            wild_train, seed_train = fold_training(k)
            paths = [args.out / f"fold{k}.keras"] + [args.out / f"fold{k}_member{j}.keras"
                                                     for j in range(1, args.fold_members + 1)]
            for j, member in enumerate(paths[1:], start=1):
                if not member.exists():  # a resumed run keeps the members it has
                    train_one(args, sets, wild_train, seed_train, member, 100 + k + 10 * j)
            smoothing = float(read_model_info(paths[0]).training["config"]["mix_smoothing"])
            (args.out / "soup").mkdir(exist_ok=True)
            soup = soup_of(paths, args.out / "soup" / f"fold{k}.keras",
                           training_mix(args, sets, wild_train, seed_train, smoothing))
            score_fold(k, soup, args.out / "soup")
            logging.info("fold %d soup of %d done in %.0f s", k, len(paths), time.perf_counter() - started)
        folds.append(FoldLogits.load(args.out, k))
    for f in folds:
        if not ((f.held_out_labels == sets["wild"].majority[fold_of == f.fold]).all()
                and np.array_equal(f.seed_labels, sets["seed"].majority[seed_of(f.fold)])):
            raise SystemExit(f"fold {f.fold}: saved labels do not match this fold assignment (or --seed-repeat)")
    prior = np.array(read_model_info(resolve_model(args.init_from)).class_prior)
    oof = np.concatenate([f.held_out for f in folds])
    temperature = fit_temperature({"FER+ Valid": np.concatenate([f.valid for f in folds]), "wild": oof},
                                  {"FER+ Valid": np.concatenate([f.valid_labels for f in folds]),
                                   "wild": np.concatenate([f.held_out_labels for f in folds])})
    rows = cv_sweep(folds, prior, TAUS, temperature, seed_out_of_fold=bool(args.seed_repeat))
    tau = operating_point(rows, in_domain="FER+ Valid")
    print(f"cross-validated ({args.folds} folds): temperature {temperature}, chosen prior tau {tau}\n")
    if args.all_wild:
        print("--all-wild: every fold model trained on every wild photo, so 'wild (out of fold)' is IN-SAMPLE\n")
    names = ["FER+ Valid", "wild (out of fold)", "seed photos"]
    print("| tau | " + " | ".join(f"{n} acc / mean recall" for n in names) + " |\n|" + "---|" * 4)
    for row in rows:
        print(f"| {row['tau']:.2f} | " + " | ".join(f"{row[n][0]:.1%} / {row[n][1]:.3f}" for n in names) + " |")

    # The baseline on exactly the same photos, at its shipped settings.
    base = EmotionClassifier.load(args.baseline, backend="tensorflow")
    order = np.concatenate([np.flatnonzero(fold_of == f.fold) for f in folds])
    wild_y = np.concatenate([f.held_out_labels for f in folds])
    log_prior = np.log(prior / prior.sum())
    report = lambda z, y: EvalReport.from_predictions(y, (z / temperature - tau * log_prior).argmax(1))  # noqa: E731
    mean_fold = lambda key, labels: [report(getattr(f, key), labels) for f in folds]  # noqa: E731
    table = {
        f"{args.baseline} (shipped settings)": {
            "FER+ Valid": [EvalReport.from_predictions(valid.majority, base.predict_proba(valid.images).argmax(1))],
            "wild (out of fold)": [EvalReport.from_predictions(wild_y, base.predict_proba(
                sets["wild"].images[order]).argmax(1))],
            "seed photos": [EvalReport.from_predictions(sets["seed"].majority, base.predict_proba(
                sets["seed"].images).argmax(1))]},
        f"--mix wild{' + seed' if args.seed_repeat else ''}, cross-validated (T {temperature}, tau {tau})": {
            "FER+ Valid": mean_fold("valid", valid.majority), "wild (out of fold)": [report(oof, wild_y)],
            "seed photos": ([report(np.concatenate([f.seed for f in folds]),
                                    np.concatenate([f.seed_labels for f in folds]))]
                            if args.seed_repeat else mean_fold("seed", sets["seed"].majority))},
    }
    print("\n| model | " + " | ".join(f"{n} acc / mean recall" for n in names) + " |\n|" + "---|" * 4)
    for model, by_set in table.items():
        print(f"| {model} | " + " | ".join(
            f"{np.mean([r.accuracy for r in rs]):.1%} / {np.mean([r.mean_recall for r in rs]):.3f}"
            for rs in by_set.values()) + " |")
    for name in ("wild (out of fold)", "seed photos"):
        print(f"\nper-class recall, {name} (the first fold model's where scored by each):")
        for model, by_set in table.items():
            print(f"  {model}: " + ", ".join(f"{c} {v:.2f}" for c, v in zip(
                EMOTIONS, by_set[name][0].recall)))
    write_json(args.out / "results.json", {"temperature": temperature, "prior_tau": tau, "sweep": rows,
                                           "table": {m: {s: [r.to_dict() for r in rs] for s, rs in b.items()}
                                                     for m, b in table.items()}})
    if args.final and not args.eval_only:
        if not args.final.exists():
            train_one(args, sets, sets["wild"],
                      subset(sets["seed"], sets["seed_trainable"]) if args.seed_repeat else None, args.final, 99)
        if args.all_wild:  # in-sample wild scores must not choose the operating point
            start = read_model_info(resolve_model(args.init_from))
            temperature, tau = start.temperature, start.prior_tau
        write_model_info(args.final, replace(read_model_info(args.final), temperature=temperature, prior_tau=tau))
        print(f"\nwrote {args.final}: every wild photo, temperature {temperature}, prior tau {tau}")
        final_train = subset(sets["seed"], sets["seed_trainable"]) if args.seed_repeat else None
        members = [args.out / f"member{i}.keras" for i in range(1, args.members + 1)]
        for i, member in enumerate(members, start=1):
            if not member.exists():  # a resumed run keeps the members it has
                train_one(args, sets, sets["wild"], final_train, member, 99 - i)
        if args.soup:
            # Fine-tunes of one starting model share its loss basin, so their weight mean is one network.
            smoothing = float(read_model_info(args.final).training["config"]["mix_smoothing"])
            paths = [args.out / f"fold{k}.keras" for k in range(args.folds)] + [args.final] + members
            final = read_model_info(soup_of(paths, args.soup, training_mix(args, sets, sets["wild"], final_train,
                                                                           smoothing), settings_from=args.final))
            print(f"wrote {args.soup}: weight mean of {len(paths)} models, temperature {final.temperature}, "
                  f"prior tau {final.prior_tau}")


if __name__ == "__main__":
    main(parse_args())
