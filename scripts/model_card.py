"""Run every evaluation of the model card on the project's held-out set and print its tables (markdown): the
default model with every method, then s2sr-v1's row on the same pixels. Each table is reproducible with the
`s2sr evaluate` commands printed above it; the JSON results go to docs/eval/.

    python scripts/model_card.py [SHARED_DATA_DIR]
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from s2sr_cloud.training.data import HOLDOUT

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
HELD_OUT = [str(DATA / name) for name in HOLDOUT]  # the one list: s2sr_cloud/training/data.py
RUNS = [("sharpen20", 2, HELD_OUT), ("sharpen60", 6, HELD_OUT), ("sr", 2, HELD_OUT), ("sr", 4, HELD_OUT),
        ("sr", 10, HELD_OUT)]
OLD = "s2sr-v1"


def _run(cmd: list[str]) -> dict:
    subprocess.run([sys.executable, "-m", "s2sr_cloud.cli", *cmd[1:]], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return json.loads((ROOT / cmd[cmd.index("--json") + 1]).read_text())


def main() -> None:
    out_dir = ROOT / "docs" / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    for task, scale, paths in RUNS:
        for blur in ("dsen2", "s2mtf"):
            tag = f"{task}_x{scale}_{blur}_heldout"
            base = ["s2sr", "evaluate", "--task", task, "--scale", str(scale), "--blur", blur]
            cmd = [*base, "--json", f"docs/eval/{tag}.json", *paths]
            old = [*base, "--model", OLD, "--methods", "s2sr", "--json", f"docs/eval/{tag}_{OLD}.json", *paths]
            res, res_old = _run(cmd), _run(old)
            methods = dict(res["methods"])
            methods[OLD] = res_old["methods"]["s2sr"]
            print(f"\n**{task} x{scale}, blur {blur}, all held-out**  ")
            print(f"`{' '.join(cmd)}`  \n`{' '.join(old)}`\n")
            print("| method | RMSE | PSNR | SSIM | SAM (deg) | ERGAS | consistency L1 | consistency SAM (deg) | "
                  "footprint trace | negative share |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            for name, m in methods.items():
                o = m["overall"]
                print(f"| {name} | {o['rmse']:.5f} | {o['psnr']:.2f} | {o['ssim']:.4f} | {o['sam']:.3f} | "
                      f"{o['ergas']:.3f} | {o['consistency_l1']:.2e} | {o['consistency_sam_deg']:.2e} | "
                      f"{o['footprint_trace']:.3f} | {o['negative_share']:.2e} |", flush=True)


if __name__ == "__main__":
    main()
