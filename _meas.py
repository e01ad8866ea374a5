from quant_envs.mixed_precision.tables.build import measure_eval_cpu_s
from quant_envs.mixed_precision.tables.live import live_problem
from quant_envs.mixed_precision.tables.registry import load_table

out = {}
for name in ("digits-cnn", "mnist1d-small"):
    t = load_table(name)
    p = live_problem(t, cache_size=0)
    out[name] = {int(t.meta["finetune_steps"]): measure_eval_cpu_s(p, 12)}
    print(name, out[name], flush=True)
