"""fxaug rebalance's plan reads a generator's contract (translations, methods) from its
config.json alone (`fxaug.rebalance._model_contract`): the model is built without its weights,
on the CPU when it is small (milliseconds: the shipped one), on PyTorch's meta device when it is
large, so a huge config is never allocated just to plan. The meta device costs 2-3 s of every
process (it imports torch._dynamo), so a small model must not go there."""

from __future__ import annotations

import json
import resource

import torch

from fxaug import rebalance as R
from fxaug.models import BUNDLED_DIR, load_model

SHIPPED = "inpaint-ferplus-48"


def test_small_model_is_built_on_the_cpu_and_leaves_the_rng_as_it_was(monkeypatch):
    built = []
    real = R._build_for_contract

    def spy(model_cls, config):
        built.append(real(model_cls, config))
        return built[-1]

    monkeypatch.setattr(R, "_build_for_contract", spy)
    state = torch.random.get_rng_state()
    translations, methods = R._model_contract(SHIPPED)
    assert torch.equal(torch.random.get_rng_state(), state)  # the CPU build's initial weights drew from a fork
    model = load_model(SHIPPED)
    assert (translations, methods) == (model.translations(), model.methods)
    assert len(built) == 1 and {p.device.type for p in built[0].parameters()} == {"cpu"}  # not the meta device


def test_huge_model_contract_is_read_without_allocating_it(tmp_path):
    config = json.loads((BUNDLED_DIR / SHIPPED / "config.json").read_text())
    config["embed_dim"] = 2**20  # its embedding MLP's Linear alone: 2**40 weights, 4 TiB of float32
    (tmp_path / "config.json").write_text(json.dumps(config))  # no weights: the plan needs none
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    # address space capped at 4 GiB more than now while it runs: were the model allocated, the
    # allocation fails (and the test with it) even where the kernel overcommits memory freely
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    mapped = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (mapped + (4 << 30), hard))
    try:
        translations, methods = R._model_contract(tmp_path)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 256 * 1024  # at most the CPU budget's worth
    assert methods == ("regions",)
    assert translations == [(None, d) for d in config["domains"] if d not in config["withheld"]]
