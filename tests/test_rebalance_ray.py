"""`fxaug rebalance --engine ray` (issue #21, item 2): a local Ray instance bound to 127.0.0.1
with 2 CPUs, started once for the test run; 300 real FER faces rebalanced by Ray Data actors
(2 CPU workers, the generator loaded once each) give the single-process output: the same files
with the same bytes, the same manifest lines (in the same order, as the driver merges them)."""

from __future__ import annotations

import json

import pytest
from conftest import REBALANCE_300_CLI, rebalance_output_files

from fxaug.rebalance import LOCK, MANIFEST, SHARDS

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'fxaug[ray]'")


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray for the whole test run: 2 CPUs on 127.0.0.1, no dashboard; its workers
    compute with one torch thread, as the single-process reference does."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}}, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_ray_engine_gives_the_single_process_output(local_ray, fer300_dataset, rebalance_300_reference, tmp_path,
                                                     capsys):
    from fxaug.cli import main

    out = tmp_path / "ray"
    assert main(["rebalance", str(fer300_dataset), "--out", str(out), *REBALANCE_300_CLI, "--engine", "ray",
                 "--workers", "2"]) == 0
    assert "made 313 faces" in capsys.readouterr().out
    reference = rebalance_output_files(rebalance_300_reference)
    made = rebalance_output_files(out)
    assert sorted(made) == sorted(reference)
    assert [name for name in reference if made[name] != reference[name]] == []
    rows = [json.loads(line) for line in (out / MANIFEST).read_text().splitlines()]
    assert rows == [json.loads(line) for line in (rebalance_300_reference / MANIFEST).read_text().splitlines()]
    assert any(not row["kept"] for row in rows) and all(isinstance(r["identity_distance"], float) for r in rows if r["kept"])
    assert not (out / SHARDS).exists() and not (out / LOCK).exists()
