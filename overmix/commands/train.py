"""``overmix train EXPERIMENT``: train small language models on CPU and watch sinks emerge."""

HELP = "train small language models on synthetic data and record attention sinks (sims.experiments)"

NAMES = ("sinks", "context", "depth_heads", "bos", "interventions")


def add_arguments(parser):
    parser.add_argument("experiment", choices=NAMES,
                        help="sinks: emergence over training on Bigram-Backcopy; context: context "
                             "length sweep; depth_heads: L x H sweep; bos: BOS fixed vs not; "
                             "interventions: Adam vs SGD and built-in sinks")
    parser.add_argument("--quick", action="store_true", help="the small setting (minutes)")
    parser.add_argument("--out", default="train-out", help="output folder (default train-out)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--seeds", type=int, default=None, metavar="N",
                        help="train with the N seeds seed, seed+1, ... and average (default: the "
                             "setting's: 1 with --quick, 3 or 5 in the full settings)")
    parser.add_argument("--compute-dtype", choices=("float64", "float32"), default="float64",
                        help="arithmetic of training (default float64; float32: weights, "
                             "activations, gradients and Adam state in float32; 1.35-1.8x faster here)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _summary(name, data):
    seeds = data.get("seeds", [data["seed"]])
    over = f" (means over seeds {seeds[0]}..{seeds[-1]})" if len(seeds) > 1 else ""
    lines = [f"{name}: {len(data['steps'])} recorded steps, final loss {data['loss'][-1]:.4g}, "
             f"final sink metric (eps=0.3) {data['sink_metric'][-1]:.3g}{over}"]
    if data.get("runs") and len(seeds) > 1:
        lines.append(f"  runs of seed {seeds[0]}:")
    for r in data.get("runs", []):
        fin = r.get("final_sink_metric", r["sink_metric"][-1])
        extra = "".join(f"; {k}: sink {v['sink_metric']:.3g}, loss {v['loss']:.3g}"
                        for k, v in r.items() if k.startswith("eval ") and isinstance(v, dict))
        lines.append(f"  {r['label']:<32} loss {r['eval_loss'][-1]:.4g}  sink metric {fin:.3g}{extra}")
    return "\n".join(lines)


def run(args) -> int:
    import sys

    from tqdm import tqdm

    from overmix.sims.experiments import run_experiment
    from overmix.sims.train import TrainingDiverged

    if args.seed < 0:
        print(f"--seed must be a non-negative int; got {args.seed}", file=sys.stderr)
        return 2
    if args.seeds is not None and args.seeds < 1:
        print(f"--seeds must be an int >= 1; got {args.seeds}", file=sys.stderr)
        return 2
    bar = None if args.no_progress else tqdm(total=1, desc=f"train {args.experiment}",
                                             unit="step", dynamic_ncols=True)

    def progress(done, total):
        if bar is not None:
            if bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

    try:
        data = run_experiment(args.experiment, quick=args.quick, seed=args.seed,
                              seeds=args.seeds, out_dir=args.out, progress=progress,
                              setting={"compute_dtype": args.compute_dtype})
    except TrainingDiverged as err:
        print(f"\n{err}", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
    print(_summary(args.experiment, data))
    print(f"wrote {args.out}/{args.experiment}.json and .npz ({data['runtime_s']:.1f} s)")
    return 0
