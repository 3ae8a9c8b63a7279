"""DVC's command line with two fixes that jobs sharing a run cache need (DVC 3.x).

    python -I -m audioclf.dvcfixes exp run --pull -n <name> -S ...     # as `dvc exp run ...`
    python -I -m audioclf.dvcfixes exp push --run-cache origin <name>  # as `dvc exp push ...`

The execution unit (:mod:`audioclf.job`) runs DVC through this module, isolated from
PYTHONPATH so that it is the installed copy whatever commit the job's clone holds. Both fixes
were found by the cluster tests
(tests/test_cluster.py), where every job starts from a fresh clone and an empty cache:

1. **A stale view of dvc.lock after run-cache restores.** After each stage, `dvc exp run`
   stages the stage's files for git, asking ``repo.dvcfs`` whether each dependency is tracked
   by DVC. DVC rebuilds that view whenever it *runs* a stage, but not when it *restores* one
   from the run cache, so the view still holds the committed dvc.lock. A dependency inside
   another stage's output folder (``data/prepared/test_x.npy``) then needs the committed
   folder listing, which a fresh clone has nowhere when the committed results were never
   pushed, and the experiment fails: ``failed to reproduce 'corrupt': failed to load directory
   ('data', 'prepared')``. Fix: rebuild the view before each lookup, as DVC does after every
   stage it runs. The project's own dvc.yaml no longer has such a dependency (prepare and
   features declare each output file; tests/test_config.py keeps it so), which is what lets a
   plain `dvc exp run` or `dvc queue` work from a fresh clone; the fix stays for pipelines
   that add one.
2. **Uncached outputs never reach the remote.** `dvc push --run-cache` uploads the run-cache
   entries but not the outputs declared ``cache: false`` (``reports/metrics.json``,
   ``predictions.csv``, the comparison tables), so no other job can restore those stages from
   the remote and each one re-runs ``evaluate``, logging a duplicate MLflow run. Fix: upload
   the file outputs of every run-cache entry pushed, when they are in the local cache (DVC
   puts them there when it saves the entry).

Only DVC is imported here.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def reset_view_before_staging() -> None:
    """Fix 1: ``_get_stage_files`` sees dvc.lock as it is now, not as it was."""
    import dvc.stage.utils as utils

    original = utils._get_stage_files
    if getattr(original, "audioclf_fixed", False):
        return

    def _get_stage_files(stage):  # the name DVC's executor imports at call time
        stage.repo._reset()  # what DVC itself does around each stage it runs
        return original(stage)

    _get_stage_files.audioclf_fixed = True
    utils._get_stage_files = _get_stage_files


def push_uncached_outputs_with_the_run_cache() -> None:
    """Fix 2: pushing run-cache entries also pushes their file outputs from the local cache."""
    from dvc.stage.cache import StageCache
    from dvc_data.hashfile.hash_info import HashInfo

    original = StageCache.push
    if getattr(original, "audioclf_fixed", False):
        return

    def push(self, remote, odb=None):
        entries = original(self, remote, odb)
        local = self.repo.cache.local
        objs = set()
        for key, value in entries:
            for out in (self._load_cache(key, value) or {}).get("outs", []):
                md5 = out.get("md5")
                # Folders are cached outputs, pushed with the experiment itself.
                if md5 and not md5.endswith(".dir") and local.exists(md5):
                    objs.add(HashInfo("md5", md5))
        if objs:
            self.repo.cloud.push(objs, remote=remote)
        return entries

    push.audioclf_fixed = True
    StageCache.push = push


def main(argv: Sequence[str] | None = None) -> int:
    reset_view_before_staging()
    push_uncached_outputs_with_the_run_cache()
    from dvc.cli import main as dvc_main

    return dvc_main(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
