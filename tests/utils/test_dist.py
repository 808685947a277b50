"""The one process-group init and the one device pick shared by sample and curate."""

from datetime import timedelta

import torch
import torch.distributed as dist

from sicog.utils.dist import PROCESS_GROUP_TIMEOUT, init_process_group, pick_device


def test_pick_device_explicit_and_auto(monkeypatch):
    assert pick_device("cpu") == "cpu"
    assert pick_device("cuda:3") == "cuda:3"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device() == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert pick_device("auto") == "cuda:1"  # LOCAL_RANK modulo the visible GPUs
    monkeypatch.delenv("LOCAL_RANK")
    assert pick_device("auto") == "cuda:0"


def test_init_process_group_only_with_a_rendezvous(monkeypatch):
    calls = []
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, timeout: calls.append((backend, timeout)))
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    assert init_process_group(4) is False  # ranks started by hand: marker files instead
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    assert init_process_group(1) is False  # a single process needs no group
    assert calls == []
    assert init_process_group(4) is True
    assert calls == [("gloo", PROCESS_GROUP_TIMEOUT)]
    assert PROCESS_GROUP_TIMEOUT == timedelta(days=7)
