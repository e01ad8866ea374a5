import time, numpy as np, torch, json, sys
torch.set_num_threads(1)
from quant_envs.mixed_precision.tables.build import _problem, evaluate_policies
out = {}
for task, bits in [("mnist1d-cnn", [2,3,4,8]), ("mnist1d-small", [2,3,4,8]), ("digits-cnn", [2,3,4,5,6,7,8])]:
    for steps in (0, 10, 20) if task == "digits-cnn" else (0, 10):
        p = _problem({"task": task, "bits": bits, "finetune_steps": steps, "eval_seed": 0, "task_seed": 0})
        rng = np.random.default_rng(0)
        pols = [tuple(int(b) for b in rng.choice(bits, p.num_layers)) for _ in range(12)]
        evaluate_policies(p, pols[:2])
        t0 = time.process_time(); w0 = time.perf_counter()
        evaluate_policies(p, pols)
        out[f"{task}@{steps}"] = {"cpu_s": (time.process_time() - t0) / 12, "wall_s": (time.perf_counter() - w0) / 12}
        print(task, steps, out[f"{task}@{steps}"], flush=True)
json.dump(out, open("/tmp/surr_timing.json", "w"), indent=1)
