"""Frozen golden values of every pure loss on fixed seeded inputs (``tests/golden/losses.json``).

The values are regression anchors, regenerated **only on purpose** (a deliberate change of a loss's math):

    .venv/bin/python tests/golden/losses_golden.py --write

``tests/test_losses_golden.py`` imports :func:`compute` from this file and compares with the JSON.
Inputs come from NumPy's PCG64 generator (stable streams), computed in float32 as in training.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict

import numpy as np
import torch

JSON_PATH = Path(__file__).with_name("losses.json")


def _inputs():
    rng = np.random.default_rng(20240601)

    def normal(*shape, scale=1.0):
        return torch.from_numpy(rng.standard_normal(shape) * scale).float()

    B, K = 2, 5
    x = {
        "s_logits": normal(B, K, 8, 8, scale=2.0), "t_logits": normal(B, K, 8, 8, scale=2.0),
        "s_feat": normal(B, 8, 8, 8), "t_feat": normal(B, 16, 8, 8), "s_proj": normal(B, 16, 8, 8),
        "s_emb": normal(B, 16, 8, 8), "t_emb": normal(B, 16, 8, 8),
        "g_c4": normal(B, 32, 16, 16), "t_c4": normal(B, 32, 16, 16),
    }
    x["g_c4"] = x["t_c4"] + 0.5 * x["g_c4"]
    lab = rng.integers(0, K, size=(B, 64, 64))
    lab[rng.random((B, 64, 64)) < 0.2] = -1
    x["labels"] = torch.from_numpy(lab).long()
    pq = normal(K, 40, 16)
    rq = normal(K, 10, 16)
    x["pixel_queue"] = pq / pq.norm(dim=-1, keepdim=True)
    x["region_queue"] = rq / rq.norm(dim=-1, keepdim=True)
    x["pixel_idx"] = torch.from_numpy(rng.permutation(40)[:9]).long()
    x["region_idx"] = torch.from_numpy(rng.permutation(10)[:3]).long()
    return x, K


def compute() -> Dict[str, float]:
    from kdlib.losses import functional as LF

    x, K = _inputs()
    p2p, p2r = LF.cirkd_memory_losses(x["s_emb"], x["t_emb"], x["labels"], x["pixel_queue"], x["region_queue"],
                                      x["pixel_idx"], x["region_idx"])
    values = {
        "kd_T1": LF.kd_loss(x["s_logits"], x["t_logits"]),
        "kd_T4": LF.kd_loss(x["s_logits"], x["t_logits"], temperature=4.0),
        "cwd_logits": LF.cwd_loss(x["s_logits"], x["t_logits"]),
        "cwd_feature_official_norm": LF.cwd_loss(x["s_proj"], x["t_feat"], norm_channels=8),
        "skd_pairwise": LF.skd_pairwise_loss(x["s_feat"], x["t_feat"]),
        "ifvd": LF.ifvd_loss(x["s_feat"], x["t_feat"], x["labels"], K),
        "at": LF.at_loss(x["s_feat"], x["t_feat"]),
        "fitnet": LF.fitnet_loss(x["s_proj"], x["t_feat"]),
        "cirkd_batch_p2p": LF.cirkd_batch_p2p_loss(x["s_feat"], x["t_feat"]),
        "cirkd_batch_p2p_group1": LF.cirkd_batch_p2p_loss(x["s_feat"], x["t_feat"], group_size=1),
        "cirkd_memory_p2p": p2p,
        "cirkd_memory_p2r": p2r,
        "afdcd_fd": LF.afdcd_fd_loss(x["g_c4"], x["t_c4"]),
        "afdcd_omni": LF.afdcd_omni_loss(x["g_c4"], x["t_c4"]),
        "afdcd_omni_cosine_nopool": LF.afdcd_omni_loss(x["g_c4"], x["t_c4"], groups=8, pool=None,
                                                       similarity="cosine"),
        "afdcd_spatial_tau2": LF.afdcd_spatial_loss(x["g_c4"], x["t_c4"], patch=2, tau=2.0),
        "afdcd_spatial_l2_nopool": LF.afdcd_spatial_loss(x["g_c4"], x["t_c4"], pool=None, tau=1.0,
                                                         similarity="l2"),
        "afdcd_channel": LF.afdcd_channel_loss(x["g_c4"], x["t_c4"]),
    }
    return {k: float(v.item()) for k, v in values.items()}


if __name__ == "__main__":
    if "--write" not in sys.argv[1:]:
        print(json.dumps(compute(), indent=2))
        print("(dry run; pass --write to overwrite", JSON_PATH, ")")
        sys.exit(0)
    JSON_PATH.write_text(json.dumps({"_note": "regenerate only on purpose: python tests/golden/losses_golden.py "
                                              "--write", "torch": torch.__version__, "values": compute()},
                                    indent=2, sort_keys=True) + "\n")
    print("wrote", JSON_PATH)
