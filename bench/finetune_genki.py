"""Head alone against fine-tuned, on GENKI-4K with the real MobileNet 0.25 weights.

    python bench/finetune_genki.py [--epochs 20] [--image-size 224] [--cache-root cache]

Runs `jobs.embed` (K = 2; a complete cache under --cache-root is reused), `jobs.train_head`
(dense) and `jobs.finetune` with its defaults, then prints the validation accuracy of the head
and of the fine-tuned model on the same images, seconds per fine-tune epoch, and the wall time of
each job. Ends with one JSON line.
"""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import GENKI, MOBILENET_025, emit, run_job  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--cache-root", default="cache")
    parser.add_argument("--out", default=None, help="keep the outputs here (default: temporary)")
    parser.add_argument("--finetune-args", nargs=argparse.REMAINDER, default=[],
                        help="extra jobs.finetune arguments (last on the line)")
    args = parser.parse_args()
    out = args.out or tempfile.mkdtemp()
    embed_s, _, cache_dir = run_job("jobs.embed", [
        "--data", str(GENKI), "--backbone", "mobilenet", "--alpha", "0.25", "--weights",
        str(MOBILENET_025), "--image-size", str(args.image_size), "--augment-copies", "2",
        "--cache-dir", args.cache_root])
    head_s, _, _ = run_job("jobs.train_head", ["--cache", cache_dir, "--out",
                                            os.path.join(out, "head"), "--quiet"])
    tune_s, _, _ = run_job("jobs.finetune", ["--cache", cache_dir, "--head-dir",
                                          os.path.join(out, "head"), "--out",
                                          os.path.join(out, "finetune"), "--epochs",
                                          str(args.epochs), *args.finetune_args])
    with open(os.path.join(out, "finetune", "report.json")) as handle:
        tuned = json.load(handle)
    epochs = tuned["finetune_epochs"]
    curve = tuned["history"]["val_accuracy"][tuned["head_epochs"]:]
    head_acc = tuned["head_vs_finetuned"]["head_accuracy"]
    print(f"{'':26}{'val accuracy':>13}{'wall s':>9}")
    print(f"{'embed job (K=2)':26}{'':>13}{embed_s:9.1f}")
    print(f"{'dense head':26}{head_acc:13.4f}{head_s:9.1f}")
    print(f"{'fine-tuned (defaults)':26}{tuned['accuracy']:13.4f}{tune_s:9.1f}")
    print(f"fine-tune: {epochs} epochs, {tune_s / max(epochs, 1):.1f} s/epoch (incl. start-up), "
          f"val accuracy per epoch: {', '.join(f'{v:.3f}' for v in curve)}")
    print(f"warm-start max |p_model - p_head| = {tuned['warm_start_max_abs_diff']:.2e}; "
          f"outputs in {out}")
    emit({"head_val_accuracy": head_acc, "finetuned_val_accuracy": tuned["accuracy"],
          "finetune_epochs": epochs, "finetune_s": round(tune_s, 1),
          "finetune_s_per_epoch": round(tune_s / max(epochs, 1), 1), "embed_s": round(embed_s, 1),
          "head_s": round(head_s, 1), "val_curve": [round(v, 4) for v in curve],
          "image_size": args.image_size})


if __name__ == "__main__":
    main()
