"""Ray job entry point for `emovid tune`: the search runs on the cluster the job was submitted to.

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/tune.py /shared/ferplus --out /shared/tune --trials 24 --max-hours 6

Takes the same arguments as `emovid tune`; trials spread over the cluster's CPU (or, with
`--gpus-per-trial`, GPU) slots. `--out` must be on storage every node sees (Tune keeps the
experiment there, which is also what lets a resubmitted job continue an interrupted search).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the job's working_dir holds the package

from emovid.cli import main as emovid_main  # noqa: E402

if __name__ == "__main__":
    import ray

    ray.init()  # joins the cluster this job was submitted to (or starts one locally)
    sys.exit(emovid_main(["tune", "--no-progress", *sys.argv[1:]]))
