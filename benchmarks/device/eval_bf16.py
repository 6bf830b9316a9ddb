"""fp32 vs bf16 autocast of the default model on the held-out set, on the device: the function behind
`s2sr evaluate --device cuda --precision {fp32,bf16} --methods s2sr` (one process, so torch loads once)."""
import json, sys, time
from pathlib import Path
from s2sr_cloud.training.evaluate import evaluate, methods_for
H = Path(sys.argv[1]); dev = sys.argv[2]; out = sys.argv[3]
paths = [str(H / "S2A_MSIL1C_20170527_T33UUB.mat"), str(H / "S2B_MSIL2A_20180421T114349_47_56"),
         str(H / "S2A_MSIL2A_20170617T113321_4_55")]
runs = [("sr", 4, "dsen2"), ("sr", 2, "dsen2"), ("sharpen20", 2, "dsen2"), ("sharpen60", 6, "dsen2"),
        ("sr", 4, "s2mtf")]
res = {}
for task, scale, blur in runs:
    row = {}
    for prec in ("fp32", "bf16"):
        t0 = time.perf_counter()
        m = {"s2sr": methods_for(task, None, None, dev, prec)["s2sr"]}
        r = evaluate(task, paths, scale, blur, methods=m, device=dev, precision=prec)["methods"]["s2sr"]["overall"]
        row[prec] = {k: r[k] for k in ("psnr", "rmse", "sam", "consistency_l1")}
        row[prec]["seconds"] = time.perf_counter() - t0
    row["delta_psnr_db"] = row["bf16"]["psnr"] - row["fp32"]["psnr"]
    key = f"{task}_x{scale}_{blur}"
    res[key] = row
    print(f"{key}: PSNR fp32 {row['fp32']['psnr']:.4f} bf16 {row['bf16']['psnr']:.4f} delta {row['delta_psnr_db']:+.4f} dB"
          f"; RMSE {row['fp32']['rmse']:.6f} / {row['bf16']['rmse']:.6f}", flush=True)
Path(out).write_text(json.dumps(res, indent=1))
