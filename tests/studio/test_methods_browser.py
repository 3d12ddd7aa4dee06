"""The LLaMA-Factory methods in the Train tab: the OFT, SFT-loss and optimizer settings appear for the method and
stage they belong to, closed until opened."""

from __future__ import annotations

import pytest

from tests.studio.conftest import shot
from tests.studio.test_browser import open_group, open_studio

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def choose(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").first.click()
    page.get_by_role("option", name=option, exact=True).click()


def test_method_and_stage_show_their_settings(page, studio_server):
    from playwright.sync_api import expect

    open_studio(page, studio_server["url"])
    oft, lora, sft_loss, rlhf = (page.locator(f"#group_{name}") for name in ("oft", "lora", "sft_loss", "rlhf"))
    expect(lora).to_be_visible()
    expect(oft).to_be_hidden()
    expect(sft_loss).to_be_visible()  # the default stage is supervised fine-tuning

    choose(page, "finetuning_type", "OFT (orthogonal)")
    expect(oft).to_be_visible()
    expect(lora).to_be_hidden()
    expect(page.locator("#oft_block_size")).to_be_hidden()  # closed until opened
    open_group(page, "OFT settings")
    expect(page.locator("#oft_block_size input").first).to_have_value("32")

    choose(page, "stage", "DPO")
    expect(sft_loss).to_be_hidden()
    expect(rlhf).to_be_visible()
    choose(page, "stage", "Supervised fine-tuning")
    expect(sft_loss).to_be_visible()
    expect(rlhf).to_be_hidden()
    open_group(page, "SFT loss")
    expect(page.locator("#use_dft_loss")).to_be_visible()

    # Muon works with every method; APOLLO and Adam-mini only where the whole weights train.
    open_group(page, "Optimizers")
    expect(page.locator("#use_muon")).to_be_visible()
    expect(page.locator("#use_apollo")).to_be_hidden()
    open_group(page, "SwanLab")
    expect(page.locator("#swanlab_project")).to_be_visible()
    shot(page, "methods-oft")

    choose(page, "finetuning_type", "Full")
    expect(page.locator("#use_apollo")).to_be_visible()
    expect(page.locator("#use_adam_mini")).to_be_visible()
    expect(page.locator("#apollo_rank")).to_be_hidden()  # APOLLO's own settings stay folded until opened
    open_group(page, "APOLLO settings")
    expect(page.locator("#apollo_rank input").first).to_have_value("16")
    expect(oft).to_be_hidden()
    open_group(page, "More settings")
    expect(page.locator("#early_stopping_steps")).to_be_visible()
    shot(page, "methods-full")


def test_devices_and_distribution_group(page, studio_server):
    """On this machine without GPUs the group says training runs on the CPU and offers CPU processes; the offload
    boxes appear for the strategies they apply to."""
    from playwright.sync_api import expect

    from tests.studio.conftest import ARTIFACTS

    open_studio(page, studio_server["url"])
    open_group(page, "Devices and distribution")
    group = page.locator("#group_distributed")
    expect(page.locator("#cpu_only")).to_contain_text("training runs on the CPU")
    expect(page.locator("#cpu_processes input").first).to_have_value("1")
    expect(page.locator("#devices")).to_be_hidden()  # no GPU to pick
    optimizer, params = page.locator("#offload_optimizer"), page.locator("#offload_params")
    expect(optimizer).to_be_hidden()
    choose(page, "strategy", "DeepSpeed ZeRO-2 (optimizer state and gradients split)")
    expect(optimizer).to_be_visible()
    expect(params).to_be_hidden()
    choose(page, "strategy", "DeepSpeed ZeRO-3 (weights split too)")
    expect(params).to_be_visible()
    choose(page, "strategy", "FSDP2 (full shard)")
    expect(optimizer).to_be_hidden()
    expect(params).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    group.screenshot(path=str(ARTIFACTS / "devices-and-distribution.png"))


FAKE_NVIDIA_SMI = """#!/bin/sh
case "$*" in
  -L) echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-a)"; echo "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-b)";;
  *name,memory.total*) echo "NVIDIA H100 80GB HBM3, 81559"; echo "NVIDIA H100 80GB HBM3, 81559";;
  *memory.total*) echo 81559; echo 81559;;
esac
"""


def test_gpus_are_offered_by_name_and_memory(page, tmp_path, monkeypatch):
    """With GPUs (a stand-in nvidia-smi lists two H100s) the group offers them by name and memory instead of CPU
    processes."""
    import os

    from playwright.sync_api import expect

    from tests.studio.conftest import ARTIFACTS, start_studio, stop

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text(FAKE_NVIDIA_SMI)
    (bin_dir / "nvidia-smi").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    (tmp_path / "saves").mkdir()
    proc, url = start_studio(tmp_path)
    try:
        open_studio(page, url)
        open_group(page, "Devices and distribution")
        expect(page.locator("#cpu_only")).to_be_hidden()
        expect(page.locator("#cpu_processes")).to_be_hidden()
        choose(page, "devices", "GPU 1 · NVIDIA H100 80GB HBM3 · 80 GB")
        expect(page.locator("#devices")).to_contain_text("GPU 1 · NVIDIA H100 80GB HBM3 · 80 GB")
        page.locator("#group_distributed").click(position={"x": 5, "y": 5})  # close the options list
        ARTIFACTS.mkdir(exist_ok=True)
        page.locator("#group_distributed").screenshot(path=str(ARTIFACTS / "devices-gpus.png"))
    finally:
        stop(proc)
